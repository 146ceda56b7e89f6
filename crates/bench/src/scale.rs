//! W5: many connections. The server runs in a child process
//! ([`crate::peer`]) so that its resident memory can be read on its own from
//! `/proc/<pid>/status`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netproto_crypto::{HandshakeConfig, Keypair, Pinned, PublicKey};
use netproto_transport::{ConnectionConfig, Endpoint};

use crate::peer::Peer;
use crate::systems::{Link, Result};
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

pub(crate) async fn connect_one(endpoint: &Endpoint, server: PublicKey) -> Result<Link> {
    let cfg = ConnectionConfig::new(HandshakeConfig::new(
        Some(Keypair::generate(&mut rand::rngs::OsRng)),
        Arc::new(Pinned(server)),
    ));
    let conn = netproto_transport::connect(endpoint, cfg).await?;
    let (send, recv) = conn.split();
    let mut link = crate::systems::netproto_halves(send, recv);
    link.tx.send(&[1u8; 64]).await?;
    link.tx.flush().await?;
    link.rx.recv().await?;
    Ok(link)
}

/// W5 into `report`: 10,000 idle connections (200 with `quick`) and
/// 1,000 active ones (50) against the child peer `exe`.
pub(crate) async fn record(
    exe: &Path,
    quick: bool,
    plan: crate::workloads::Plan,
    report: &mut crate::report::Report,
    pass: usize,
) -> Result<()> {
    let (idle, active) = if quick { (200, 50) } else { (10_000, 1_000) };
    let s = scale(exe, idle, active, plan.timed).await?;
    let sys = crate::System::NetprotoTcp;
    report.record("W5", "RSS/idle conn", "bytes", sys, pass, s.rss_per_idle);
    #[allow(clippy::cast_precision_loss)] // at most a few 10,000
    report.record("W5", "idle conns", "conns", sys, pass, s.idle as f64);
    report.record("W5", "active msg/s", "msg/s", sys, pass, s.msgs_per_sec);
    report.record("W5", "active p99", "µs", sys, pass, s.p99_us);
    let _ = s.active;
    Ok(())
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
    let peer = Peer::start(peer_exe).await?;
    let (pid, server, endpoint) = (peer.pid, peer.key, peer.connections.clone());

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
    peer.stop().await;
    Ok(Scale {
        idle,
        rss_per_idle,
        active,
        msgs_per_sec,
        p99_us,
    })
}
