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
    // A directory of its own, to see what binding leaves in it.
    let dir = common::socket_path("rules-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
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
    // It was bound in a private staging directory (so it never had the
    // umask's mode) and moved into place: nothing of that is left.
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("s.sock")]);
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
    std::fs::remove_dir(&dir).unwrap();
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
        common::send_message(&conn, &m).await.unwrap();
        assert_eq!(common::recv_message(&mut conn).await.unwrap(), m);
    }
    assert!(conn.info().peer_key.is_some());
    conn.close().await.unwrap();
}

/// A peer that completes the handshake and then never reads: the sender's
/// queue fills (`Backpressure` from `try_send_frame`), and a blocked write ends
/// in a write timeout instead of growing memory.
#[tokio::test]
async fn peer_that_stops_reading_causes_backpressure_then_write_timeout() {
    use std::time::Duration;

    use netproto_testkit::{serve_connections, Keys};
    use netproto_transport::{Connection, TimeoutKind};

    let keys = Keys::new();
    let server_pub = keys.server_public();
    let listener = AnyListener::bind(
        &"tcp://127.0.0.1:0".parse().unwrap(),
        SocketOptions::default(),
    )
    .await
    .unwrap();
    let ep = netproto_transport::Accept::local_endpoint(&listener).clone();
    let (hold_tx, mut hold_rx) = tokio::sync::mpsc::channel::<Connection>(1);
    // Keeps the connection open without ever reading from it.
    let _server = serve_connections(listener, keys.server_config(), move |conn| {
        let hold_tx = hold_tx.clone();
        async move {
            let _ = hold_tx.send(conn).await;
        }
    });
    let conn = common::client_with(&ep, server_pub, |cfg| {
        // What the old 8-slot message queue held of these 64 KiB frames.
        cfg.send_buffer = 8 * 64 * 1024;
        cfg.write_timeout = Duration::from_millis(500);
    })
    .await
    .unwrap();
    let _held = hold_rx.recv().await.unwrap();
    let (send, _recv) = conn.split();
    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
    let mut queued = 0usize;
    let backpressure = loop {
        match send.try_send_frame(Frame::data(0, chunk.clone())) {
            Ok(()) => queued += 1,
            Err(e) => break e,
        }
        assert!(
            queued <= 10_000,
            "no backpressure after {queued} frames (640 MB)"
        );
        tokio::task::yield_now().await;
    };
    assert_eq!(backpressure, TransportError::Backpressure);
    // Kernel buffers plus the 512 KiB send buffer hold a few MiB at most.
    assert!(
        queued < 2_000,
        "{queued} frames accepted before backpressure"
    );
    // Waiting sends fail once the writer's blocked write times out.
    let err = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Err(e) = send.send_frame(Frame::data(0, chunk.clone())).await {
                return e;
            }
        }
    })
    .await
    .expect("the write timeout fires");
    common::assert_timeout(&err, TimeoutKind::Write);
}

#[tokio::test]
async fn invalid_frames_are_refused_without_harm() {
    let server = common::echo_server("tcp://127.0.0.1:0", |_| {}).await;
    let mut conn = common::client(&server.endpoint, server.server_key)
        .await
        .unwrap();
    let more = Frame::data(1, Bytes::from_static(b"piece")).with_more(true);
    let bye = Frame::new(FrameKind::Bye, 0, Bytes::new());
    let mut big = netproto_wire::Headers::builder();
    for i in 0..65 {
        big = big.insert(format!("k{i}"), "v").unwrap();
    }
    let headers = Frame::data(1, Bytes::new()).with_headers(big.build());
    for f in [more, bye, headers] {
        let err = conn.send_frame(f).await.unwrap_err();
        assert!(matches!(err, TransportError::InvalidFrame(_)), "{err:?}");
        assert!(!err.is_fatal());
    }
    conn.send_frame(Frame::data(2, Bytes::from_static(b"fine")))
        .await
        .unwrap();
    assert_eq!(&conn.recv_frame().await.unwrap().payload[..], b"fine");
}

/// `SocketOptions::notsent_lowat` reaches both ends' sockets (Linux).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn notsent_lowat_is_set_on_dialled_and_accepted_sockets() {
    use netproto_transport::{AnyStream, DefaultTransport, Listener};

    let mut options = SocketOptions::default();
    options.notsent_lowat = Some(128 * 1024);
    let mut listener = AnyListener::bind(&"tcp://127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    let endpoint = listener.local_endpoint().clone();
    let dialled = DefaultTransport { options }
        .connect(&endpoint)
        .await
        .unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    for stream in [&dialled, &accepted] {
        let AnyStream::Tcp(s) = stream else {
            panic!("a TCP stream")
        };
        assert_eq!(
            socket2::SockRef::from(s).tcp_notsent_lowat().unwrap(),
            128 * 1024
        );
    }
}
