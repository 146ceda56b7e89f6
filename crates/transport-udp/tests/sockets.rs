//! Real loopback sockets: many messages both ways, byte-exact, on a clean
//! socket and on one that drops 5 % of what it sends.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    missing_docs
)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair, Pinned};
use netproto_testkit::LossySocket;
use netproto_transport_udp::{DatagramSocket, Delivery, UdpConfig, UdpEndpoint, UdpError};
use netproto_wire::Frame;
use rand::{Rng, SeedableRng};

fn payload(n: u64, len: usize) -> Bytes {
    let mut rng = rand::rngs::StdRng::seed_from_u64(n);
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    Bytes::from(v)
}

/// Log-uniform sizes from 0 to 64 KiB.
fn sizes(count: usize, seed: u64) -> Vec<usize> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let bits = rng.gen_range(0..=16u32);
            rng.gen_range(0..=(1usize << bits))
        })
        .collect()
}

/// A server that echoes every message back on the same session, and a
/// client that sends `sizes` and checks every echo.
async fn echo_run<S: DatagramSocket, C: DatagramSocket>(
    server_socket: S,
    client_socket: C,
    count: usize,
    lossy: bool,
) {
    let mut rng = rand::rngs::OsRng;
    let server_key = Keypair::generate(&mut rng);
    let pin = Arc::new(Pinned(*server_key.public()));
    let accept = HandshakeConfig::new(Some(server_key), Arc::new(AnyPeer));
    let server =
        UdpEndpoint::with_socket(server_socket, UdpConfig::default(), Some(accept)).unwrap();
    let server_addr = server.local_addr();
    let echo = tokio::spawn(async move {
        let mut conn = server.accept().await.unwrap();
        loop {
            match conn.recv().await {
                Ok((frame, _)) => conn.send(&frame, Delivery::Reliable).await.unwrap(),
                Err(UdpError::PeerClosed(_)) => return,
                Err(e) => panic!("server: {e}"),
            }
        }
    });
    let client = UdpEndpoint::with_socket(client_socket, UdpConfig::default(), None).unwrap();
    let cfg = HandshakeConfig::new(Some(Keypair::generate(&mut rng)), pin);
    let mut conn = client.connect(server_addr, cfg).await.unwrap();
    let sizes = sizes(count, 3);
    let (mut sent, mut got) = (0usize, 0usize);
    while got < sizes.len() {
        // Keep up to 64 messages in flight.
        while sent < sizes.len() && sent - got < 64 {
            let frame = Frame::data(sent as u64 + 1, payload(sent as u64, sizes[sent]));
            conn.send(&frame, Delivery::Reliable).await.unwrap();
            sent += 1;
        }
        let (frame, reliable) = conn.recv().await.unwrap();
        assert!(reliable);
        let n = frame.stream_id - 1;
        assert_eq!(frame.payload, payload(n, sizes[n as usize]), "message {n}");
        got += 1;
    }
    drop(conn);
    // The BYE is sent once: on a lossy socket it may be lost, and the server
    // would find out only by its idle timeout, so do not wait for that.
    match tokio::time::timeout(Duration::from_secs(2), echo).await {
        Ok(result) => result.unwrap(),
        Err(_) => assert!(lossy, "the server saw no BYE on a clean socket"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_both_ways_on_loopback() {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let c = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    tokio::time::timeout(Duration::from_mins(4), echo_run(s, c, 10_000, false))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_survive_a_socket_that_drops_five_percent() {
    let s = LossySocket::bind(0.05, 1).await.unwrap();
    let c = LossySocket::bind(0.05, 2).await.unwrap();
    tokio::time::timeout(Duration::from_mins(4), echo_run(s, c, 1_000, true))
        .await
        .unwrap();
}
