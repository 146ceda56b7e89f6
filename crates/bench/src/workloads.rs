//! Workloads W1–W4 and W6–W8, timed the same way for every system.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netproto_crypto::{AnyPeer, HandshakeConfig, Pinned};
use netproto_service::{Client, ClientConfig, Dispatcher, Server, ServerConfig};
use netproto_transport::ConnectionConfig;
use netproto_wire::Message;
use tokio::sync::Semaphore;

use crate::systems::{connect, listen, Fixture, PeerMode, Result, System};
use crate::BenchError;

/// Sizes and durations of one pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) round_trips: usize,
    pub(crate) warmup: usize,
    pub(crate) window: usize,
    pub(crate) timed: Duration,
    pub(crate) handshakes: usize,
    pub(crate) connectors: usize,
    pub(crate) callers: usize,
    /// W7/W8's message size.
    pub(crate) large: usize,
}

impl Plan {
    pub(crate) fn full() -> Self {
        Self {
            round_trips: 20_000,
            warmup: 1_000,
            window: 128,
            timed: Duration::from_secs(5),
            handshakes: 500,
            connectors: 8,
            callers: 64,
            large: LARGE,
        }
    }

    pub(crate) fn quick() -> Self {
        Self {
            round_trips: 1_000,
            warmup: 100,
            window: 128,
            timed: Duration::from_millis(300),
            handshakes: 40,
            connectors: 8,
            callers: 64,
            // A smoke test: a debug build moves 1 MiB under loss slowly.
            large: LARGE / 8,
        }
    }
}

const SMALL: usize = 64;
const BULK: usize = 64 * 1024;
/// The bulk sink acknowledges every this many messages.
const BULK_ACK_EVERY: usize = 64;
/// W7's message: 1 MiB.
const LARGE: usize = 1 << 20;
/// W7's sink acknowledges every this many messages.
const LARGE_ACK_EVERY: usize = 4;
/// W8's loss rate per datagram, each direction.
const LOSS: f64 = 0.05;

/// The `p` quantile of sorted samples, in µs.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    crate::quantile(sorted, p).as_secs_f64() * 1e6
}

/// W1: sequential 64 B round trips; p50, p99, p99.9 in µs.
pub(crate) async fn ping_pong(system: System, fx: &Arc<Fixture>, plan: Plan) -> Result<[f64; 3]> {
    let server = listen(system, fx, PeerMode::Echo).await?;
    let mut link = connect(system, fx, &server.target).await?;
    let msg = [0x42u8; SMALL];
    let mut samples = Vec::with_capacity(plan.round_trips);
    for i in 0..plan.warmup + plan.round_trips {
        let t = Instant::now();
        link.tx.send(&msg).await?;
        link.tx.flush().await?;
        link.rx.recv().await?;
        if i >= plan.warmup {
            samples.push(t.elapsed());
        }
    }
    samples.sort_unstable();
    Ok([
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        percentile(&samples, 0.999),
    ])
}

/// Sends `size`-byte messages for `plan.timed` with at most `window`
/// unacknowledged, where each received reply acknowledges `per_reply`
/// messages. Returns messages acknowledged per second.
async fn windowed(
    system: System,
    fx: &Arc<Fixture>,
    mode: PeerMode,
    size: usize,
    window: usize,
    per_reply: usize,
    timed: Duration,
) -> Result<f64> {
    let server = listen(system, fx, mode).await?;
    let link = connect(system, fx, &server.target).await?;
    windowed_on(link, system.key(), size, window, per_reply, timed).await
}

/// [`windowed`] over a link already open (`what` names it in errors).
pub(crate) async fn windowed_on(
    link: crate::systems::Link,
    what: &str,
    size: usize,
    window: usize,
    per_reply: usize,
    timed: Duration,
) -> Result<f64> {
    let (mut tx, mut rx) = (link.tx, link.rx);
    let credits = Arc::new(Semaphore::new(window));
    let acked = Arc::new(AtomicU64::new(0));
    let reader = {
        let credits = credits.clone();
        let acked = acked.clone();
        tokio::spawn(async move {
            while rx.recv().await.is_ok() {
                credits.add_permits(per_reply);
                acked.fetch_add(per_reply as u64, Ordering::Relaxed);
            }
        })
    };
    let msg = vec![0x5au8; size];
    let start = Instant::now();
    let deadline = start + timed;
    let mut outcome = Ok(());
    'send: while Instant::now() < deadline {
        // Send while credit lasts, flush, then wait for more. A peer that
        // acknowledges as fast as we send keeps credit from running out:
        // the deadline is checked here too (a raw Unix-socket W3 once sent
        // for 95 minutes of a `--quick` run without leaving this loop).
        let mut burst = 0u32;
        while let Ok(permit) = credits.try_acquire() {
            permit.forget();
            burst = burst.wrapping_add(1);
            // Every 64 messages: reading the clock per 64-byte message
            // would cost W2 a few per cent.
            if burst.is_multiple_of(64) && Instant::now() >= deadline {
                break 'send;
            }
            if let Err(e) = tx.send(&msg).await {
                outcome = Err(e);
                break 'send;
            }
        }
        if let Err(e) = tx.flush().await {
            outcome = Err(e);
            break;
        }
        let wait = tokio::time::timeout_at(deadline.into(), credits.acquire()).await;
        match wait {
            Ok(Ok(permit)) => drop(permit),
            Ok(Err(_)) | Err(_) => break,
        }
    }
    // A slow build may not have completed one acknowledgement yet: wait
    // for it (bounded) rather than report zero.
    let patience = deadline + Duration::from_mins(1);
    while outcome.is_ok() && acked.load(Ordering::Relaxed) == 0 && Instant::now() < patience {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    reader.abort();
    outcome?;
    #[allow(clippy::cast_precision_loss)]
    let rate = acked.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64();
    if rate == 0.0 {
        return Err(BenchError::Setup(format!("{what}: nothing acknowledged")));
    }
    Ok(rate)
}

/// W2: pipelined 64 B echo, `window` in flight; messages/s.
pub(crate) async fn pipelined(system: System, fx: &Arc<Fixture>, plan: Plan) -> Result<f64> {
    windowed(
        system,
        fx,
        PeerMode::Echo,
        SMALL,
        plan.window,
        1,
        plan.timed,
    )
    .await
}

/// W3: one-way 64 KiB messages, acknowledged every 64; MB/s (10^6 bytes).
pub(crate) async fn bulk(system: System, fx: &Arc<Fixture>, plan: Plan) -> Result<f64> {
    let mode = PeerMode::Sink {
        ack_bytes: (BULK * BULK_ACK_EVERY) as u64,
    };
    let msgs = windowed(
        system,
        fx,
        mode,
        BULK,
        2 * BULK_ACK_EVERY,
        BULK_ACK_EVERY,
        plan.timed,
    )
    .await?;
    #[allow(clippy::cast_precision_loss)]
    Ok(msgs * BULK as f64 / 1e6)
}

/// W7: one-way 1 MiB messages (`plan.large`), acknowledged every 4, 8 in
/// flight; MB/s.
pub(crate) async fn large(system: System, fx: &Arc<Fixture>, plan: Plan) -> Result<f64> {
    let mode = PeerMode::Sink {
        ack_bytes: (plan.large * LARGE_ACK_EVERY) as u64,
    };
    let msgs = windowed(
        system,
        fx,
        mode,
        plan.large,
        2 * LARGE_ACK_EVERY,
        LARGE_ACK_EVERY,
        plan.timed,
    )
    .await?;
    #[allow(clippy::cast_precision_loss)]
    Ok(msgs * plan.large as f64 / 1e6)
}

/// W8: W7 over netproto-udp on sockets that each drop 5 % of the
/// datagrams they send (both directions, fixed seeds); goodput in MB/s of
/// messages acknowledged by the receiving application.
pub(crate) async fn lossy(fx: &Arc<Fixture>, plan: Plan) -> Result<f64> {
    let mode = PeerMode::Sink {
        ack_bytes: plan.large as u64,
    };
    let (_server, _client, link) = crate::datagram::lossy_netproto_udp(fx, LOSS, mode).await?;
    let msgs = windowed_on(
        link,
        "netproto-udp (5 % loss)",
        plan.large,
        4,
        1,
        plan.timed,
    )
    .await?;
    #[allow(clippy::cast_precision_loss)]
    Ok(msgs * plan.large as f64 / 1e6)
}

async fn one_handshake(
    system: System,
    fx: &Fixture,
    target: &crate::systems::Target,
) -> Result<()> {
    first_echo(connect(system, fx, target).await?).await
}

/// The first 64 B echo on a new link (W4 counts a handshake once it
/// carried data).
async fn first_echo(mut link: crate::systems::Link) -> Result<()> {
    link.tx.send(&[7u8; SMALL]).await?;
    link.tx.flush().await?;
    link.rx.recv().await?;
    Ok(())
}

/// W4's pattern rows: sequential handshakes/s of netproto over TCP with
/// IK (4 Diffie-Hellman operations per side, XX has 3) and NK (2).
pub(crate) async fn pattern_handshakes(
    fx: &Arc<Fixture>,
    plan: Plan,
) -> Result<[(&'static str, f64); 2]> {
    use crate::systems::{netproto_pattern_connect, netproto_pattern_server};
    use netproto_crypto::Pattern;
    let mut rows = [("sequential IK", 0.0), ("sequential NK", 0.0)];
    for (row, pattern) in rows.iter_mut().zip([Pattern::IK, Pattern::NK]) {
        let server = netproto_pattern_server(fx, pattern).await?;
        first_echo(netproto_pattern_connect(fx, pattern, &server.target).await?).await?;
        let start = Instant::now();
        for _ in 0..plan.handshakes {
            first_echo(netproto_pattern_connect(fx, pattern, &server.target).await?).await?;
        }
        #[allow(clippy::cast_precision_loss)]
        let rate = plan.handshakes as f64 / start.elapsed().as_secs_f64();
        row.1 = rate;
    }
    Ok(rows)
}

/// W4: connect + handshake + first 64 B echo; handshakes/s sequentially and
/// with `connectors` concurrent connectors.
pub(crate) async fn handshakes(system: System, fx: &Arc<Fixture>, plan: Plan) -> Result<[f64; 2]> {
    let server = listen(system, fx, PeerMode::Echo).await?;
    one_handshake(system, fx, &server.target).await?;
    let start = Instant::now();
    for _ in 0..plan.handshakes {
        one_handshake(system, fx, &server.target).await?;
    }
    #[allow(clippy::cast_precision_loss)]
    let sequential = plan.handshakes as f64 / start.elapsed().as_secs_f64();

    let per = plan.handshakes.div_ceil(plan.connectors);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..plan.connectors {
        let fx = fx.clone();
        let target = server.target.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                one_handshake(system, &fx, &target).await?;
            }
            Ok::<_, BenchError>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| BenchError::Setup(e.to_string()))??;
    }
    #[allow(clippy::cast_precision_loss)]
    let concurrent = (per * plan.connectors) as f64 / start.elapsed().as_secs_f64();
    Ok([sequential, concurrent])
}

/// W6: requests/s through `Server` + `Dispatcher` + `Client::call` with
/// `callers` concurrent callers on one connection (netproto over TCP);
/// `layered`: the route wrapped in an empty tower layer, which measures
/// what the middleware path costs a handler.
pub(crate) async fn dispatcher(fx: &Arc<Fixture>, plan: Plan, layered: bool) -> Result<f64> {
    let mut dispatcher = Dispatcher::new();
    dispatcher.register("ECHO", Ok);
    if layered {
        dispatcher.layer(netproto_service::tower::layer::util::Identity::new());
    }
    let server_cfg = ServerConfig::new(
        "tcp://127.0.0.1:0".parse()?,
        ConnectionConfig::new(HandshakeConfig::new(
            Some(fx.server_key().clone()),
            Arc::new(AnyPeer),
        )),
    );
    let server = Server::bind(server_cfg, dispatcher).await?;
    let handle = server.handle();
    let running = tokio::spawn(server.run());
    let client_cfg = ClientConfig::new(ConnectionConfig::new(HandshakeConfig::new(
        Some(netproto_crypto::Keypair::generate(&mut rand::rngs::OsRng)),
        Arc::new(Pinned(*fx.server_key().public())),
    )));
    let client = Client::connect(handle.endpoint(), client_cfg).await?;
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + plan.timed;
    let mut callers = Vec::new();
    for _ in 0..plan.callers {
        let c = client.clone();
        let done = done.clone();
        callers.push(tokio::spawn(async move {
            let text = "x".repeat(SMALL);
            while Instant::now() < deadline {
                c.call(Message::Echo(text.clone())).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, netproto_service::ServiceError>(())
        }));
    }
    for c in callers {
        c.await.map_err(|e| BenchError::Setup(e.to_string()))??;
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    let _ = client.close().await;
    handle.shutdown(Some(Duration::from_secs(1)));
    let _ = running.await;
    Ok(rate)
}
