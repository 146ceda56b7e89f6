//! W9: the call a user makes. Sequential `Client::call`s of a 64-byte Echo
//! against a `Server` in a child process ([`crate::peer`]), and 64 KiB
//! Echo calls with 4 in flight, next to the same exchanges, against the
//! same child, over the raw carrier (`LengthDelimitedCodec`, the floor) and
//! over a bare netproto `Connection` (what the service adds is the
//! difference). `W9` runs over TCP, `W9-UDS` over Unix sockets, `W9-TLS`
//! over TLS 1.3 (the floor: tokio-rustls with AES-256-GCM, as netproto-tls
//! negotiates here). Issue #23.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netproto_crypto::{HandshakeConfig, Keypair, Pinned};
use netproto_service::{Client, ClientConfig};
use netproto_transport::{ConnectionConfig, Endpoint};
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

/// The carriers W9 runs on: the workload's name, its floor, its bare
/// connection (netproto's `Client` runs on each too).
const CARRIERS: [(&str, System, System); 3] = [
    ("W9", System::RawTcp, System::NetprotoTcp),
    ("W9-UDS", System::RawUds, System::NetprotoUds),
    ("W9-TLS", System::RustlsAes, System::NetprotoTls),
];

/// The (workload, system) pairs W9 runs for the selected `systems`.
pub(crate) fn plan(systems: &[System]) -> Vec<(&'static str, System)> {
    let mut pairs = Vec::new();
    for (workload, floor, connection) in CARRIERS {
        if workload == "W9-UDS" && !cfg!(unix) {
            continue;
        }
        for system in [floor, connection, System::NetprotoClient] {
            if systems.contains(&system) {
                pairs.push((workload, system));
            }
        }
    }
    pairs
}

/// Runs W9 for the selected `systems` against one child `peer_exe`,
/// recording the figures of pass `pass`.
pub(crate) async fn record(
    peer_exe: &std::path::Path,
    systems: &[System],
    plan: Plan,
    report: &mut Report,
    pass: usize,
    step: &mut dyn FnMut(String),
) -> Result<()> {
    let pairs = self::plan(systems);
    if pairs.is_empty() {
        return Ok(());
    }
    let peer = Peer::start(peer_exe).await?;
    for (workload, system) in pairs {
        let c = calls(&peer, workload, system, plan).await?;
        report.record(workload, "p50", "µs", system, pass, c.rtt[0]);
        report.record(workload, "p99", "µs", system, pass, c.rtt[1]);
        report.record(workload, "p99.9", "µs", system, pass, c.rtt[2]);
        report.record(workload, "calls/s", "calls/s", system, pass, c.rate);
        report.record(workload, "64 KiB ×4", "MB/s", system, pass, c.large);
        step(format!("{workload} {}", system.key()));
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

/// `workload` for `system`: the raw floor, a bare `Connection`, or
/// `NetprotoClient` (`Client::call` to a `Server`).
async fn calls(peer: &Peer, workload: &str, system: System, plan: Plan) -> Result<Calls> {
    let missing = |what: &str| BenchError::Setup(format!("the peer serves no {what}"));
    let uds = || peer.uds.as_ref().ok_or_else(|| missing("Unix sockets"));
    let tls = || peer.tls.as_ref().ok_or_else(|| missing("TLS"));
    match system {
        System::RawTcp => {
            let s = TcpStream::connect(peer.raw).await?;
            s.set_nodelay(true)?;
            over_link(tcp_link(s), plan, system.key()).await
        }
        #[cfg(unix)]
        System::RawUds => {
            let s = tokio::net::UnixStream::connect(&uds()?.2).await?;
            over_link(crate::systems::uds_link(s), plan, system.key()).await
        }
        System::RustlsAes => {
            let t = tls()?;
            let s = TcpStream::connect(t.raw).await?;
            s.set_nodelay(true)?;
            let cfg = crate::systems::rustls_client(
                &t.cert,
                rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
            )?;
            let name = rustls::pki_types::ServerName::try_from("localhost")
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            let stream = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, s)
                .await?;
            over_link(crate::systems::framed_link(stream), plan, system.key()).await
        }
        System::NetprotoTcp | System::NetprotoUds | System::NetprotoTls => {
            let at = match system {
                System::NetprotoTcp => &peer.connections,
                System::NetprotoUds => &uds()?.0,
                _ => &tls()?.connections,
            };
            let conn = netproto_transport::connect(at, client_connection(peer, at)?).await?;
            over_link(crate::systems::netproto_link(conn), plan, system.key()).await
        }
        System::NetprotoClient => {
            let at = match workload {
                "W9-UDS" => &uds()?.1,
                "W9-TLS" => &tls()?.service,
                _ => &peer.service,
            };
            client_calls(at, client_connection(peer, at)?, plan).await
        }
        other => Err(BenchError::Setup(format!(
            "{workload} does not run {}",
            other.key()
        ))),
    }
}

/// A client's connection settings for `at`: the child's key pinned, and
/// over TLS its certificate trusted for `localhost`.
fn client_connection(peer: &Peer, at: &Endpoint) -> Result<ConnectionConfig> {
    let mut cfg = ConnectionConfig::new(HandshakeConfig::new(
        Some(Keypair::generate(&mut rand::rngs::OsRng)),
        Arc::new(Pinned(peer.key)),
    ));
    if let (Endpoint::Tls { .. }, Some(t)) = (at, &peer.tls) {
        let tls = netproto_transport_tls::TlsClientConfig::with_ca_file(&t.cert).build()?;
        let connector =
            netproto_transport_tls::TlsConnector::with_rustls(tls, Duration::from_secs(10))
                .with_server_name("localhost")?;
        cfg.dialer = Some(Arc::new(connector));
    }
    Ok(cfg.for_endpoint(at))
}

async fn client_calls(at: &Endpoint, connection: ConnectionConfig, plan: Plan) -> Result<Calls> {
    let cfg = ClientConfig::new(connection);
    let client = Client::connect(at, cfg).await?;
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
