//! Unix socket file handling, Sink/Stream adapters, PING/PONG, graceful close.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use netproto_transport::{AnyListener, Endpoint, SocketOptions, TransportError};
use netproto_wire::{Frame, FrameKind, Message};

#[cfg(unix)]
#[tokio::test]
async fn unix_socket_file_rules() {
    use std::os::unix::fs::PermissionsExt;
    let path = common::socket_path("rules");
    let ep = Endpoint::Unix(path.clone());
    // A stale socket file (nobody listening) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let listener = AnyListener::bind(&ep, SocketOptions::default())
        .await
        .unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A live one is not.
    let err = AnyListener::bind(&ep, SocketOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Io {
                kind: std::io::ErrorKind::AddrInUse,
                ..
            }
        ),
        "{err:?}"
    );
    drop(listener);
    assert!(!path.exists(), "removed on drop");
    // A regular file is never deleted.
    std::fs::write(&path, b"not a socket").unwrap();
    assert!(AnyListener::bind(&ep, SocketOptions::default())
        .await
        .is_err());
    assert!(path.exists());
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test]
async fn sink_stream_ping_and_close() {
    let mut server = common::echo_server("tcp://127.0.0.1:0", |_| {}).await;
    let conn = common::client(&server.endpoint, server.server_key)
        .await
        .unwrap();
    let (send, recv) = conn.split();
    let mut sink = Box::pin(send.sink());
    let mut stream = Box::pin(recv.into_stream());
    // A PING is answered by the peer's transport, not echoed by the server.
    sink.send(Frame::new(
        FrameKind::Ping,
        0,
        Bytes::from_static(b"12345678"),
    ))
    .await
    .unwrap();
    let pong = stream.next().await.unwrap().unwrap();
    assert_eq!(pong.kind, FrameKind::Pong);
    assert_eq!(&pong.payload[..], b"12345678");
    for i in 0..10u64 {
        sink.feed(Frame::data(
            i,
            Bytes::from(Message::Echo(i.to_string()).to_vec().unwrap()),
        ))
        .await
        .unwrap();
    }
    sink.flush().await.unwrap();
    for i in 0..10u64 {
        let f = stream.next().await.unwrap().unwrap();
        assert_eq!(
            Message::decode(&f.payload).unwrap(),
            Message::Echo(i.to_string())
        );
    }
    send.close().await.unwrap();
    // The server answers our BYE with its own: the stream ends cleanly.
    assert!(stream.next().await.is_none());
    assert_eq!(common::next_outcome(&mut server).await, Ok(10));
}

#[tokio::test]
async fn message_api_roundtrip() {
    let server = common::echo_server("tcp://127.0.0.1:0", |_| {}).await;
    let mut conn = common::client(&server.endpoint, server.server_key)
        .await
        .unwrap();
    for m in [
        Message::Ping,
        Message::Echo("hello".into()),
        Message::Data(vec![1, 2, 3]),
        Message::Custom {
            command: "ADD".into(),
            payload: vec![9; 100_000],
        },
    ] {
        conn.send(m.clone()).await.unwrap();
        assert_eq!(conn.recv().await.unwrap(), m);
    }
    assert!(conn.info().peer_key.is_some());
    conn.close().await.unwrap();
}
