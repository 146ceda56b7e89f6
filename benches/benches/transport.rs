//! netproto secure connections over loopback TCP next to raw tokio TCP with
//! `LengthDelimitedCodec` (the floor), measured in the same run:
//! 64 B echo round trips and 64 KiB one-way bulk transfer.
//!
//! Run with `cargo xtask criterion` (or `cargo bench -p netproto-benches --bench transport`).

// Benchmark inputs are built here, not received: a failure is a bug to see at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// criterion_group! generates undocumented items.
#![allow(missing_docs)]

mod shared;

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netproto_testkit::{serve_connections, Keys};
use netproto_transport::{Accept, AnyListener, RecvHalf, SendHalf, SocketOptions};
use shared::ACK_EVERY;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A netproto echo server (`None`) or sink that acknowledges every
/// `ack_every` frames, and a client connected to it.
async fn netproto_pair(bulk_ack_every: Option<u64>) -> (SendHalf, RecvHalf) {
    let keys = Keys::new();
    let listener = AnyListener::bind(
        &"tcp://127.0.0.1:0".parse().unwrap(),
        SocketOptions::default(),
    )
    .await
    .unwrap();
    let ep = Accept::local_endpoint(&listener).clone();
    serve_connections(listener, keys.server_config(), move |conn| {
        let (send, recv) = conn.split();
        shared::netproto_peer(send, recv, bulk_ack_every)
    });
    netproto_transport::connect(&ep, keys.client_config())
        .await
        .unwrap()
        .split()
}

async fn raw_pair(bulk_ack_every: Option<u64>) -> Framed<TcpStream, LengthDelimitedCodec> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        shared::framed_peer(Framed::new(s, LengthDelimitedCodec::new()), bulk_ack_every).await;
    });
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    Framed::new(s, LengthDelimitedCodec::new())
}

fn round_trips(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("tcp_rtt_64B");
    let payload = Bytes::from_static(&[0x42; 64]);

    let mut raw = rt.block_on(raw_pair(None));
    g.bench_function("raw_tokio_length_delimited", |b| {
        b.iter_custom(|iters| rt.block_on(shared::framed_echo(&mut raw, &payload, iters)));
    });
    let (send, mut recv) = rt.block_on(netproto_pair(None));
    g.bench_function("netproto", |b| {
        b.iter_custom(|iters| {
            rt.block_on(shared::netproto_echo(&send, &mut recv, &payload, iters))
        });
    });
    g.finish();
}

const BULK: usize = 64 * 1024;

fn bulk(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("tcp_bulk_64KiB");
    g.throughput(Throughput::Bytes((BULK as u64) * ACK_EVERY));
    g.measurement_time(Duration::from_secs(5));
    let payload = Bytes::from(vec![0x5a; BULK]);

    let mut raw = rt.block_on(raw_pair(Some(ACK_EVERY)));
    g.bench_function("raw_tokio_length_delimited", |b| {
        b.iter_custom(|iters| rt.block_on(shared::framed_bulk(&mut raw, &payload, iters)));
    });
    let (send, mut recv) = rt.block_on(netproto_pair(Some(ACK_EVERY)));
    g.bench_function("netproto", |b| {
        b.iter_custom(|iters| {
            rt.block_on(shared::netproto_bulk(&send, &mut recv, &payload, iters))
        });
    });
    g.finish();
}

criterion_group!(benches, round_trips, bulk);
criterion_main!(benches);
