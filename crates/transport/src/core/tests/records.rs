//! Records and frames: batching, continuation, budgets, rekey, BYE, GOAWAY.

use super::*;

#[test]
fn small_frames_share_one_record() {
    let mut p = Pair::new(|_| {});
    for i in 0..100u64 {
        p.client.send_data(p.now, i + 1, &[7u8; 64]).unwrap();
    }
    let bytes = p.client_to_server();
    // One record: 10-byte header + 100 frames of ~67 bytes + 16-byte tag.
    assert!(bytes < 100 * 70 + 26, "{bytes} bytes");
    for i in 0..100u64 {
        let f = p.server_frame().unwrap().unwrap();
        assert_eq!(f.stream_id, i + 1);
    }
    assert!(p.server_frame().unwrap().is_none());
}

#[test]
fn large_message_is_continued_and_reassembled() {
    let mut p = Pair::new(|_| {});
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    p.client.send_data(p.now, 9, &big).unwrap();
    p.client_to_server();
    let f = p.server_frame().unwrap().unwrap();
    assert_eq!(f.stream_id, 9);
    assert_eq!(&f.payload[..], &big[..]);
}

#[test]
fn reassembly_is_bounded_by_our_limit() {
    let (mut c, s) = configs(|_| {});
    // The client believes the server takes 1 MiB; the server allows 64 KiB.
    let mut s = s;
    s.max_message_size = 64 * 1024;
    c.max_message_size = 1024 * 1024;
    let mut p = Pair::from_configs(&c, &s, StreamSecurity::Plain);
    p.establish();
    // The server advertised its limit: the client refuses to send more.
    let err = p
        .client
        .send_data(p.now, 1, &vec![0u8; 100_000])
        .unwrap_err();
    assert!(matches!(err, TransportError::MessageTooLarge { max, .. } if max == 64 * 1024));
    assert!(!err.is_fatal());
    p.client.send_data(p.now, 2, b"still fine").unwrap();
    p.client_to_server();
    assert_eq!(
        &p.server_frame().unwrap().unwrap().payload[..],
        b"still fine"
    );
}

#[test]
fn rekey_by_message_budget_keeps_the_stream_readable() {
    let mut p = Pair::new(|c| {
        let mut rekey = RekeyPolicy::default();
        rekey.after_messages = 3;
        c.rekey = rekey;
    });
    for i in 0..20u64 {
        p.client
            .send_data(p.now, i + 1, b"across key phases")
            .unwrap();
        // One record per round: the budget counts records.
        p.client_to_server();
        let f = p.server_frame().unwrap().unwrap();
        assert_eq!(f.stream_id, i + 1);
    }
}

#[test]
fn bye_is_sent_after_everything_queued_and_ends_the_peer_cleanly() {
    let mut p = Pair::new(|_| {});
    p.client.send_data(p.now, 1, b"last words").unwrap();
    p.client.close(p.now).unwrap();
    assert!(p.client.is_closing());
    assert_eq!(
        p.client.send_data(p.now, 2, b"too late").unwrap_err(),
        TransportError::ConnectionClosed { clean: true }
    );
    p.client_to_server();
    assert_eq!(
        &p.server_frame().unwrap().unwrap().payload[..],
        b"last words"
    );
    assert_eq!(
        p.server_frame().unwrap_err(),
        TransportError::ConnectionClosed { clean: true }
    );
}

#[test]
fn goaway_is_reported_and_remembered() {
    let mut p = Pair::new(|_| {});
    p.server.goaway(p.now, 42, "shutting down").unwrap();
    p.server.send_data(p.now, 42, b"answer to 42").unwrap();
    p.server_to_client();
    let f = p.client_frame().unwrap().unwrap();
    assert_eq!(f.kind, FrameKind::GoAway);
    assert_eq!(p.client.peer_goaway(), Some(42));
    // GOAWAY comes before later frames, in order.
    assert_eq!(p.client_frame().unwrap().unwrap().stream_id, 42);
}

#[test]
fn invalid_frames_are_refused_without_harm() {
    let mut p = Pair::new(|_| {});
    let cases = [
        (
            Frame::new(FrameKind::Handshake, 0, Bytes::new()),
            InvalidFrame::Handshake,
        ),
        (
            Frame::new(FrameKind::Bye, 0, Bytes::new()),
            InvalidFrame::Bye,
        ),
        (
            Frame::data(1, Bytes::new()).with_more(true),
            InvalidFrame::Continuation,
        ),
    ];
    for (f, why) in cases {
        assert_eq!(
            p.client.send_frame(p.now, &f).unwrap_err(),
            TransportError::InvalidFrame(why)
        );
    }
    assert_eq!(p.client_to_server(), 0);
    p.client.send_data(p.now, 1, b"ok").unwrap();
    p.client_to_server();
    assert_eq!(&p.server_frame().unwrap().unwrap().payload[..], b"ok");
}

#[test]
fn tampered_record_fails_the_connection() {
    let mut p = Pair::new(|_| {});
    p.client.send_data(p.now, 1, b"integrity").unwrap();
    p.client_to_server();
    let last = p.to_server.len() - 1;
    p.to_server[last] ^= 1;
    let err = p.server_frame().unwrap_err();
    assert!(matches!(err, TransportError::Crypto(_)), "{err:?}");
    assert!(err.is_fatal());
}

#[test]
fn plaintext_after_the_handshake_is_a_protocol_violation() {
    let mut p = Pair::new(|_| {});
    // A plain PING packet (WIRE.md vector 1) where a sealed record belongs.
    p.to_server.extend_from_slice(&[
        0x4e, 0x50, 0x52, 0x4f, 1, 0, 0, 0, 0, 11, 2, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8,
    ]);
    assert_eq!(
        p.server_frame().unwrap_err(),
        TransportError::Protocol(ProtocolViolation::PlaintextAfterHandshake)
    );
}

#[test]
fn compression_applies_only_with_a_codec_the_peer_reads() {
    let mut p = Pair::new(|c| c.compression = CompressionPolicy::new(Compression::Lz4));
    assert_eq!(p.client.info().unwrap().compression, Compression::Lz4);
    let text = b"netproto compresses repetitive text well. ".repeat(200);
    p.client.send_data(p.now, 1, &text).unwrap();
    let sent = p.client_to_server();
    assert!(sent < text.len() / 2, "{sent} bytes for {}", text.len());
    assert_eq!(&p.server_frame().unwrap().unwrap().payload[..], &text[..]);
}

#[test]
fn transmit_hands_over_the_buffer_and_release_gives_it_back() {
    let mut p = Pair::new(|_| {});
    p.client.send_data(p.now, 1, &[1u8; 1000]).unwrap();
    assert!(p.client.queued_bytes() > 1000);
    assert!(p.client.take_transmit_signal());
    assert!(!p.client.take_transmit_signal());
    p.client_to_server();
    assert_eq!(p.client.queued_bytes(), 0);
    p.client.release_buffers();
    assert!(!p.client.poll_transmit(p.now, &mut p.out).unwrap());
}

#[test]
fn unfinished_messages_share_one_budget_and_give_it_back() {
    // Charged by buffer capacity: a message's buffer starts at twice its
    // first piece (~131 KB) and doubles (~262 KB).
    let budget = Arc::new(crate::MemoryBudget::new(300_000));
    let shared = budget.clone();
    let mut a = Pair::new(move |c| c.reassembly_budget = Some(shared.clone()));
    let shared = budget.clone();
    let mut b = Pair::new(move |c| c.reassembly_budget = Some(shared.clone()));
    let big = vec![3u8; 200_000];
    // Connection a: all but the last record arrives, ~130 KB held.
    a.client.send_data(a.now, 1, &big).unwrap();
    a.client_to_server();
    let mut held = std::mem::take(&mut a.to_server);
    let mut first = held.split_to(record_boundary(&held, 2));
    assert!(next_frame(&mut a.server, a.now, &mut first)
        .unwrap()
        .is_none());
    assert!(budget.used() > 100_000);
    // Connection b's message does not fit what is left (its buffer cannot
    // grow): typed, fatal, and b gives back what it held at once.
    b.client.send_data(b.now, 1, &big).unwrap();
    b.client_to_server();
    let err = b.server_frame().unwrap_err();
    assert!(
        matches!(err, TransportError::ReassemblyBudget { limit: 300_000, .. }),
        "{err:?}"
    );
    assert!(budget.used() < 150_000);
    // a completes and gives back the rest.
    let mut rest = held;
    let whole = next_frame(&mut a.server, a.now, &mut rest)
        .unwrap()
        .unwrap();
    assert_eq!(whole.payload.len(), big.len());
    assert_eq!(budget.used(), 0);
    drop(b);
}
