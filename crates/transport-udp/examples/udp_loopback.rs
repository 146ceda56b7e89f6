//! Loopback figures for the UDP transport next to raw tokio UDP, measured
//! in the same run: 64-byte round trips (p50, p99) and reliable message
//! throughput at 64 KiB and 1 MiB.
//!
//! `cargo run --release -p netproto-transport-udp --example udp_loopback`
//!
//! A quick look, not the harness: `netproto bench` gets UDP workloads with
//! issue #16.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair, Pinned};
use netproto_transport_udp::{Delivery, UdpConfig, UdpConnection, UdpEndpoint};
use netproto_wire::Frame;
use tokio::net::UdpSocket;

const ROUNDS: usize = 20_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

async fn raw_rtts() -> Vec<Duration> {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        loop {
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            server.send_to(&buf[..n], from).await.unwrap();
        }
    });
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(addr).await.unwrap();
    let mut buf = [0u8; 2048];
    let mut rtts = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        client.send(&[7u8; 64]).await.unwrap();
        client.recv(&mut buf).await.unwrap();
        rtts.push(t.elapsed());
    }
    rtts
}

async fn pair() -> (UdpConnection, UdpEndpoint, UdpEndpoint) {
    let mut rng = rand::rngs::OsRng;
    let key = Keypair::generate(&mut rng);
    let pin = Arc::new(Pinned(*key.public()));
    let server = UdpEndpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        UdpConfig::default(),
        Some(HandshakeConfig::new(Some(key), Arc::new(AnyPeer))),
    )
    .await
    .unwrap();
    let client = UdpEndpoint::bind("127.0.0.1:0".parse().unwrap(), UdpConfig::default(), None)
        .await
        .unwrap();
    let cfg = HandshakeConfig::new(Some(Keypair::generate(&mut rng)), pin);
    let conn = client.connect(server.local_addr(), cfg).await.unwrap();
    (conn, server, client)
}

/// An echo server on the endpoint's first session.
fn echo(server: UdpEndpoint) {
    tokio::spawn(async move {
        let mut conn = server.accept().await.unwrap();
        while let Ok((frame, _)) = conn.recv().await {
            if conn.send(&frame, Delivery::Reliable).await.is_err() {
                return;
            }
        }
    });
}

async fn netproto_rtts() -> Vec<Duration> {
    let (mut conn, server, _client) = pair().await;
    echo(server);
    let frame = Frame::data(1, vec![7u8; 64]);
    let mut rtts = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        conn.send(&frame, Delivery::Reliable).await.unwrap();
        conn.recv().await.unwrap();
        rtts.push(t.elapsed());
    }
    rtts
}

/// One way: `count` reliable messages of `size` bytes, until the last is
/// acknowledged; MB/s of payload.
async fn netproto_throughput(size: usize, count: usize) -> f64 {
    let (conn, server, _client) = pair().await;
    tokio::spawn(async move {
        let mut conn = server.accept().await.unwrap();
        while conn.recv().await.is_ok() {}
    });
    let frame = Frame::data(1, vec![7u8; size]);
    let t = Instant::now();
    for _ in 0..count - 1 {
        conn.send(&frame, Delivery::Reliable).await.unwrap();
    }
    conn.send_confirmed(&frame).await.unwrap();
    (size * count) as f64 / t.elapsed().as_secs_f64() / 1e6
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut raw = raw_rtts().await;
    let mut ours = netproto_rtts().await;
    raw.sort_unstable();
    ours.sort_unstable();
    let (r50, r99) = (percentile(&raw, 0.5), percentile(&raw, 0.99));
    let (n50, n99) = (percentile(&ours, 0.5), percentile(&ours, 0.99));
    println!("64 B round trip, {ROUNDS} rounds");
    println!("  raw tokio UDP      p50 {r50:>10.1?}  p99 {r99:>10.1?}");
    println!(
        "  netproto-udp       p50 {n50:>10.1?}  p99 {n99:>10.1?}  (p50 {:.2}x raw)",
        n50.as_secs_f64() / r50.as_secs_f64()
    );
    for (size, count) in [(64 << 10, 2000), (1 << 20, 100)] {
        let mbps = netproto_throughput(size, count).await;
        println!("reliable {size:>8} B x {count:>5}: {mbps:8.1} MB/s");
    }
}
