//! `netproto cluster`: join a cluster and watch its membership.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use netproto::cluster::{Admission, Cluster, ClusterConfig, ClusterEvent, Preset};
use netproto::{Keypair, PublicKey};

use crate::{err, Failure};

/// What `netproto cluster` does.
#[derive(clap::Subcommand)]
pub(crate) enum ClusterAction {
    /// Join a cluster (or start one: no --seed) and print member events,
    /// and the member table every --table seconds, until Ctrl-C; then leave.
    Join {
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1:7946")]
        bind: SocketAddr,
        /// Address members reach this node at (default: the bound one).
        #[arg(long)]
        advertise: Option<SocketAddr>,
        /// A member to join through (repeatable).
        #[arg(long)]
        seed: Vec<SocketAddr>,
        /// Static key file (`netproto keygen`); a fresh key if omitted.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Public key (base64) allowed to be a member (repeatable; include
        /// this node's own). Without any, admission is open: any key that
        /// completes the handshake joins.
        #[arg(long)]
        allow: Vec<String>,
        /// Timing preset.
        #[arg(long, default_value = "lan", value_parser = ["lan", "wan"])]
        preset: String,
        /// Seconds between member tables (0: never).
        #[arg(long, default_value_t = 10)]
        table: u64,
        /// Leave after this many seconds instead of waiting for Ctrl-C.
        #[arg(long = "for")]
        run_for: Option<u64>,
    },
}

fn show(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) if text.len() <= 80 => format!("{text:?}"),
        _ => format!("{} bytes", payload.len()),
    }
}

fn describe(ev: &ClusterEvent) -> String {
    match ev {
        ClusterEvent::Up(id) => format!("up       {id}"),
        ClusterEvent::Suspect(id) => format!("suspect  {id}"),
        ClusterEvent::Down(id) => format!("down     {id}"),
        ClusterEvent::Left(id) => format!("left     {id}"),
        ClusterEvent::Rejoined { previous, id } => {
            format!("rejoined {id} (was generation {})", previous.generation())
        }
        ClusterEvent::Renewed(id) => {
            format!("renewed  {id} (this node, after being declared down)")
        }
        ClusterEvent::Broadcast { via, payload, .. } => {
            format!("broadcast via {via}: {}", show(payload))
        }
        ClusterEvent::Message { from, payload } => {
            format!("message from {from}: {}", show(payload))
        }
        other => format!("{other:?}"),
    }
}

pub(crate) async fn run(action: ClusterAction) -> Result<(), Failure> {
    let ClusterAction::Join {
        bind,
        advertise,
        seed,
        key,
        allow,
        preset,
        table,
        run_for,
    } = action;
    let key = match key {
        Some(path) => Keypair::load(&path).map_err(err)?,
        None => Keypair::generate(&mut rand::rngs::OsRng),
    };
    let mut cfg = ClusterConfig::default();
    if preset == "wan" {
        cfg.preset = Preset::Wan;
    }
    if !allow.is_empty() {
        let keys = allow
            .iter()
            .map(|k| PublicKey::from_base64(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        cfg.admission = Admission::AllowList(keys);
    }
    let node = Cluster::join(cfg, key, bind, advertise, &seed)
        .await
        .map_err(err)?;
    println!("joined as {} (public key {})", node.id(), node.id().key());
    let mut events = node.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(table.max(1)));
    tick.tick().await;
    let stop = async {
        match run_for {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            ev = events.recv() => match ev {
                Ok(ev) => println!("{}", describe(&ev)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => println!("({n} events skipped)"),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            _ = tick.tick(), if table > 0 => {
                let members = node.members().await.map_err(err)?;
                println!("{} members:", members.len());
                for m in members {
                    let seen = m.last_seen.map_or_else(|| "never".to_owned(), |t| format!("{:.1} s ago", t.elapsed().as_secs_f64()));
                    println!("  {:<8} {}  last seen {seen}", m.state.label(), m.id);
                }
            }
        }
    }
    node.leave().await;
    println!("left the cluster");
    Ok(())
}

/// Waits (polling every 50 ms, at most `limit`) until `check` holds for
/// every node's member list; returns how long it took.
async fn until_all(
    nodes: &[Cluster],
    limit: Duration,
    check: impl Fn(&[netproto::cluster::Member]) -> bool,
) -> Result<Option<Duration>, Failure> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        let mut all = true;
        for n in nodes {
            all &= check(&n.members().await.map_err(err)?);
        }
        if all {
            return Ok(Some(start.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(None)
}

/// `netproto demo`'s cluster row: 5 nodes in this process on loopback UDP
/// join through one seed; then one is killed and the others detect it.
pub(crate) async fn demo_row() -> Result<(), Failure> {
    const N: usize = 5;
    let keys: Vec<Keypair> = (0..N)
        .map(|_| Keypair::generate(&mut rand::rngs::OsRng))
        .collect();
    let mut cfg = ClusterConfig::lan(keys.iter().map(|k| *k.public()));
    // Five peers on one address: lift the per-source handshake limit meant
    // for one peer per address.
    cfg.udp.handshake.per_source_rate = 1_000;
    cfg.udp.handshake.per_source_burst = 100;
    let bind: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let started = std::time::Instant::now();
    let mut nodes = vec![Cluster::join(cfg.clone(), keys[0].clone(), bind, None, &[])
        .await
        .map_err(err)?];
    let seed = nodes[0].local_addr();
    for key in &keys[1..] {
        nodes.push(
            Cluster::join(cfg.clone(), key.clone(), bind, None, &[seed])
                .await
                .map_err(err)?,
        );
    }
    let alive =
        |m: &[netproto::cluster::Member]| m.iter().filter(|m| m.state.is_active()).count() == N - 1;
    let joined = until_all(&nodes, Duration::from_secs(10), alive)
        .await?
        .map(|_| started.elapsed());
    let dead = nodes.last().map(Cluster::id);
    drop(nodes.pop());
    let down = |m: &[netproto::cluster::Member]| {
        m.iter()
            .any(|m| Some(m.id) == dead && m.state == netproto::cluster::MemberState::Down)
    };
    let detected = until_all(&nodes, Duration::from_secs(20), down).await?;
    let show = |d: Option<Duration>| {
        d.map_or_else(
            || "not within the limit".to_owned(),
            |d| format!("{:.3} s", d.as_secs_f64()),
        )
    };
    println!(
        "\ncluster   {N} nodes on loopback UDP (foca LAN preset): all saw each other after {}; \
         a killed node was reported down by all {} others after {} (≈ 7 s expected)",
        show(joined),
        N - 1,
        show(detected)
    );
    for n in nodes {
        n.leave().await;
    }
    Ok(())
}
