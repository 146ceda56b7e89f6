//! Extension frames: negotiated in the handshake, delivered only when both
//! sides registered them, skipped otherwise.

use netproto_wire::FrameRef;

use super::*;
use crate::extension::{ExtensionId, Extensions};

const KIND: u8 = 0x9a;

fn with_extension(c: &mut ConnectionConfig) {
    let mut ext = Extensions::new();
    ext.register(ExtensionId::new(5).unwrap(), [KIND]).unwrap();
    c.extensions = ext;
}

#[test]
fn a_negotiated_extension_frame_is_carried_end_to_end() {
    let mut p = Pair::new(with_extension);
    assert!(p.client.accepts_extension(KIND));
    assert!(!p.client.accepts_extension(0x9b));
    let frame = Frame::new(
        FrameKind::Extension(KIND),
        42,
        Bytes::from_static(b"telemetry"),
    );
    p.client.send_frame(p.now, &frame).unwrap();
    p.client.send_data(p.now, 1, b"after").unwrap();
    p.client_to_server();
    let f = p.server_frame().unwrap().unwrap();
    assert_eq!(
        (f.kind, f.stream_id, &f.payload[..]),
        (FrameKind::Extension(KIND), 42, &b"telemetry"[..])
    );
    assert_eq!(&p.server_frame().unwrap().unwrap().payload[..], b"after");
}

#[test]
fn an_extension_the_peer_did_not_advertise_is_refused_for_sending() {
    let (mut c, s) = configs(|_| {});
    with_extension(&mut c);
    let mut p = Pair::from_configs(&c, &s, StreamSecurity::Plain);
    p.establish();
    assert_eq!(p.client.negotiated_features() & 0xffff_ff00, 0);
    let frame = Frame::new(FrameKind::Extension(KIND), 0, Bytes::from_static(b"x"));
    let err = p.client.send_frame(p.now, &frame).unwrap_err();
    assert_eq!(
        err,
        TransportError::InvalidFrame(InvalidFrame::ExtensionNotNegotiated { kind: KIND })
    );
    assert!(!err.is_fatal());
    p.client.send_data(p.now, 1, b"still fine").unwrap();
}

#[test]
fn a_peer_that_did_not_negotiate_an_extension_skips_its_frames() {
    // The server registered nothing; a foreign client sends the frame
    // anyway, between two messages.
    let mut p = tls_pair();
    let before = FrameRef::new(FrameKind::Data, 1, b"one");
    let ext = FrameRef::new(FrameKind::Extension(KIND), 9, b"ignored");
    let after = FrameRef::new(FrameKind::Data, 2, b"two");
    p.to_server
        .extend_from_slice(&plain_packet(&[before, ext, after]));
    assert_eq!(&p.server_frame().unwrap().unwrap().payload[..], b"one");
    assert_eq!(&p.server_frame().unwrap().unwrap().payload[..], b"two");
    assert!(p.server.error().is_none());
}

#[test]
fn an_extension_frame_is_never_split_and_must_fit_one_record() {
    let mut p = Pair::new(with_extension);
    let too_big = Frame::new(
        FrameKind::Extension(KIND),
        1,
        Bytes::from(vec![0u8; 65_519]),
    );
    let err = p.client.send_frame(p.now, &too_big).unwrap_err();
    assert!(
        matches!(err, TransportError::MessageTooLarge { .. }),
        "{err:?}"
    );
    // A record already holds something: the extension frame starts the next
    // one instead of being split with MORE.
    p.client.send_data(p.now, 1, &[1u8; 10_000]).unwrap();
    let fits = Frame::new(
        FrameKind::Extension(KIND),
        2,
        Bytes::from(vec![2u8; 60_000]),
    );
    p.client.send_frame(p.now, &fits).unwrap();
    p.client_to_server();
    assert_eq!(p.server_frame().unwrap().unwrap().payload.len(), 10_000);
    let f = p.server_frame().unwrap().unwrap();
    assert_eq!(
        (f.kind, f.more, f.payload.len()),
        (FrameKind::Extension(KIND), false, 60_000)
    );
}
