//! 10,000 messages from 0 B to 1 MiB, both directions at once, over TCP and
//! Unix sockets, with and without compression, checked byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use bytes::Bytes;
use netproto_transport::TransportError;
use netproto_wire::{Compression, CompressionPolicy, Frame, Headers};
use rand::{Rng, SeedableRng};

const MESSAGES: usize = 10_000;

/// Deterministic message `i` of a run: mostly small, every size class up to
/// exactly 1 MiB, compressible or not depending on `i`.
fn message(seed: u64, i: usize) -> Bytes {
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let len = match i {
        0 => 0,
        1 => 1 << 20,
        _ if i.is_multiple_of(500) => rng.gen_range(64 * 1024..=1 << 20),
        _ if i.is_multiple_of(50) => rng.gen_range(4096..70_000),
        _ => rng.gen_range(0..600),
    };
    if i.is_multiple_of(3) {
        // Text-like, compressible.
        Bytes::from(
            (0..len)
                .map(|k| b"netproto message "[(k + i) % 17])
                .collect::<Vec<u8>>(),
        )
    } else {
        let mut v = vec![0u8; len];
        rng.fill(&mut v[..]);
        Bytes::from(v)
    }
}

async fn exchange(endpoint: &str, codec: Compression) {
    let mut server = common::echo_server(endpoint, move |cfg| {
        cfg.compression = CompressionPolicy::new(codec);
    })
    .await;
    let conn = common::client_with(&server.endpoint, server.server_key, |cfg| {
        cfg.compression = CompressionPolicy::new(codec);
    })
    .await
    .unwrap();
    assert_eq!(conn.info().compression, codec, "codec negotiated");
    let (send, mut recv) = conn.split();
    let seed = 0x6e70_7472 ^ codec as u64;
    // The writer sends everything while the reader checks the echoes: both
    // directions are busy at once, and the queue bound keeps memory flat.
    let sender = tokio::spawn(async move {
        for i in 0..MESSAGES {
            let mut f = Frame::data(i as u64, message(seed, i));
            if i % 1000 == 7 {
                f = f.with_headers(
                    Headers::builder()
                        .insert("i", i.to_string())
                        .unwrap()
                        .build(),
                );
            }
            send.send_frame(f).await.unwrap();
        }
        send
    });
    let mut bytes = 0usize;
    for i in 0..MESSAGES {
        let f = recv.recv_frame().await.unwrap();
        assert_eq!(f.stream_id, i as u64, "order");
        let expected = message(seed, i);
        assert_eq!(f.payload.len(), expected.len(), "message {i} length");
        assert!(f.payload == expected, "message {i} content");
        if i % 1000 == 7 {
            assert_eq!(f.headers.get(b"i"), Some(i.to_string().as_bytes()));
        }
        bytes += f.payload.len();
    }
    assert!(bytes > 10 << 20, "exercised {bytes} bytes");
    let send = sender.await.unwrap();
    send.close().await.unwrap();
    assert_eq!(
        recv.recv_frame().await.unwrap_err(),
        TransportError::ConnectionClosed { clean: true }
    );
    assert_eq!(common::next_outcome(&mut server).await, Ok(MESSAGES));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_plain() {
    exchange("tcp://127.0.0.1:0", Compression::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_lz4() {
    exchange("tcp://127.0.0.1:0", Compression::Lz4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_ipv6_zstd() {
    // Where the machine has no IPv6 loopback, fall back to IPv4 but keep the codec.
    let v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    exchange(
        if v6 {
            "tcp://[::1]:0"
        } else {
            "tcp://127.0.0.1:0"
        },
        Compression::Zstd,
    )
    .await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_plain_and_lz4() {
    for codec in [Compression::None, Compression::Lz4] {
        let path = common::socket_path("exchange");
        exchange(&format!("unix://{}", path.display()), codec).await;
        // The listener is dropped when the aborted server task unwinds.
        for _ in 0..200 {
            if !path.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(!path.exists(), "socket file removed with the listener");
    }
}
