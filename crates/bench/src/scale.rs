//! W5: many connections. The server runs in a child process (the `netproto`
//! binary's hidden `bench-peer` command) so that its resident memory can be
//! read on its own from `/proc/<pid>/status`.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netproto_crypto::{HandshakeConfig, Keypair, Pinned, PublicKey};
use netproto_testkit::serve_connections;
use netproto_transport::{Accept, AnyListener, ConnectionConfig, Endpoint, SocketOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::systems::{serve_peer, Link, PeerMode, Result};
use crate::BenchError;

/// What W5 measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    pub(crate) idle: usize,
    pub(crate) rss_per_idle: f64,
    pub(crate) active: usize,
    pub(crate) msgs_per_sec: f64,
    pub(crate) p99_us: f64,
}

/// The child side: serves netproto over TCP with echo peers until its input
/// closes. Prints `PORT <port> KEY <base64>` first.
pub async fn run_peer() -> std::result::Result<(), BenchError> {
    let key = Keypair::generate(&mut rand::rngs::OsRng);
    let public = *key.public();
    let listener =
        AnyListener::bind(&"tcp://127.0.0.1:0".parse()?, SocketOptions::default()).await?;
    let local = Accept::local_endpoint(&listener).clone();
    let Endpoint::Tcp { port, .. } = &local else {
        return Err(BenchError::Setup("expected a TCP endpoint".into()));
    };
    println!("PORT {port} KEY {public}");
    let cfg = ConnectionConfig::new(HandshakeConfig::new(
        Some(key),
        Arc::new(netproto_crypto::AnyPeer),
    ));
    let server = serve_connections(listener, cfg, |conn| {
        let (send, recv) = conn.split();
        serve_peer(crate::systems::netproto_halves(send, recv), PeerMode::Echo)
    });
    let serve = async move {
        let _ = server.await;
    };
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    tokio::select! {
        () = serve => {}
        () = async { while stdin.read(&mut sink).await.is_ok_and(|n| n > 0) {} } => {}
    }
    Ok(())
}

fn rss_bytes(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| BenchError::Setup(format!("cannot read the peer's memory: {e}")))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| BenchError::Setup("no VmRSS in /proc status".into()))?;
    Ok(kib * 1024.0)
}

async fn connect_one(endpoint: &Endpoint, server: PublicKey) -> Result<Link> {
    let cfg = ConnectionConfig::new(HandshakeConfig::new(
        Some(Keypair::generate(&mut rand::rngs::OsRng)),
        Arc::new(Pinned(server)),
    ));
    let conn = netproto_transport::connect(endpoint, cfg).await?;
    let (send, recv) = conn.split();
    let mut link = crate::systems::netproto_halves(send, recv);
    link.tx.send(&[1u8; 64]).await?;
    link.rx.recv().await?;
    Ok(link)
}

/// Runs W5 against a child `peer_exe bench-peer`.
pub(crate) async fn scale(
    peer_exe: &Path,
    idle: usize,
    active: usize,
    timed: Duration,
) -> Result<Scale> {
    // Each side holds one descriptor per connection.
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let affordable = usize::try_from(limit.saturating_sub(256)).unwrap_or(usize::MAX);
    let idle = idle.min(affordable);
    let mut child = tokio::process::Command::new(peer_exe)
        .arg("bench-peer")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BenchError::Setup(format!("cannot start {}: {e}", peer_exe.display())))?;
    let pid = child.id().ok_or(BenchError::Closed)?;
    let stdout = child.stdout.take().ok_or(BenchError::Closed)?;
    let mut lines = BufReader::new(stdout).lines();
    let banner = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .map_err(|_| BenchError::Setup("the bench peer did not start".into()))??
        .ok_or(BenchError::Closed)?;
    let mut words = banner.split_whitespace();
    let (port, key) = match (words.next(), words.next(), words.next(), words.next()) {
        (Some("PORT"), Some(port), Some("KEY"), Some(key)) => (port.to_owned(), key.to_owned()),
        _ => {
            return Err(BenchError::Setup(format!(
                "unexpected peer banner {banner:?}"
            )))
        }
    };
    let server = PublicKey::from_base64(&key).map_err(|e| BenchError::Setup(e.to_string()))?;
    let endpoint: Endpoint = format!("tcp://127.0.0.1:{port}").parse()?;

    // One connection first, so the baseline includes the runtime's warm-up.
    let mut links = vec![connect_one(&endpoint, server).await?];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_bytes(pid)?;
    while links.len() < idle + 1 {
        let batch = (idle + 1 - links.len()).min(256);
        let mut tasks = Vec::with_capacity(batch);
        for _ in 0..batch {
            let endpoint = endpoint.clone();
            tasks.push(tokio::spawn(
                async move { connect_one(&endpoint, server).await },
            ));
        }
        for t in tasks {
            links.push(t.await.map_err(|e| BenchError::Setup(e.to_string()))??);
        }
    }
    // Past the transport's idle release (1 s), as a real idle fleet would be.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = rss_bytes(pid)?;
    #[allow(clippy::cast_precision_loss)]
    let rss_per_idle = (after - before) / idle.max(1) as f64;

    // Then `active` of them echo at once.
    let active = active.min(links.len());
    let deadline = Instant::now() + timed;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(active);
    for mut link in links.drain(..active) {
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let msg = [0x42u8; 64];
            while Instant::now() < deadline {
                let t = Instant::now();
                link.tx.send(&msg).await?;
                link.tx.flush().await?;
                link.rx.recv().await?;
                samples.push(t.elapsed());
            }
            Ok::<_, BenchError>(samples)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| BenchError::Setup(e.to_string()))??);
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    #[allow(clippy::cast_precision_loss)]
    let msgs_per_sec = all.len() as f64 / elapsed.as_secs_f64();
    let p99_us = crate::workloads::percentile(&all, 0.99);
    drop(links);
    drop(child.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    Ok(Scale {
        idle,
        rss_per_idle,
        active,
        msgs_per_sec,
        p99_us,
    })
}
