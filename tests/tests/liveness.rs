//! Liveness is the connection core's: every authenticated record counts as
//! life, so a large message arriving slowly is not mistaken for silence.
//! Runs in paused tokio time: 80 virtual seconds cost no wall time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use netproto_testkit::{Keys, Throttled};
use netproto_transport::{Connection, TransportError};

/// A 16 MiB message uploaded at 200 KiB/s takes 82 s, four times the
/// 20 s idle deadline (15 s keep-alive + 5 s): each continuation record
/// keeps the connection alive, and the message arrives whole.
#[tokio::test(start_paused = true)]
async fn slow_16_mib_upload_is_not_closed_as_silent() {
    let keys = Keys::new();
    let (client_end, server_end) = tokio::io::duplex(256 * 1024);
    let server_cfg = keys.server_config();
    assert_eq!(server_cfg.idle_timeout, Some(Duration::from_secs(20)));
    let server = tokio::spawn(async move {
        let mut conn = Connection::server(server_end, server_cfg).await?;
        let started = tokio::time::Instant::now();
        let f = conn.recv_frame().await?;
        Ok::<_, TransportError>((f.payload.len(), started.elapsed()))
    });
    let slow = Throttled::new(client_end, 200 * 1024, 16 * 1024);
    let conn = Connection::client(slow, keys.client_config())
        .await
        .unwrap();
    let message: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    conn.send(&message).await.unwrap();
    let (len, took) = server.await.unwrap().unwrap();
    assert_eq!(len, message.len());
    assert!(took > Duration::from_mins(1), "took {took:?}");
}

/// The control: the same peer, silent, is closed at the idle deadline.
#[tokio::test(start_paused = true)]
async fn silent_peer_is_closed_at_the_idle_deadline() {
    let keys = Keys::new();
    let (client_end, server_end) = tokio::io::duplex(256 * 1024);
    let server_cfg = keys.server_config();
    let server = tokio::spawn(async move {
        let mut conn = Connection::server(server_end, server_cfg).await?;
        let started = tokio::time::Instant::now();
        let err = conn.recv_frame().await.unwrap_err();
        Ok::<_, TransportError>((err, started.elapsed()))
    });
    // The client never reads, so its core never answers the keep-alive.
    let _conn = Connection::client(client_end, keys.client_config())
        .await
        .unwrap();
    let (err, took) = server.await.unwrap().unwrap();
    assert!(
        matches!(
            err,
            TransportError::Timeout {
                kind: netproto_transport::TimeoutKind::ReadIdle,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_secs(20) && took < Duration::from_secs(21),
        "{took:?}"
    );
}
