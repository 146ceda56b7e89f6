//! Extension frames through the service (issue #18): a kind registered on
//! both sides is negotiated and carried end to end; a client that did not
//! register it cannot send it and the server's calls go on.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::service::{client, client_config, dispatcher, start_routes, stop, Carrier};
use netproto_service::{Client, ServiceError};
use netproto_transport::{ExtensionId, InvalidFrame, TransportError};
use netproto_wire::{Frame, FrameKind, Message};
use tokio::sync::mpsc;

/// Extension 4 of this test: kind 0x90 asks, 0x91 answers.
const ASK: u8 = 0x90;
const ANSWER: u8 = 0x91;

fn ext() -> ExtensionId {
    ExtensionId::new(4).unwrap()
}

#[tokio::test]
async fn an_extension_frame_is_negotiated_and_carried_both_ways() {
    let mut d = dispatcher();
    // The server answers each ASK with an ANSWER holding the payload reversed.
    d.extension(ext(), ASK, |f: Frame| {
        let mut body = f.payload.to_vec();
        body.reverse();
        Some(Frame::new(
            FrameKind::Extension(ANSWER),
            f.stream_id,
            Bytes::from(body),
        ))
    })
    .unwrap();
    d.extension(ext(), ANSWER, |_| None).unwrap();
    let running = start_routes(Carrier::Tcp, d).await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let cfg = client_config(&running)
        .extension(ext(), ASK, |_| None)
        .unwrap()
        .extension(ext(), ANSWER, move |f: Frame| {
            let _ = tx.send(f);
            None
        })
        .unwrap();
    let c = Client::connect(running.handle.endpoint(), cfg)
        .await
        .unwrap();
    c.send_extension(Frame::new(
        FrameKind::Extension(ASK),
        5,
        Bytes::from_static(b"abc"),
    ))
    .await
    .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an answer")
        .unwrap();
    assert_eq!(
        (got.kind, got.stream_id, &got.payload[..]),
        (FrameKind::Extension(ANSWER), 5, &b"cba"[..])
    );
    // Calls go on beside it.
    assert_eq!(c.call(Message::Ping).await.unwrap(), Message::Pong);
    stop(running, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_client_that_did_not_register_the_extension_cannot_send_it() {
    let mut d = dispatcher();
    d.extension(ext(), ASK, Some).unwrap();
    let running = start_routes(Carrier::Tcp, d).await;
    let c = client(&running).await;
    let err = c
        .send_extension(Frame::new(
            FrameKind::Extension(ASK),
            0,
            Bytes::from_static(b"x"),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ServiceError::Transport(TransportError::InvalidFrame(
                InvalidFrame::ExtensionNotNegotiated { kind: ASK }
            ))
        ),
        "{err:?}"
    );
    assert_eq!(c.call(Message::Ping).await.unwrap(), Message::Pong);
    stop(running, Duration::from_secs(1)).await;
}

#[test]
fn registering_a_kind_outside_the_extension_range_or_twice_is_refused() {
    let mut d = dispatcher();
    assert!(matches!(
        d.extension(ext(), 0x05, |_| None),
        Err(ServiceError::Transport(TransportError::Extension(_)))
    ));
    d.extension(ext(), ASK, |_| None).unwrap();
    assert!(d
        .extension(ExtensionId::new(5).unwrap(), ASK, |_| None)
        .is_err());
    assert!(ExtensionId::new(24).is_err());
}
