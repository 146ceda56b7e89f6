//! The core on a fixed clock: two cores connected by in-memory buffers, no
//! sockets, no sleeps. Time moves only when a test moves it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair, Pinned, RekeyPolicy};
use netproto_wire::{Compression, CompressionPolicy, Frame, FrameKind};
use rand::SeedableRng;

use super::{Core, Event, Role, StreamSecurity};
use crate::config::ConnectionConfig;
use crate::error::{InvalidFrame, ProtocolViolation, TimeoutKind, TransportError};

const WALL: Duration = Duration::from_hours(500_000);

fn rng(seed: u64) -> Box<rand::rngs::StdRng> {
    Box::new(rand::rngs::StdRng::seed_from_u64(seed))
}

struct Pair {
    client: Core,
    server: Core,
    to_server: BytesMut,
    to_client: BytesMut,
    now: Instant,
    out: Vec<u8>,
}

fn configs(tweak: impl Fn(&mut ConnectionConfig)) -> (ConnectionConfig, ConnectionConfig) {
    let mut r = rand::rngs::StdRng::seed_from_u64(7);
    let server_key = Keypair::generate(&mut r);
    let server_pub = *server_key.public();
    let mut s = ConnectionConfig::new(HandshakeConfig::new(Some(server_key), Arc::new(AnyPeer)));
    let mut c = ConnectionConfig::new(HandshakeConfig::new(
        Some(Keypair::generate(&mut r)),
        Arc::new(Pinned(server_pub)),
    ));
    tweak(&mut s);
    tweak(&mut c);
    (c, s)
}

impl Pair {
    fn unestablished(security: StreamSecurity, tweak: impl Fn(&mut ConnectionConfig)) -> Self {
        let (c, s) = configs(tweak);
        let now = Instant::now();
        Self {
            client: Core::stream(&c, security, Role::Client, now, WALL, rng(1)).unwrap(),
            server: Core::stream(&s, security, Role::Server, now, WALL, rng(2)).unwrap(),
            to_server: BytesMut::new(),
            to_client: BytesMut::new(),
            now,
            out: Vec::new(),
        }
    }

    fn new(tweak: impl Fn(&mut ConnectionConfig)) -> Self {
        let mut p = Self::unestablished(StreamSecurity::Plain, tweak);
        p.establish();
        p
    }

    fn establish(&mut self) {
        for _ in 0..10 {
            self.pump();
            if self.client.is_established() && self.server.is_established() {
                assert!(matches!(
                    self.client.poll_event(self.now),
                    Ok(Some(Event::Established))
                ));
                assert!(matches!(
                    self.server.poll_event(self.now),
                    Ok(Some(Event::Established))
                ));
                // Both applications start reading (a core starts paused).
                self.client.resume(self.now);
                self.server.resume(self.now);
                return;
            }
        }
        panic!("no handshake");
    }

    /// Moves every queued byte across, both ways, and lets each side take
    /// handshake messages (records stay buffered until frames are polled).
    fn pump(&mut self) {
        if self.client.poll_transmit(self.now, &mut self.out).unwrap() {
            self.to_server.extend_from_slice(&self.out);
        }
        if !self.server.is_established() {
            while self
                .server
                .handle_input(self.now, &mut self.to_server)
                .unwrap()
            {}
        }
        if self.server.poll_transmit(self.now, &mut self.out).unwrap() {
            self.to_client.extend_from_slice(&self.out);
        }
        if !self.client.is_established() {
            while self
                .client
                .handle_input(self.now, &mut self.to_client)
                .unwrap()
            {}
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// The server's next application frame (pumping as needed).
    fn server_frame(&mut self) -> Result<Option<Frame>, TransportError> {
        next_frame(&mut self.server, self.now, &mut self.to_server)
    }

    fn client_frame(&mut self) -> Result<Option<Frame>, TransportError> {
        next_frame(&mut self.client, self.now, &mut self.to_client)
    }

    fn client_to_server(&mut self) -> usize {
        if self.client.poll_transmit(self.now, &mut self.out).unwrap() {
            self.to_server.extend_from_slice(&self.out);
            self.out.len()
        } else {
            0
        }
    }

    fn server_to_client(&mut self) -> usize {
        if self.server.poll_transmit(self.now, &mut self.out).unwrap() {
            self.to_client.extend_from_slice(&self.out);
            self.out.len()
        } else {
            0
        }
    }
}

fn assert_timeout(err: &TransportError, expected: TimeoutKind) {
    assert!(
        matches!(err, TransportError::Timeout { kind, .. } if *kind == expected),
        "{err:?}"
    );
}

fn next_frame(
    core: &mut Core,
    now: Instant,
    input: &mut BytesMut,
) -> Result<Option<Frame>, TransportError> {
    loop {
        match core.poll_event(now)? {
            Some(Event::Frame(f)) => return Ok(Some(f)),
            Some(_) => continue,
            None => {}
        }
        if !core.handle_input(now, input)? {
            return Ok(None);
        }
    }
}

#[test]
fn noise_handshake_establishes_both_sides_with_the_same_hash() {
    let p = Pair::new(|_| {});
    let (c, s) = (p.client.info().unwrap(), p.server.info().unwrap());
    assert_eq!(c.handshake_hash, s.handshake_hash);
    assert!(c.initiator && !s.initiator);
    assert!(s.peer_key.is_some());
}

#[test]
fn client_last_handshake_message_waits_for_the_first_write() {
    let mut p = Pair::unestablished(StreamSecurity::Plain, |_| {});
    p.pump(); // -> e, then <- e, ee, s, es: the client is now established
    assert!(p.client.is_established());
    assert!(!p.server.is_established());
    // Message 3 is still queued: it leaves with the first data.
    p.client.send_data(p.now, 1, b"first").unwrap();
    p.client_to_server();
    while p.server.handle_input(p.now, &mut p.to_server).unwrap() {
        if p.server.is_established() {
            break;
        }
    }
    assert!(p.server.is_established());
    assert!(matches!(
        p.server.poll_event(p.now),
        Ok(Some(Event::Established))
    ));
    assert_eq!(&p.server_frame().unwrap().unwrap().payload[..], b"first");
}

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
    let now = Instant::now();
    let mut p = Pair {
        client: Core::stream(&c, StreamSecurity::Plain, Role::Client, now, WALL, rng(1)).unwrap(),
        server: Core::stream(&s, StreamSecurity::Plain, Role::Server, now, WALL, rng(2)).unwrap(),
        to_server: BytesMut::new(),
        to_client: BytesMut::new(),
        now,
        out: Vec::new(),
    };
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
fn ping_is_answered_by_the_core_and_the_pong_is_timed() {
    let mut p = Pair::new(|_| {});
    let seq = p.client.ping(p.now).unwrap();
    assert!(!p.client.ping_settled(seq));
    p.client_to_server();
    // The server's application sees nothing: the core answers.
    assert!(p.server_frame().unwrap().is_none());
    p.advance(Duration::from_millis(3));
    p.server_to_client();
    let pong = p.client_frame().unwrap().unwrap();
    assert_eq!(pong.kind, FrameKind::Pong);
    assert!(p.client.ping_settled(seq));
    assert_eq!(p.client.rtt(), Some(Duration::from_millis(3)));
}

#[test]
fn oversized_ping_payload_is_not_answered() {
    let mut p = Pair::new(|_| {});
    let ping = Frame::new(FrameKind::Ping, 0, Bytes::from(vec![1u8; 65]));
    p.client.send_frame(p.now, &ping).unwrap();
    p.client_to_server();
    assert!(p.server_frame().unwrap().is_none());
    assert_eq!(p.server_to_client(), 0);
}

#[test]
fn keep_alive_pings_after_the_interval_of_silence() {
    let mut p = Pair::new(|c| {
        c.keep_alive = Some(Duration::from_secs(15));
        c.idle_timeout = Some(Duration::from_secs(20));
    });
    let start = p.now;
    assert_eq!(
        p.client.poll_timeout(),
        Some(start + Duration::from_secs(15))
    );
    p.advance(Duration::from_secs(15));
    p.client.handle_timeout(p.now).unwrap();
    assert!(p.client_to_server() > 0, "a PING was queued");
    // While the PING is out, the next deadline is the idle one.
    assert_eq!(
        p.client.poll_timeout(),
        Some(start + Duration::from_secs(20))
    );
    assert!(p.server_frame().unwrap().is_none());
    p.server_to_client();
    assert_eq!(p.client_frame().unwrap().unwrap().kind, FrameKind::Pong);
    assert_eq!(
        p.client.poll_timeout(),
        Some(p.now + Duration::from_secs(15))
    );
}

#[test]
fn silent_peer_fails_at_the_idle_deadline() {
    let mut p = Pair::new(|c| {
        c.keep_alive = Some(Duration::from_secs(15));
        c.idle_timeout = Some(Duration::from_secs(20));
    });
    p.advance(Duration::from_secs(15));
    p.client.handle_timeout(p.now).unwrap();
    p.client_to_server(); // the PING is never answered: the server is gone
    p.advance(Duration::from_secs(5));
    let err = p.client.handle_timeout(p.now).unwrap_err();
    assert_timeout(&err, TimeoutKind::ReadIdle);
    // Final: everything afterwards reports the same error.
    assert_eq!(p.client.send_data(p.now, 1, b"x").unwrap_err(), err);
    assert_eq!(p.client.poll_timeout(), None);
}

#[test]
fn every_record_counts_as_life_including_continuation_pieces() {
    let mut p = Pair::new(|c| {
        c.keep_alive = None;
        c.idle_timeout = Some(Duration::from_secs(2));
    });
    let big = vec![5u8; 2 * 65_000];
    p.client.send_data(p.now, 1, &big).unwrap();
    p.client_to_server();
    // Deliver the records one at a time, 1.5 s apart: the message takes
    // longer than the idle deadline, each piece keeps the connection alive.
    let mut delivered = BytesMut::new();
    let mut pending = std::mem::take(&mut p.to_server);
    let mut got = None;
    while got.is_none() {
        let take = pending.len().min(65_535 + 10);
        delivered.extend_from_slice(&pending.split_to(take));
        p.advance(Duration::from_millis(1500));
        p.server.handle_timeout(p.now).unwrap();
        got = next_frame(&mut p.server, p.now, &mut delivered).unwrap();
    }
    assert_eq!(got.unwrap().payload.len(), big.len());
}

#[test]
fn paused_application_is_not_idle() {
    let mut p = Pair::new(|c| {
        c.keep_alive = None;
        c.idle_timeout = Some(Duration::from_secs(2));
    });
    p.client.send_data(p.now, 1, b"work").unwrap();
    p.client_to_server();
    p.server_frame().unwrap().unwrap();
    p.server.pause(p.now);
    assert_eq!(p.server.poll_timeout(), None);
    p.advance(Duration::from_mins(1));
    p.server.handle_timeout(p.now).unwrap();
    p.server.resume(p.now);
    assert_eq!(
        p.server.poll_timeout(),
        Some(p.now + Duration::from_secs(2))
    );
}

#[test]
fn handshake_deadline_fails_a_stalled_handshake() {
    let mut p = Pair::unestablished(StreamSecurity::Plain, |c| {
        c.handshake_timeout = Duration::from_secs(10);
    });
    // The client sends its first message; the server never answers.
    p.client_to_server();
    assert_eq!(
        p.client.poll_timeout(),
        Some(p.now + Duration::from_secs(10))
    );
    p.advance(Duration::from_secs(9));
    p.client.handle_timeout(p.now).unwrap();
    p.advance(Duration::from_secs(1));
    let err = p.client.handle_timeout(p.now).unwrap_err();
    assert_timeout(&err, TimeoutKind::Handshake);
}

#[test]
fn packet_deadline_fails_a_trickling_peer() {
    let mut p = Pair::new(|c| {
        c.packet_timeout = Duration::from_secs(10);
        c.idle_timeout = None;
        c.keep_alive = None;
    });
    p.client.send_data(p.now, 1, b"slow").unwrap();
    p.client_to_server();
    let mut all = std::mem::take(&mut p.to_server);
    // Half a record arrives, the rest never does.
    let mut partial = all.split_to(all.len() / 2);
    assert!(!p.server.handle_input(p.now, &mut partial).unwrap());
    assert!(p.server.mid_packet(partial.len()));
    assert_eq!(
        p.server.poll_timeout(),
        Some(p.now + Duration::from_secs(10))
    );
    p.advance(Duration::from_secs(10));
    let err = p.server.handle_timeout(p.now).unwrap_err();
    assert_timeout(&err, TimeoutKind::Packet);
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
fn a_tls_client_on_a_plain_port_is_recognised() {
    let (_, s) = configs(|_| {});
    let now = Instant::now();
    let mut server =
        Core::stream(&s, StreamSecurity::Plain, Role::Server, now, WALL, rng(2)).unwrap();
    let mut input = BytesMut::from(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01][..]);
    assert_eq!(
        server.handle_input(now, &mut input).unwrap_err(),
        TransportError::Protocol(ProtocolViolation::PeerSpeaksTls)
    );
}

#[test]
fn tls_hello_exchange_without_noise_and_no_round_trip_for_the_client() {
    let mut p = Pair::unestablished(StreamSecurity::Tls, |c| {
        c.compression = CompressionPolicy::new(Compression::Lz4);
    });
    // The client is open at once and may send before the server's hello.
    assert!(p.client.is_established());
    assert_eq!(p.client.info().unwrap().compression, Compression::None);
    p.client.send_data(p.now, 1, b"early").unwrap();
    p.client_to_server();
    while !p.server.is_established() {
        assert!(p.server.handle_input(p.now, &mut p.to_server).unwrap());
    }
    assert!(p.server.info().unwrap().handshake_hash.is_none());
    assert_eq!(&p.server_frame().unwrap().unwrap().payload[..], b"early");
    p.server.send_data(p.now, 1, b"reply").unwrap();
    p.server_to_client();
    assert_eq!(&p.client_frame().unwrap().unwrap().payload[..], b"reply");
    // The server's hello arrived first: the client now compresses.
    assert_eq!(p.client.peer_max_message(), 16 * 1024 * 1024);
}

#[test]
fn noise_inside_tls_mismatch_is_reported_on_both_sides() {
    let (mut c, s) = configs(|_| {});
    c.noise_inside_tls = true;
    let now = Instant::now();
    let mut client =
        Core::stream(&c, StreamSecurity::Tls, Role::Client, now, WALL, rng(1)).unwrap();
    let mut server =
        Core::stream(&s, StreamSecurity::Tls, Role::Server, now, WALL, rng(2)).unwrap();
    let mut out = Vec::new();
    let mut to_server = BytesMut::new();
    client.poll_transmit(now, &mut out).unwrap();
    to_server.extend_from_slice(&out);
    let err = server.handle_input(now, &mut to_server).unwrap_err();
    assert_eq!(
        err,
        TransportError::Protocol(ProtocolViolation::NoiseInsideTlsMismatch {
            peer_runs_noise: true
        })
    );
    // The server's hello is queued so the client can say what went wrong.
    assert!(server.poll_transmit(now, &mut out).unwrap());
    let mut to_client = BytesMut::from(&out[..]);
    assert_eq!(
        client.handle_input(now, &mut to_client).unwrap_err(),
        TransportError::Protocol(ProtocolViolation::NoiseInsideTlsMismatch {
            peer_runs_noise: false
        })
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
fn sends_before_the_handshake_are_refused() {
    let mut p = Pair::unestablished(StreamSecurity::Plain, |_| {});
    assert_eq!(
        p.server.send_data(p.now, 1, b"early").unwrap_err(),
        TransportError::InvalidFrame(InvalidFrame::NotEstablished)
    );
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
    let mut first = held.split_to(2 * (65_535 + 10));
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

#[test]
fn unfinished_message_fails_at_the_message_deadline() {
    let mut p = Pair::new(|c| {
        c.message_timeout = Duration::from_mins(2);
        c.keep_alive = None;
        c.idle_timeout = None;
    });
    p.client.send_data(p.now, 1, &vec![1u8; 100_000]).unwrap();
    p.client_to_server();
    let mut first = p.to_server.split_to(65_535 + 10);
    assert!(next_frame(&mut p.server, p.now, &mut first)
        .unwrap()
        .is_none());
    assert_eq!(
        p.server.poll_timeout(),
        Some(p.now + Duration::from_mins(2))
    );
    p.advance(Duration::from_mins(2));
    let err = p.server.handle_timeout(p.now).unwrap_err();
    assert_timeout(&err, TimeoutKind::Message);
}

#[test]
fn connection_info_debug_does_not_show_the_handshake_hash() {
    let p = Pair::new(|_| {});
    let info = p.client.info().unwrap();
    let hash = info.handshake_hash.unwrap();
    let shown = format!("{info:?}");
    // Neither as a byte array nor in hex.
    let as_array = format!("{:?}", &hash[..4]);
    let as_hex = hash[..4].iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
        s
    });
    assert!(!shown.contains(as_array.trim_end_matches(']')), "{shown}");
    assert!(!shown.contains(&as_hex), "{shown}");
    assert!(shown.contains("<not shown>"));
}

#[test]
fn time_not_spent_reading_is_not_silence_and_pauses_never_reset_the_clock() {
    let mut p = Pair::new(|c| {
        c.keep_alive = None;
        c.idle_timeout = Some(Duration::from_secs(20));
    });
    let start = p.now;
    // Reading for 10 s, away for 30 s, reading again: 10 s of silence so far.
    p.advance(Duration::from_secs(10));
    p.server.pause(p.now);
    p.advance(Duration::from_secs(30));
    p.server.resume(p.now);
    assert_eq!(
        p.server.poll_timeout(),
        Some(start + Duration::from_secs(50))
    );
    // Many short pauses do not reset it either.
    for _ in 0..5 {
        p.server.pause(p.now);
        p.server.resume(p.now);
    }
    p.advance(Duration::from_secs(10));
    let err = p.server.handle_timeout(p.now).unwrap_err();
    assert_timeout(&err, TimeoutKind::ReadIdle);
}

#[test]
fn a_core_starts_paused_until_the_application_reads() {
    let mut p = Pair::unestablished(StreamSecurity::Plain, |c| {
        c.keep_alive = None;
        c.idle_timeout = Some(Duration::from_secs(20));
    });
    p.pump();
    p.pump();
    assert!(p.server.is_established());
    assert_eq!(p.server.poll_timeout(), None);
    p.advance(Duration::from_mins(1));
    p.server.resume(p.now);
    assert_eq!(
        p.server.poll_timeout(),
        Some(p.now + Duration::from_secs(20))
    );
}

#[test]
fn our_close_stops_the_keep_alive() {
    let mut p = Pair::new(|c| {
        c.keep_alive = Some(Duration::from_secs(15));
        c.idle_timeout = Some(Duration::from_secs(20));
    });
    p.client.close(p.now).unwrap();
    p.advance(Duration::from_secs(15));
    // No PING (it could not be sent): only the idle deadline remains.
    p.client.handle_timeout(p.now).unwrap();
    assert_eq!(
        p.client.poll_timeout(),
        Some(p.now + Duration::from_secs(5))
    );
}
