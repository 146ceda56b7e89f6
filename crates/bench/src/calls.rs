//! W9: the call a user makes. Sequential `Client::call`s of a 64-byte Echo
//! against a `Server` in a child process ([`crate::peer`]), and 64 KiB
//! Echo calls with 4 in flight, next to the same exchanges, against the
//! same child, over raw tokio TCP (`LengthDelimitedCodec`, the floor) and
//! over a bare netproto `Connection` (what the service adds is the
//! difference). Issue #23.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netproto_crypto::{HandshakeConfig, Keypair, Pinned};
use netproto_service::{Client, ClientConfig};
use netproto_transport::ConnectionConfig;
use netproto_wire::Message;
use tokio::net::TcpStream;

use crate::peer::Peer;
use crate::report::Report;
use crate::systems::{tcp_link, Link, Result, System};
use crate::workloads::{percentile, Plan};
use crate::BenchError;

/// The small call's payload.
const SMALL: usize = 64;
/// The large call's payload.
const LARGE: usize = 64 * 1024;
/// Large calls in flight at once.
const IN_FLIGHT: usize = 4;

/// Runs W9 for each of `systems` against one child `peer_exe`, recording
/// the figures of pass `pass`.
pub(crate) async fn record(
    peer_exe: &std::path::Path,
    systems: &[System],
    plan: Plan,
    report: &mut Report,
    pass: usize,
    step: &mut dyn FnMut(String),
) -> Result<()> {
    if systems.is_empty() {
        return Ok(());
    }
    let peer = Peer::start(peer_exe).await?;
    for &system in systems {
        let c = calls(&peer, system, plan).await?;
        report.record("W9", "p50", "µs", system, pass, c.rtt[0]);
        report.record("W9", "p99", "µs", system, pass, c.rtt[1]);
        report.record("W9", "p99.9", "µs", system, pass, c.rtt[2]);
        report.record("W9", "calls/s", "calls/s", system, pass, c.rate);
        report.record("W9", "64 KiB ×4", "MB/s", system, pass, c.large);
        step(format!("W9 {}", system.key()));
    }
    peer.stop().await;
    Ok(())
}

/// What W9 measured for one system.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Calls {
    /// Sequential 64 B: p50, p99, p99.9 in µs.
    pub(crate) rtt: [f64; 3],
    /// Sequential 64 B calls per second.
    pub(crate) rate: f64,
    /// 64 KiB calls, 4 in flight: MB/s (10^6 bytes) of requests answered.
    pub(crate) large: f64,
}

/// Times `round_trips` sequential exchanges after `warmup` untimed ones.
async fn sequential<F, Fut>(plan: Plan, mut exchange: F) -> Result<([f64; 3], f64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    for _ in 0..plan.warmup {
        exchange().await?;
    }
    let mut samples = Vec::with_capacity(plan.round_trips);
    let start = Instant::now();
    for _ in 0..plan.round_trips {
        let t = Instant::now();
        exchange().await?;
        samples.push(t.elapsed());
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = plan.round_trips as f64 / start.elapsed().as_secs_f64();
    samples.sort_unstable();
    Ok((
        [
            percentile(&samples, 0.50),
            percentile(&samples, 0.99),
            percentile(&samples, 0.999),
        ],
        rate,
    ))
}

/// A link's sequential 64 B echo and its 64 KiB echo with 4 in flight.
async fn over_link(link: Link, plan: Plan, what: &str) -> Result<Calls> {
    let link = Arc::new(tokio::sync::Mutex::new(link));
    let msg = [0x42u8; SMALL];
    let (rtt, rate) = sequential(plan, || {
        let link = link.clone();
        async move {
            let mut l = link.lock().await;
            l.tx.send(&msg).await?;
            l.tx.flush().await?;
            l.rx.recv().await?;
            Ok(())
        }
    })
    .await?;
    let link = Arc::into_inner(link)
        .ok_or(BenchError::Closed)?
        .into_inner();
    let per_sec =
        crate::workloads::windowed_on(link, what, LARGE, IN_FLIGHT, 1, plan.timed).await?;
    #[allow(clippy::cast_precision_loss)]
    Ok(Calls {
        rtt,
        rate,
        large: per_sec * LARGE as f64 / 1e6,
    })
}

/// W9 for `system`: `RawTcp` (the floor), `NetprotoTcp` (a bare
/// `Connection`) or `NetprotoClient` (`Client::call` to a `Server`).
async fn calls(peer: &Peer, system: System, plan: Plan) -> Result<Calls> {
    match system {
        System::RawTcp => {
            let s = TcpStream::connect(peer.raw).await?;
            s.set_nodelay(true)?;
            over_link(tcp_link(s), plan, system.key()).await
        }
        System::NetprotoTcp => {
            let link = crate::scale::connect_one(&peer.connections, peer.key).await?;
            over_link(link, plan, system.key()).await
        }
        System::NetprotoClient => client_calls(peer, plan).await,
        other => Err(BenchError::Setup(format!(
            "W9 does not run {}",
            other.key()
        ))),
    }
}

async fn client_calls(peer: &Peer, plan: Plan) -> Result<Calls> {
    let cfg = ClientConfig::new(ConnectionConfig::new(HandshakeConfig::new(
        Some(Keypair::generate(&mut rand::rngs::OsRng)),
        Arc::new(Pinned(peer.key)),
    )));
    let client = Client::connect(&peer.service, cfg).await?;
    let small = Message::Echo("x".repeat(SMALL));
    let (rtt, rate) = sequential(plan, || {
        let (client, small) = (&client, small.clone());
        async move {
            client.call(small).await?;
            Ok(())
        }
    })
    .await?;

    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + plan.timed;
    let mut callers = Vec::with_capacity(IN_FLIGHT);
    for _ in 0..IN_FLIGHT {
        let (client, done) = (client.clone(), done.clone());
        callers.push(tokio::spawn(async move {
            let large = Message::Echo("y".repeat(LARGE));
            while Instant::now() < deadline {
                client.call(large.clone()).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, netproto_service::ServiceError>(())
        }));
    }
    for c in callers {
        c.await.map_err(|e| BenchError::Setup(e.to_string()))??;
    }
    #[allow(clippy::cast_precision_loss)]
    let large =
        done.load(Ordering::Relaxed) as f64 * LARGE as f64 / start.elapsed().as_secs_f64() / 1e6;
    let _ = tokio::time::timeout(Duration::from_secs(2), client.close()).await;
    Ok(Calls { rtt, rate, large })
}
