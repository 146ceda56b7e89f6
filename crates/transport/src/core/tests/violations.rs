//! What a peer that breaks WIRE.md's rules gets: a typed error here, and
//! an ERR on stream 0 saying why before the connection closes.

use netproto_wire::{ErrorCode, FrameRef, Headers, HeadersRef};

use super::*;

/// The ERR the server said before closing, as the client reads it.
fn client_reads_err(p: &mut Pair) -> (ErrorCode, String) {
    assert!(p.server_to_client() > 0, "the server said nothing");
    let f = p.client_frame().unwrap().expect("a frame");
    assert_eq!((f.kind, f.stream_id), (FrameKind::Err, 0));
    let (code, reason) = f.as_ref().error_parts().unwrap();
    (code, reason.unwrap_or_default().to_owned())
}

/// The first piece of a continued DATA message on stream 7, with headers.
fn first_piece(headers: &Headers) -> FrameRef<'_> {
    FrameRef {
        more: true,
        headers: headers.as_ref(),
        ..FrameRef::new(FrameKind::Data, 7, b"part1")
    }
}

#[test]
fn connection_frames_on_another_stream_are_a_violation_and_the_peer_is_told() {
    for kind in [
        FrameKind::Ping,
        FrameKind::Pong,
        FrameKind::GoAway,
        FrameKind::Bye,
    ] {
        let mut p = Pair::new(|_| {});
        // Past the API's checks: as a foreign implementation would send it.
        p.client
            .push(p.now, kind, 5, HeadersRef::EMPTY, &[0u8; 8])
            .unwrap();
        p.client_to_server();
        assert_eq!(
            p.server_frame().unwrap_err(),
            TransportError::Protocol(ProtocolViolation::ConnectionFrameOnStream {
                kind,
                stream_id: 5
            })
        );
        let (code, reason) = client_reads_err(&mut p);
        assert_eq!(code, ErrorCode::PROTOCOL);
        assert!(reason.contains("stream 5"), "{reason}");
        // Nothing more is sent after it.
        assert!(p.server.send_data(p.now, 1, b"late").is_err());
        assert_eq!(p.server_to_client(), 0);
    }
}

#[test]
fn our_own_connection_frames_must_use_stream_0() {
    let mut p = Pair::new(|_| {});
    let ping = Frame::new(FrameKind::Ping, 3, Bytes::from_static(b"12345678"));
    assert_eq!(
        p.client.send_frame(p.now, &ping).unwrap_err(),
        TransportError::InvalidFrame(InvalidFrame::ConnectionFrameStream)
    );
    assert_eq!(p.client_to_server(), 0);
}

#[test]
fn headers_on_a_continuation_piece_are_refused() {
    let mut p = tls_pair();
    let h = Headers::builder().insert("k", "v").unwrap().build();
    let first = first_piece(&h);
    let second = FrameRef {
        headers: h.as_ref(),
        ..FrameRef::new(FrameKind::Data, 7, b"part2")
    };
    p.to_server
        .extend_from_slice(&plain_packet(&[first, second]));
    assert_eq!(
        p.server_frame().unwrap_err(),
        TransportError::Protocol(ProtocolViolation::HeadersOnContinuation)
    );
    assert_eq!(client_reads_err(&mut p).0, ErrorCode::PROTOCOL);
}

#[test]
fn headers_on_the_first_piece_reach_the_application() {
    let mut p = tls_pair();
    let h = Headers::builder().insert("k", "v").unwrap().build();
    let first = first_piece(&h);
    let ping = FrameRef::new(FrameKind::Ping, 0, b"12345678");
    let second = FrameRef::new(FrameKind::Data, 7, b"part2");
    p.to_server
        .extend_from_slice(&plain_packet(&[first, ping, second]));
    let f = p.server_frame().unwrap().unwrap();
    assert_eq!(&f.payload[..], b"part1part2");
    assert_eq!(f.headers.get(b"k"), Some(&b"v"[..]));
}

#[test]
fn a_message_over_our_limit_is_answered_with_too_large() {
    let (c, mut s) = configs(|_| {});
    s.max_message_size = 64 * 1024;
    let mut p = Pair::from_configs(&c, &s, StreamSecurity::Plain);
    p.establish();
    // Past the client's own check of the server's limit.
    p.client
        .push(
            p.now,
            FrameKind::Data,
            3,
            HeadersRef::EMPTY,
            &vec![0u8; 100_000],
        )
        .unwrap();
    p.client_to_server();
    let err = p.server_frame().unwrap_err();
    assert!(
        matches!(err, TransportError::PeerMessageTooLarge { max: 65_536, .. }),
        "{err:?}"
    );
    let (code, reason) = client_reads_err(&mut p);
    assert_eq!(code, ErrorCode::TOO_LARGE);
    assert!(reason.contains("65536"), "{reason}");
}

#[test]
fn a_stalled_record_is_answered_with_timeout() {
    let mut p = Pair::new(|c| c.packet_timeout = Duration::from_secs(10));
    p.client.send_data(p.now, 1, b"cut short").unwrap();
    p.client_to_server();
    p.to_server.truncate(12);
    assert!(p.server_frame().unwrap().is_none());
    p.advance(Duration::from_secs(10));
    let err = p.server.handle_timeout(p.now).unwrap_err();
    assert_timeout(&err, TimeoutKind::Packet);
    assert_eq!(client_reads_err(&mut p).0, ErrorCode::TIMEOUT);
}

#[test]
fn nothing_is_said_before_the_handshake_finished() {
    let (_, s) = configs(|_| {});
    let now = Instant::now();
    let mut server =
        Core::stream(&s, StreamSecurity::Plain, Role::Server, now, WALL, rng(2)).unwrap();
    // A HANDSHAKE frame on stream 5: not a handshake packet.
    let bad = plain_packet(&[FrameRef::new(FrameKind::Handshake, 5, &[0u8; 108])]);
    let mut input = BytesMut::from(&bad[..]);
    assert_eq!(
        server.handle_input(now, &mut input).unwrap_err(),
        TransportError::Protocol(ProtocolViolation::NotOneHandshakeFrame)
    );
    let mut out = Vec::new();
    assert!(!server.poll_transmit(now, &mut out).unwrap());
}

#[test]
fn a_handshake_packet_may_hold_65541_bytes_and_no_more() {
    let (_, s) = configs(|_| {});
    let now = Instant::now();
    for (len, oversize) in [(65_541u32, false), (65_542, true)] {
        let mut server =
            Core::stream(&s, StreamSecurity::Plain, Role::Server, now, WALL, rng(2)).unwrap();
        let mut input = BytesMut::from(&b"NPRO\x01\x00"[..]);
        input.extend_from_slice(&len.to_be_bytes());
        let result = server.handle_input(now, &mut input);
        if oversize {
            let err = result.unwrap_err();
            assert!(
                matches!(
                    err,
                    TransportError::Wire(netproto_wire::WireError::Oversize { .. })
                ),
                "{err:?}"
            );
        } else {
            // The header is accepted: the body is awaited.
            assert!(!result.unwrap());
        }
    }
}

#[test]
fn a_record_that_decompresses_past_65519_bytes_is_too_large() {
    let mut p = tls_pair();
    // LZ4 body declaring 65520 bytes: refused before anything is allocated.
    let mut body = 65_520u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0x10, 0x61]);
    let mut packet = Vec::new();
    Header::for_body(
        PacketFlags::new(netproto_wire::Compression::Lz4, false),
        body.len(),
    )
    .unwrap()
    .write(&mut packet);
    packet.extend_from_slice(&body);
    p.to_server.extend_from_slice(&packet);
    let err = p.server_frame().unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Wire(netproto_wire::WireError::DecompressedTooLarge { .. })
        ),
        "{err:?}"
    );
    assert_eq!(client_reads_err(&mut p).0, ErrorCode::TOO_LARGE);
}

#[test]
fn an_encrypted_packet_shorter_than_its_tag_ends_the_session() {
    let mut p = Pair::new(|_| {});
    p.to_server
        .extend_from_slice(&[0x4e, 0x50, 0x52, 0x4f, 1, 0x04, 0, 0, 0, 0]);
    let err = p.server_frame().unwrap_err();
    assert!(err.is_fatal(), "{err:?}");
    assert_eq!(client_reads_err(&mut p).0, ErrorCode::PROTOCOL);
}

#[test]
fn pieces_of_messages_on_different_streams_may_interleave() {
    let mut p = tls_pair();
    let a1 = FrameRef {
        more: true,
        ..FrameRef::new(FrameKind::Data, 7, b"a1")
    };
    let b1 = FrameRef {
        more: true,
        ..FrameRef::new(FrameKind::Data, 9, b"b1")
    };
    let small = FrameRef::new(FrameKind::Data, 11, b"c");
    let b2 = FrameRef::new(FrameKind::Data, 9, b"b2");
    let a2 = FrameRef::new(FrameKind::Data, 7, b"a2");
    p.to_server
        .extend_from_slice(&plain_packet(&[a1, b1, small, b2, a2]));
    let got: Vec<(u64, Vec<u8>)> = (0..3)
        .map(|_| {
            let f = p.server_frame().unwrap().unwrap();
            (f.stream_id, f.payload.to_vec())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (11, b"c".to_vec()),
            (9, b"b1b2".to_vec()),
            (7, b"a1a2".to_vec())
        ]
    );
}

#[test]
fn a_piece_of_another_kind_on_a_continued_stream_is_refused() {
    let mut p = tls_pair();
    let a1 = FrameRef {
        more: true,
        ..FrameRef::new(FrameKind::Data, 7, b"a1")
    };
    let a2 = FrameRef::new(FrameKind::Ack, 7, b"a2");
    p.to_server.extend_from_slice(&plain_packet(&[a1, a2]));
    assert_eq!(
        p.server_frame().unwrap_err(),
        TransportError::Protocol(ProtocolViolation::InterleavedContinuation)
    );
    assert_eq!(client_reads_err(&mut p).0, ErrorCode::PROTOCOL);
}

#[test]
fn more_than_eight_unfinished_messages_are_refused() {
    let mut p = tls_pair();
    let firsts: Vec<FrameRef<'_>> = (1..=9u64)
        .map(|id| FrameRef {
            more: true,
            ..FrameRef::new(FrameKind::Data, id, b"x")
        })
        .collect();
    p.to_server.extend_from_slice(&plain_packet(&firsts));
    assert_eq!(
        p.server_frame().unwrap_err(),
        TransportError::Protocol(ProtocolViolation::TooMuchUnfinished {
            messages: 9,
            bytes: 9
        })
    );
    assert_eq!(client_reads_err(&mut p).0, ErrorCode::PROTOCOL);
}

#[test]
fn unfinished_messages_together_stay_within_twice_the_limit() {
    let (c, mut s) = configs(|_| {});
    s.max_message_size = 1024;
    let mut p = Pair::from_configs(&c, &s, StreamSecurity::Tls);
    p.client_to_server();
    while !p.server.is_established() {
        assert!(p.server.handle_input(p.now, &mut p.to_server).unwrap());
    }
    p.server_to_client();
    let body = [0u8; 700];
    let firsts: Vec<FrameRef<'_>> = (1..=3u64)
        .map(|id| FrameRef {
            more: true,
            ..FrameRef::new(FrameKind::Data, id, &body)
        })
        .collect();
    p.to_server.extend_from_slice(&plain_packet(&firsts));
    assert_eq!(
        p.server_frame().unwrap_err(),
        TransportError::Protocol(ProtocolViolation::TooMuchUnfinished {
            messages: 3,
            bytes: 2100
        })
    );
}
