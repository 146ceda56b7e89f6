//! Every bad-input case of issue #4 over a real socket: each gets a typed
//! error, closes only its own connection, and the server goes on serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::Mischief;
use netproto_crypto::{AllowList, CryptoError, Rejection};
use netproto_transport::{Endpoint, TimeoutKind, TransportError};
use netproto_wire::{Frame, WireError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn tcp_addr(e: &Endpoint) -> String {
    match e {
        Endpoint::Tcp { host, port } => format!("{host}:{port}"),
        other => panic!("{other}"),
    }
}

/// A healthy client still gets its echo.
async fn still_serves(server: &mut common::EchoServer) {
    let mut conn = common::client(&server.endpoint, server.server_key)
        .await
        .unwrap();
    conn.send_frame(Frame::data(1, Bytes::from_static(b"still here")))
        .await
        .unwrap();
    let f = conn.recv_frame().await.unwrap();
    assert_eq!(&f.payload[..], b"still here");
    conn.close().await.unwrap();
    assert_eq!(common::next_outcome(server).await, Ok(1));
}

async fn raw_server(
    tune: impl Fn(&mut netproto_transport::ConnectionConfig) + Send + Sync + 'static,
) -> common::EchoServer {
    common::echo_server("tcp://127.0.0.1:0", tune).await
}

#[tokio::test]
async fn garbage_before_handshake() {
    let mut server = raw_server(|_| {}).await;
    let mut s = TcpStream::connect(tcp_addr(&server.endpoint))
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let err = common::next_outcome(&mut server).await.unwrap_err();
    assert!(
        matches!(err, TransportError::Wire(WireError::BadMagic { .. })),
        "{err:?}"
    );
    // The server closed this connection.
    let mut byte = [0u8; 1];
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte))
            .await
            .unwrap()
            .unwrap_or(0),
        0
    );
    still_serves(&mut server).await;
}

#[tokio::test]
async fn four_gib_length_is_refused_from_the_header() {
    let mut server = raw_server(|_| {}).await;
    let mut s = TcpStream::connect(tcp_addr(&server.endpoint))
        .await
        .unwrap();
    s.write_all(&[b'N', b'P', b'R', b'O', 1, 0, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    let err = common::next_outcome(&mut server).await.unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Wire(WireError::Oversize {
                len: 0xffff_ffff,
                ..
            })
        ),
        "{err:?}"
    );
    still_serves(&mut server).await;
}

#[tokio::test]
async fn silent_peer_hits_handshake_timeout() {
    let mut server = raw_server(|cfg| cfg.handshake_timeout = Duration::from_millis(300)).await;
    let _s = TcpStream::connect(tcp_addr(&server.endpoint))
        .await
        .unwrap();
    let err = common::next_outcome(&mut server).await.unwrap_err();
    common::assert_timeout(&err, TimeoutKind::Handshake);
    still_serves(&mut server).await;
}

#[tokio::test]
async fn slowloris_during_handshake_is_dropped() {
    let mut server = raw_server(|cfg| cfg.handshake_timeout = Duration::from_millis(600)).await;
    let mut s = TcpStream::connect(tcp_addr(&server.endpoint))
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        for b in b"NPRO\x01\x00\x00\x00\x00\x60" {
            if s.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let err = common::next_outcome(&mut server).await.unwrap_err();
    common::assert_timeout(&err, TimeoutKind::Handshake);
    trickle.abort();
    still_serves(&mut server).await;
}

#[tokio::test]
async fn slowloris_after_handshake_hits_packet_timeout() {
    let mut server = raw_server(|cfg| cfg.packet_timeout = Duration::from_millis(300)).await;
    // Client→server packets: 0 init, 1 confirm, 2 the first record.
    let ep = common::proxy(
        &server.endpoint,
        Mischief::Trickle(2, Duration::from_millis(50)),
    )
    .await;
    let conn = common::client(&ep, server.server_key).await.unwrap();
    conn.send_frame(Frame::data(1, Bytes::from(vec![7u8; 200])))
        .await
        .unwrap();
    let err = common::next_outcome(&mut server).await.unwrap_err();
    common::assert_timeout(&err, TimeoutKind::Packet);
    still_serves(&mut server).await;
}

#[tokio::test]
async fn truncated_frame_then_eof_is_unclean_close() {
    let mut server = raw_server(|_| {}).await;
    let ep = common::proxy(&server.endpoint, Mischief::TruncateAndClose(2)).await;
    let conn = common::client(&ep, server.server_key).await.unwrap();
    conn.send_frame(Frame::data(1, Bytes::from(vec![1u8; 1000])))
        .await
        .unwrap();
    let err = common::next_outcome(&mut server).await.unwrap_err();
    assert_eq!(err, TransportError::ConnectionClosed { clean: false });
    still_serves(&mut server).await;
}

#[tokio::test]
async fn tampered_ciphertext_is_refused() {
    let mut server = raw_server(|_| {}).await;
    let ep = common::proxy(&server.endpoint, Mischief::FlipBit(2)).await;
    let conn = common::client(&ep, server.server_key).await.unwrap();
    conn.send_frame(Frame::data(1, Bytes::from_static(b"secret")))
        .await
        .unwrap();
    let err = common::next_outcome(&mut server).await.unwrap_err();
    assert_eq!(err, TransportError::Crypto(CryptoError::Decrypt));
    still_serves(&mut server).await;
}

#[tokio::test]
async fn replayed_record_is_refused() {
    let mut server = raw_server(|_| {}).await;
    let ep = common::proxy(&server.endpoint, Mischief::Replay(2)).await;
    let mut conn = common::client(&ep, server.server_key).await.unwrap();
    conn.send_frame(Frame::data(1, Bytes::from_static(b"pay me once")))
        .await
        .unwrap();
    // The original is delivered and echoed; its replay kills the connection.
    assert_eq!(
        &conn.recv_frame().await.unwrap().payload[..],
        b"pay me once"
    );
    let err = common::next_outcome(&mut server).await.unwrap_err();
    assert_eq!(err, TransportError::Crypto(CryptoError::Decrypt));
    still_serves(&mut server).await;
}

#[tokio::test]
async fn forbidden_static_key_is_refused() {
    let allowed = common::key();
    let mut server = common::echo_server_with(
        "tcp://127.0.0.1:0",
        Arc::new(AllowList::new([*allowed.public()])),
        |_| {},
    )
    .await;
    // In XX the client finishes first (its confirm is the last message), so,
    // as with a refused TLS 1.3 client certificate, it learns of the refusal
    // on its first read: the server hangs up without a BYE.
    let mut conn = common::client(&server.endpoint, server.server_key)
        .await
        .unwrap();
    let err = conn.recv_frame().await.unwrap_err();
    assert_eq!(err, TransportError::ConnectionClosed { clean: false });
    let server_err = common::next_outcome(&mut server).await.unwrap_err();
    assert!(
        matches!(
            server_err,
            TransportError::Crypto(CryptoError::PeerRejected(Rejection::NotAllowed { .. }))
        ),
        "{server_err:?}"
    );
}

#[tokio::test]
async fn wrong_server_key_is_refused_by_client() {
    let mut server = raw_server(|_| {}).await;
    let impostor = *common::key().public();
    let err = common::client(&server.endpoint, impostor)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Crypto(CryptoError::PeerRejected(Rejection::NotPinned { .. }))
        ),
        "{err:?}"
    );
    // The server sees the client walk away in the middle of the handshake.
    assert!(common::next_outcome(&mut server).await.is_err());
    still_serves(&mut server).await;
}

#[tokio::test]
async fn idle_connection_times_out() {
    let mut server = raw_server(|cfg| {
        cfg.keep_alive = None;
        cfg.idle_timeout = Some(Duration::from_millis(300));
    })
    .await;
    let _conn = common::client(&server.endpoint, server.server_key)
        .await
        .unwrap();
    let err = common::next_outcome(&mut server).await.unwrap_err();
    common::assert_timeout(&err, TimeoutKind::ReadIdle);
}

#[tokio::test]
async fn oversize_message_is_refused_before_sending() {
    let server = raw_server(|cfg| cfg.max_message_size = 1024).await;
    let conn = common::client(&server.endpoint, server.server_key)
        .await
        .unwrap();
    assert_eq!(conn.info().negotiated.max_frame, 1024);
    let err = conn
        .send_frame(Frame::data(1, Bytes::from(vec![0u8; 1025])))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        TransportError::MessageTooLarge {
            len: 1025,
            max: 1024
        }
    );
    assert!(!err.is_fatal());
}
