//! 32 nodes in one process on real loopback UDP: they converge, a killed
//! one is reported down by all the others, a leaving one as left, and a
//! message and a broadcast arrive. Bounded: the whole test stays under a
//! minute (9–23 s measured; gossip may miss a survivor, which then finds
//! the death by its own probes: up to one probe round of 31 s later).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unchecked_time_subtraction,
    clippy::duration_suboptimal_units,
    clippy::map_unwrap_or,
    missing_docs
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use netproto_cluster::{Cluster, ClusterConfig, ClusterEvent, MemberId, MemberState};
use netproto_crypto::Keypair;

const NODES: usize = 32;

async fn wait_for(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Waits until every node reports `id` in `state`.
async fn all_report(
    nodes: &[Cluster],
    id: Option<MemberId>,
    state: MemberState,
    limit: Duration,
) -> Option<Duration> {
    wait_for(limit, async || {
        for n in nodes {
            let members = n.members().await.unwrap_or_default();
            if !members.iter().any(|m| Some(m.id) == id && m.state == state) {
                return false;
            }
        }
        true
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_nodes_on_loopback_converge_and_detect_a_kill() {
    let mut rng = rand::rngs::OsRng;
    let keys: Vec<Keypair> = (0..NODES).map(|_| Keypair::generate(&mut rng)).collect();
    let mut cfg = ClusterConfig::lan(keys.iter().map(|k| *k.public()));
    cfg.expected_size = 32;
    // Every node shares 127.0.0.1: the per-source handshake limit (20/s,
    // burst 5, meant for one peer) would make 31 peers queue for it.
    cfg.udp.handshake.per_source_rate = 1_000;
    cfg.udp.handshake.per_source_burst = 100;
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"));
    let mut nodes = Vec::new();
    let seed = Cluster::join(cfg.clone(), keys[0].clone(), bind, None, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seed_addr = seed.local_addr();
    nodes.push(seed);
    for key in &keys[1..] {
        nodes.push(
            Cluster::join(cfg.clone(), key.clone(), bind, None, &[seed_addr])
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }

    let converged = wait_for(Duration::from_secs(20), async || {
        for n in &nodes {
            let members = n.members().await.unwrap_or_default();
            if members.iter().filter(|m| m.state.is_active()).count() != NODES - 1 {
                return false;
            }
        }
        true
    })
    .await;
    println!("{NODES} nodes converged in {converged:?}");
    if converged.is_none() {
        for n in &nodes {
            let m = n.members().await.unwrap_or_default();
            let active = m.iter().filter(|m| m.state.is_active()).count();
            if active != NODES - 1 {
                println!(
                    "not converged: {} sees {active} active of {} known; {:?}",
                    n.id(),
                    m.len(),
                    n.stats().await.ok()
                );
            }
        }
    }
    assert!(
        converged.is_some(),
        "{NODES} nodes did not converge within 20 s"
    );

    // A message and a broadcast.
    let mut inbox = nodes[5].subscribe();
    let to = nodes[5].id();
    nodes[3]
        .send_to(&to, Bytes::from_static(b"direct"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    nodes[3]
        .broadcast(Bytes::from_static(b"to all"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut direct, mut all) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(direct && all) && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), inbox.recv()).await {
            Ok(Ok(ClusterEvent::Message { payload, .. })) => direct |= &payload[..] == b"direct",
            Ok(Ok(ClusterEvent::Broadcast { payload, .. })) => all |= &payload[..] == b"to all",
            _ => {}
        }
    }
    assert!(direct && all, "message {direct}, broadcast {all}");

    // Kill the last node (its task and socket go away, no goodbye).
    let dead = nodes.last().map(Cluster::id);
    drop(nodes.pop());
    let detected = all_report(&nodes, dead, MemberState::Down, Duration::from_secs(40)).await;
    println!(
        "kill detected by all {} survivors in {detected:?}",
        nodes.len()
    );
    if detected.is_none() {
        for n in &nodes {
            let members = n.members().await.unwrap_or_default();
            let seen = members
                .iter()
                .find(|m| dead.is_some_and(|d| d.key() == m.id.key()));
            println!(
                "  {} sees the dead node as {:?}",
                n.id(),
                seen.map(|m| (m.id, m.state))
            );
        }
    }
    assert!(
        detected.is_some(),
        "not every survivor reported the kill within 40 s"
    );

    leave_is_reported(nodes).await;
}

/// A clean leave of the last node is reported as such by all the others.
async fn leave_is_reported(mut nodes: Vec<Cluster>) {
    let left = nodes.last().map(Cluster::id);
    if let Some(n) = nodes.pop() {
        n.leave().await;
    }
    let reported = all_report(&nodes, left, MemberState::Left, Duration::from_secs(10)).await;
    println!(
        "leave reported by all {} others in {reported:?}",
        nodes.len()
    );
    assert!(reported.is_some(), "not every member reported the leave");
}
