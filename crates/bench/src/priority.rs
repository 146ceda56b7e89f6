//! W10 (issue #18): the round trip of an urgent 64-byte message while the
//! same connection carries a 64 MiB bulk message, with priorities on and
//! off, next to the same connection's idle round trip.
//!
//! One TCP connection in this process: the client sends urgent messages on
//! odd stream ids (the server echoes them at once) and the bulk message on
//! an even one (the server answers 1 byte when it has all of it). Round
//! trips are sampled back to back from before the bulk message is queued
//! until its answer arrives, for [`BULK_TRANSFERS`] transfers. Four
//! measurements: priorities on; on with a small kernel send buffer on the
//! sending socket; on with `TCP_NOTSENT_LOWAT` there; priorities off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use netproto_transport::{
    AnyListener, Connection, ConnectionConfig, DefaultTransport, Flush, Listener, Priority,
    SendHalf, SocketOptions,
};
use tokio::sync::mpsc;

use crate::systems::{Fixture, Result, System};
use crate::workloads::Plan;
use crate::{BenchError, Report};

/// Bulk transfers per measurement (with priorities off an urgent message
/// waits for the rest of one, so each gives one or two samples).
const BULK_TRANSFERS: usize = 3;
const URGENT: &[u8] = &[0x5a; 64];
/// `SO_SNDBUF` of the second measurement (Linux doubles it: 128 KiB).
const SMALL_SEND_BUFFER: u32 = 64 * 1024;
/// `TCP_NOTSENT_LOWAT` of the third: one fill of the writer.
const NOTSENT_LOWAT: u32 = 128 * 1024;

/// Runs W10 once and records its figures (µs) as pass `pass`.
pub(crate) async fn record(
    fx: &Arc<Fixture>,
    plan: Plan,
    report: &mut Report,
    pass: usize,
) -> Result<()> {
    let bulk = if plan.timed < Duration::from_secs(1) {
        4 << 20
    } else {
        64 << 20
    };
    let (idle, busy) = measure(fx, plan, bulk, true, None).await?;
    let mut options = SocketOptions::default();
    options.send_buffer = Some(SMALL_SEND_BUFFER);
    let (_, small) = measure(fx, plan, bulk, true, Some(options)).await?;
    let mut options = SocketOptions::default();
    options.notsent_lowat = Some(NOTSENT_LOWAT);
    let (_, lowat) = measure(fx, plan, bulk, true, Some(options)).await?;
    let (_, off) = measure(fx, plan, bulk, false, None).await?;
    let us = |samples: &[Duration], p: f64| crate::quantile(samples, p).as_secs_f64() * 1e6;
    let tcp = System::NetprotoTcp;
    report.record("W10", "idle p50", "µs", tcp, pass, us(&idle, 0.5));
    report.record("W10", "busy p50", "µs", tcp, pass, us(&busy, 0.5));
    report.record("W10", "busy p99", "µs", tcp, pass, us(&busy, 0.99));
    let small = us(&small, 0.5);
    report.record("W10", "busy p50, SO_SNDBUF 64 KiB", "µs", tcp, pass, small);
    let lowat = us(&lowat, 0.5);
    report.record(
        "W10",
        "busy p50, TCP_NOTSENT_LOWAT 128 KiB",
        "µs",
        tcp,
        pass,
        lowat,
    );
    report.record(
        "W10",
        "busy p50, priorities off",
        "µs",
        tcp,
        pass,
        us(&off, 0.5),
    );
    #[allow(clippy::cast_precision_loss)] // a handful of samples
    let n = off.len() as f64;
    report.record("W10", "samples, priorities off", "n", tcp, pass, n);
    Ok(())
}

fn config(fx: &Fixture, server: bool, bulk: usize, priorities: bool) -> ConnectionConfig {
    let handshake = if server {
        fx.netproto_server_handshake()
    } else {
        fx.netproto_client_handshake()
    };
    let mut cfg = ConnectionConfig::new(handshake);
    cfg.max_message_size = bulk + 1024;
    cfg.priorities = priorities;
    cfg
}

/// Idle and busy round trips (sorted) on one connection.
async fn measure(
    fx: &Arc<Fixture>,
    plan: Plan,
    bulk: usize,
    priorities: bool,
    sending_socket: Option<SocketOptions>,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let mut listener =
        AnyListener::bind(&"tcp://127.0.0.1:0".parse()?, SocketOptions::default()).await?;
    let endpoint = listener.local_endpoint().clone();
    let server_cfg = config(fx, true, bulk, priorities).for_endpoint(&endpoint);
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let conn = Connection::server(stream, server_cfg).await?;
        let (send, mut recv) = conn.split();
        loop {
            let Ok(f) = recv.recv_frame().await else {
                return Ok::<_, BenchError>(());
            };
            let answer: &[u8] = if f.stream_id % 2 == 1 {
                &f.payload
            } else {
                b"!"
            };
            send.send_with(f.stream_id, answer, Flush::Now).await?;
        }
    });
    let mut cfg = config(fx, false, bulk, priorities);
    if let Some(options) = sending_socket {
        // The sender's kernel queue is where most of an urgent message's
        // wait is (it grows to megabytes on loopback): a smaller one keeps
        // more of the bulk message in the connection, where the urgent one
        // overtakes it. Users set it the same way.
        cfg.dialer = Some(Arc::new(DefaultTransport { options }));
    }
    let conn = netproto_transport::connect(&endpoint, cfg).await?;
    let (send, mut recv) = conn.split();
    // The reader hands urgent echoes to the sampler and bulk answers to
    // the loop that waits for them.
    let (echo_tx, echoes) = mpsc::unbounded_channel();
    let (bulk_tx, mut bulk_answers) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Ok(f) = recv.recv_frame().await {
            let to = if f.stream_id % 2 == 1 {
                &echo_tx
            } else {
                &bulk_tx
            };
            if to.send(Instant::now()).is_err() {
                break;
            }
        }
    });
    let mut urgent = Urgent {
        send: send.clone(),
        echoes,
        next_id: 1,
    };
    for _ in 0..plan.warmup / 10 {
        urgent.round_trip().await?;
    }
    let mut idle = Vec::with_capacity(plan.warmup);
    for _ in 0..plan.warmup {
        idle.push(urgent.round_trip().await?);
    }
    let body = Bytes::from(vec![0xb0u8; bulk]);
    let mut busy = Vec::new();
    for id in (1..=BULK_TRANSFERS as u64).map(|t| 2 * t) {
        let bulk_send = send.clone();
        let body = body.clone();
        let sender =
            tokio::spawn(async move { bulk_send.send_at(id, &body[..], Priority::BULK).await });
        // Sample until the server has the whole bulk message.
        loop {
            busy.push(urgent.round_trip().await?);
            if bulk_answers.try_recv().is_ok() {
                break;
            }
        }
        sender
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))??;
    }
    drop((send, urgent));
    reader.abort();
    let _ = server.await;
    idle.sort();
    busy.sort();
    Ok((idle, busy))
}

/// The sampler's side: urgent messages out, their echoes in.
struct Urgent {
    send: SendHalf,
    echoes: mpsc::UnboundedReceiver<Instant>,
    next_id: u64,
}

impl Urgent {
    async fn round_trip(&mut self) -> Result<Duration> {
        let start = Instant::now();
        self.send
            .send_at(self.next_id, URGENT, Priority::URGENT)
            .await?;
        self.next_id += 2;
        let at = self.echoes.recv().await.ok_or(BenchError::Closed)?;
        Ok(at.saturating_duration_since(start))
    }
}
