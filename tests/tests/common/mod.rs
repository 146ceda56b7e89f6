//! Helpers shared by the end-to-end tests: keys, configs, an echo server that
//! reports how each connection ended, and a man-in-the-middle proxy.
#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

pub mod memory;
pub mod service;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use netproto_crypto::Pinned;
use netproto_transport::{Connection, ConnectionConfig, Endpoint, TransportError};
use netproto_wire::{PacketDecoder, HEADER_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use netproto_testkit::{config, echo_server, echo_server_with, key, EchoServer};

/// A unique temporary Unix socket path.
pub fn socket_path(name: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("np-{name}-{}-{id}.sock", std::process::id()))
}

pub async fn client(
    endpoint: &Endpoint,
    server: netproto_crypto::PublicKey,
) -> Result<Connection, TransportError> {
    client_with(endpoint, server, |_| {}).await
}

pub async fn client_with(
    endpoint: &Endpoint,
    server: netproto_crypto::PublicKey,
    tune: impl FnOnce(&mut ConnectionConfig),
) -> Result<Connection, TransportError> {
    let mut cfg = config(key(), Arc::new(Pinned(server)));
    tune(&mut cfg);
    netproto_transport::connect(endpoint, cfg).await
}

/// Asserts that `err` is the timeout `kind`.
pub fn assert_timeout(err: &TransportError, kind: netproto_transport::TimeoutKind) {
    assert!(
        matches!(err, TransportError::Timeout { kind: k, .. } if *k == kind),
        "expected a {kind:?} timeout, got {err:?}"
    );
}

/// Waits (bounded) for the next connection outcome of a server.
pub async fn next_outcome(server: &mut EchoServer) -> Result<usize, TransportError> {
    server.next_outcome().await
}

/// Sends a `Message` as a one-way DATA frame.
pub async fn send_message(
    conn: &Connection,
    m: &netproto_wire::Message,
) -> Result<(), TransportError> {
    let mut buf = Vec::new();
    m.encode(&mut buf).map_err(TransportError::BadMessage)?;
    conn.send(&buf).await
}

/// Receives the next DATA frame as a `Message`.
pub async fn recv_message(conn: &mut Connection) -> Result<netproto_wire::Message, TransportError> {
    loop {
        let f = conn.recv_frame().await?;
        if f.kind == netproto_wire::FrameKind::Data {
            return netproto_wire::Message::decode(&f.payload).map_err(TransportError::BadMessage);
        }
    }
}

/// What the proxy does to the client→server packet with the given index
/// (0 is the handshake initiation).
#[derive(Debug, Clone, Copy)]
pub enum Mischief {
    FlipBit(usize),
    Replay(usize),
    TruncateAndClose(usize),
    Trickle(usize, Duration),
}

/// A TCP proxy in front of `target` that forwards everything, except that it
/// applies `mischief` to one client→server packet. Returns its endpoint.
pub async fn proxy(target: &Endpoint, mischief: Mischief) -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let Endpoint::Tcp { host, port } = target.clone() else {
        panic!("tcp only")
    };
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect((host.as_str(), port)).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut sr, &mut cw).await;
        });
        let mut decoder = PacketDecoder::new(1 << 20);
        let mut buf = BytesMut::new();
        let mut index = 0usize;
        let mut chunk = vec![0u8; 65536];
        loop {
            let Ok(n) = cr.read(&mut chunk).await else {
                return;
            };
            if n == 0 {
                let _ = sw.shutdown().await;
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            while let Ok(Some(p)) = decoder.decode(&mut buf) {
                let mut raw = Vec::new();
                netproto_wire::encode_packet(p.flags, &p.body, &mut raw).unwrap();
                match mischief {
                    Mischief::FlipBit(i) if i == index => {
                        let last = raw.len() - 1;
                        raw[last.max(HEADER_LEN)] ^= 0x01;
                        sw.write_all(&raw).await.unwrap();
                    }
                    Mischief::Replay(i) if i == index => {
                        sw.write_all(&raw).await.unwrap();
                        sw.write_all(&raw).await.unwrap();
                    }
                    Mischief::TruncateAndClose(i) if i == index => {
                        sw.write_all(&raw[..raw.len() / 2]).await.unwrap();
                        let _ = sw.shutdown().await;
                        return;
                    }
                    Mischief::Trickle(i, gap) if i == index => {
                        for b in raw {
                            if sw.write_all(&[b]).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(gap).await;
                        }
                    }
                    _ => sw.write_all(&raw).await.unwrap(),
                }
                index += 1;
            }
        }
    });
    Endpoint::Tcp {
        host: "127.0.0.1".into(),
        port: addr.port(),
    }
}

/// Runs each named `async fn body(carrier)` of the enclosing module as a
/// test over `$carrier`: one body, the same assertions, every carrier.
#[allow(unused_macros)]
macro_rules! over {
    ($carrier:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($carrier).await;
            }
        )*
    };
}
