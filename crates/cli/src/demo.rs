//! `netproto demo`: a server and a client on each transport over loopback
//! (handshake time, round-trip percentiles, calls per second), a lossy-UDP
//! row (large messages over sockets that drop 5 % of their datagrams,
//! delivered exactly once) and the cluster row.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netproto::{AnyPeer, Client, Keypair, Message, NetworkConfig, Pinned, Server, Validity};

use crate::bench::progress;
use crate::serve::echo_dispatcher;
use crate::{cluster, err, path_string, Failure};

/// One transport's figures in the demo table.
struct Row {
    handshake: Duration,
    p50: Duration,
    p99: Duration,
    calls_per_sec: f64,
}

/// Serves `cfg.server.address`, connects a client, measures.
async fn demo_row(name: &str, mut cfg: NetworkConfig, round_trips: usize) -> Result<Row, Failure> {
    let server_key = Keypair::generate(&mut rand::rngs::OsRng);
    let server_pub = *server_key.public();
    let server_cfg = netproto::server_config(&cfg, server_key, Arc::new(AnyPeer)).map_err(err)?;
    let listener = netproto::bind(&cfg, Some(&server_cfg.connection.handshake))
        .await
        .map_err(err)?;
    let server = Server::with_listener(listener, server_cfg, echo_dispatcher());
    let handle = server.handle();
    let running = tokio::spawn(server.run());

    cfg.client.address = handle.endpoint().to_string();
    let client_cfg = netproto::client_config(
        &cfg,
        Some(Keypair::generate(&mut rand::rngs::OsRng)),
        Arc::new(Pinned(server_pub)),
    )
    .map_err(err)?;
    let started = Instant::now();
    let client = Client::connect(handle.endpoint(), client_cfg)
        .await
        .map_err(err)?;
    let handshake = started.elapsed();

    let bar = progress(name, "round trips", round_trips);
    let mut rtts = Vec::with_capacity(round_trips);
    let text = "x".repeat(64);
    for _ in 0..round_trips {
        let t = Instant::now();
        client
            .call(Message::Echo(text.clone()))
            .await
            .map_err(err)?;
        rtts.push(t.elapsed());
        bar.inc(1);
    }
    bar.finish_and_clear();
    rtts.sort_unstable();

    let per_worker = 20_000 / 64;
    let bar = progress(name, "64 concurrent callers", per_worker * 64);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..64 {
        let c = client.clone();
        let text = text.clone();
        let bar = bar.clone();
        workers.push(tokio::spawn(async move {
            for _ in 0..per_worker {
                c.call(Message::Echo(text.clone())).await?;
                bar.inc(1);
            }
            Ok::<_, netproto::ServiceError>(())
        }));
    }
    for w in workers {
        w.await
            .map_err(|_| err(netproto::ServiceError::ConnectionClosed))?
            .map_err(err)?;
    }
    bar.finish_and_clear();
    #[allow(clippy::cast_precision_loss)]
    let calls_per_sec = (per_worker * 64) as f64 / started.elapsed().as_secs_f64();
    client.close().await.map_err(err)?;
    handle.shutdown(Some(Duration::from_secs(1)));
    running
        .await
        .map_err(|_| err(netproto::ServiceError::ConnectionClosed))?
        .map_err(err)?;
    Ok(Row {
        handshake,
        p50: netproto_bench::quantile(&rtts, 0.50),
        p99: netproto_bench::quantile(&rtts, 0.99),
        calls_per_sec,
    })
}

/// A temporary directory removed on drop (also on early return).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `netproto demo`: every transport on loopback, the lossy-UDP row, the
/// cluster row.
pub(crate) async fn demo(round_trips: usize) -> Result<(), Failure> {
    let dir = TempDir(std::env::temp_dir().join(format!("netproto-demo-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).map_err(|source| {
        err(netproto::TlsError::File {
            path: dir.0.clone(),
            source,
        })
    })?;
    // A development certificate for the TLS row, trusted by the demo client.
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    netproto::self_signed(
        "localhost",
        &["localhost".to_owned(), "127.0.0.1".to_owned()],
        Validity::days(1),
    )
    .and_then(|c| c.write(&cert, &key))
    .map_err(err)?;
    let transports = [
        ("tcp", "127.0.0.1:0".to_owned()),
        (
            "unix",
            format!("unix://{}", dir.0.join("demo.sock").display()),
        ),
        ("tls", "tls://127.0.0.1:0".to_owned()),
        ("udp", "udp://127.0.0.1:0".to_owned()),
    ];
    println!(
        "netproto demo: {round_trips} echo round trips per transport, then 64 concurrent callers\n\
         tcp, unix, udp: Noise_XX_25519_ChaChaPoly_SHA256; tls: TLS 1.3 (rustls, ring) with a generated certificate\n"
    );
    println!(
        "{:<9} {:>14} {:>12} {:>12} {:>24}",
        "transport", "handshake", "rtt p50", "rtt p99", "calls/s (64 in flight)"
    );
    for (name, address) in transports {
        let mut cfg = NetworkConfig::default();
        cfg.server.address = address;
        cfg.tls.cert_path = path_string(&cert);
        cfg.tls.key_path = path_string(&key);
        cfg.tls.ca_path = path_string(&cert);
        let row = demo_row(name, cfg, round_trips).await?;
        println!(
            "{:<9} {:>11.3} ms {:>9.1} µs {:>9.1} µs {:>24.0}",
            name,
            row.handshake.as_secs_f64() * 1e3,
            row.p50.as_secs_f64() * 1e6,
            row.p99.as_secs_f64() * 1e6,
            row.calls_per_sec
        );
    }
    lossy_row().await?;
    cluster::demo_row().await
}

/// Messages, and their size, in the lossy-UDP row: large enough that each
/// is cut into hundreds of datagrams, so that some of every message is lost.
const LOSSY_MESSAGES: usize = 4;
const LOSSY_SIZE: usize = 512 * 1024;
/// Share of the datagrams each side's socket drops.
const LOSS: f64 = 0.05;

/// Large messages over netproto-udp between sockets that drop 5 % of what
/// they send; fails unless every one arrived exactly once, intact.
async fn lossy_row() -> Result<(), Failure> {
    let outcome = netproto_bench::lossy_delivery(
        LOSSY_MESSAGES,
        LOSSY_SIZE,
        LOSS,
        0x6c6f_7373,
        Duration::from_mins(1),
    )
    .await
    .map_err(|e| Failure::Demo(format!("lossy UDP: {e}")))?;
    println!(
        "\nudp, {:.0} % of datagrams dropped each way: {} × {} KiB sent, {} delivered exactly once \
         ({} duplicates, {} damaged) in {:.3} s, {:.1} MB/s; {} pieces sent again, {} datagrams sent",
        outcome.loss * 100.0,
        outcome.messages,
        outcome.size / 1024,
        outcome.delivered,
        outcome.duplicates,
        outcome.corrupted,
        outcome.elapsed.as_secs_f64(),
        outcome.goodput_mb_per_sec(),
        outcome.retransmitted,
        outcome.datagrams,
    );
    if outcome.exactly_once() {
        Ok(())
    } else {
        Err(Failure::Demo(format!(
            "lossy UDP: {} of {} messages delivered, {} duplicates, {} damaged",
            outcome.delivered, outcome.messages, outcome.duplicates, outcome.corrupted
        )))
    }
}
