//! Hostile traffic against a UDP endpoint, in virtual time: garbage,
//! forged records, spoofed initiation floods. Each is counted and dropped,
//! costs no Diffie-Hellman work without a valid mac1, and a legitimate
//! peer keeps working meanwhile.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    missing_docs
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netproto_crypto::cookie::{mac, CookieKeys};
use netproto_crypto::{AnyPeer, Handshake, HandshakeConfig, Keypair, Pattern};
use netproto_testkit::{sim_addr, LinkFaults, SimNet};
use netproto_transport_udp::{Delivery, DropReason, Event, SessionId, UdpConfig};
use netproto_wire::Frame;
use rand::{Rng, SeedableRng};

fn connect(net: &mut SimNet, c: usize) -> SessionId {
    let cfg = net.client_config(Pattern::XX);
    let id = net.connect(c, cfg);
    assert!(net.run_until(Duration::from_secs(5), |n| {
        [0, c].iter().all(|&node| {
            n.events[node]
                .iter()
                .any(|(_, e)| matches!(e, Event::Connected(_)))
        })
    }));
    id
}

fn delivered(net: &SimNet, node: usize, message: u64) -> bool {
    net.events[node]
        .iter()
        .any(|(_, e)| matches!(e, Event::Delivered(m) if *m == message))
}

/// An XX initiation (Noise message 0) as a datagram from `sender`, with a
/// valid mac1 (the attacker knows the server key) or a random one.
fn initiation(server: &Keypair, sender: u32, valid_mac1: bool, rng: &mut impl Rng) -> Vec<u8> {
    let cfg = HandshakeConfig::new(
        Some(Keypair::generate(&mut rand::rngs::OsRng)),
        Arc::new(AnyPeer),
    );
    initiation_with(cfg, server, sender, rng.gen(), valid_mac1)
}

/// Message 0 of `cfg`'s pattern from `sender`, with a valid mac1 or `bad_mac1`.
fn initiation_with(
    cfg: HandshakeConfig,
    server: &Keypair,
    sender: u32,
    bad_mac1: [u8; 16],
    valid_mac1: bool,
) -> Vec<u8> {
    // Datagram sessions run ChaChaPoly (WIRE.md); the endpoint pins it the same way.
    let cfg = cfg
        .with_transport("udp")
        .with_cipher(netproto_crypto::CipherSuite::ChaChaPoly);
    let mut hs = Handshake::initiator(cfg).unwrap();
    let mut noise = Vec::new();
    hs.write_message(&mut rand::rngs::OsRng, Duration::ZERO, &mut noise)
        .unwrap();
    let mut d = vec![0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    d.extend_from_slice(&sender.to_be_bytes());
    d.extend_from_slice(&noise);
    let keys = CookieKeys::for_responder(Some(server.public()));
    let mac1 = if valid_mac1 {
        mac(&keys.mac1, &[&d])
    } else {
        bad_mac1
    };
    d.extend_from_slice(&mac1);
    d.extend_from_slice(&[0; 16]);
    d
}

#[test]
fn garbage_and_forged_records_are_dropped_while_a_transfer_completes() {
    let mut net = SimNet::new(
        21,
        LinkFaults::with_delay(Duration::from_millis(5)),
        UdpConfig::default(),
    );
    let c = net.add_client(UdpConfig::default());
    let cid = connect(&mut net, c);
    let sid = net.events[0]
        .iter()
        .find_map(|(i, e)| matches!(e, Event::Connected(_)).then_some(*i))
        .unwrap();
    let msg = net.nodes[c]
        .send(
            net.now,
            cid,
            &Frame::data(1, vec![7u8; 64 << 10]),
            Delivery::Reliable,
        )
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let attacker = SocketAddr::from(([10, 9, 9, 9], 666));
    let mut sent = 0u32;
    while sent < 100_000 {
        for _ in 0..1000 {
            let len = rng.gen_range(0..1500);
            let mut d: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            match sent % 4 {
                // A RECORD for the real session with a random counter: fails
                // authentication, before any reassembly.
                0 if d.len() > 30 => {
                    d[0] = 0x02;
                    d[1] = 0;
                    d[2..6].copy_from_slice(&sid.0.to_be_bytes());
                }
                // Handshake messages 1 and 2 for unknown indexes.
                1 if d.len() > 14 => {
                    d[0] = 0x01;
                    d[1] = 0;
                    d[6..14].copy_from_slice(&u64::from(sent % 3).to_be_bytes());
                }
                // A cookie reply nobody asked for.
                2 if d.len() > 14 => {
                    d[0] = 0x04;
                    d[1] = 0;
                }
                _ => {}
            }
            let from = if sent.is_multiple_of(2) {
                attacker
            } else {
                sim_addr(c)
            };
            net.nodes[0].handle_datagram(net.now, from, &mut d);
            sent += 1;
        }
        net.run_for(Duration::from_millis(10));
    }
    assert!(net.run_until(Duration::from_secs(30), |n| delivered(n, c, msg)));
    let stats = net.nodes[0].stats();
    let dropped: u64 = stats.dropped.values().sum();
    assert!(dropped >= 100_000, "{stats:?}");
    assert!(stats.dropped(DropReason::Unauthentic) > 10_000, "{stats:?}");
    assert_eq!(stats.handshakes, 1, "no session appeared from garbage");
    assert_eq!(net.nodes[0].pending_handshakes(), 0);
    assert_eq!(net.nodes[0].session_count(), 1);
    let got = net.events[0]
        .iter()
        .filter(|(_, e)| matches!(e, Event::Message { .. }))
        .count();
    assert_eq!(got, 1);
}

#[test]
fn initiations_without_a_valid_mac1_cost_no_handshake_work() {
    let mut cfg = UdpConfig::default();
    cfg.handshake.accept_unkeyed_mac1 = false;
    let mut net = SimNet::new(22, LinkFaults::default(), cfg);
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let server_key = net.server_key.clone();
    let template = initiation(&server_key, 1, false, &mut rng);
    for i in 0..10_000u32 {
        let mut d = template.clone();
        d[14..18].copy_from_slice(&i.to_be_bytes());
        let from = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 4000));
        net.nodes[0].handle_datagram(net.now, from, &mut d);
    }
    let stats = net.nodes[0].stats();
    assert_eq!(stats.dropped(DropReason::BadMac1), 10_000);
    assert_eq!(net.nodes[0].pending_handshakes(), 0);
    assert!(
        net.nodes[0].poll_transmit(net.now).is_none(),
        "no reply to anyone"
    );
}

#[test]
fn a_spoofed_initiation_flood_gets_cookies_and_a_real_client_still_connects() {
    let mut net = SimNet::new(
        23,
        LinkFaults::with_delay(Duration::from_millis(5)),
        UdpConfig::default(),
    );
    let c = net.add_client(UdpConfig::default());
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let server_key = net.server_key.clone();
    let template = initiation(&server_key, 1, true, &mut rng);
    let flood = |net: &mut SimNet, n: u32, base: u32| {
        for i in base..base + n {
            // Same Noise message, fresh index and spoofed source each time:
            // as much work as the attacker can make us do per datagram.
            let mut d = template.clone();
            d[14..18].copy_from_slice(&i.to_be_bytes());
            let covered = d.len() - 32;
            let m = mac(
                &CookieKeys::for_responder(Some(server_key.public())).mac1,
                &[&d[..covered]],
            );
            d[covered..covered + 16].copy_from_slice(&m);
            let from = SocketAddr::from(([10, 2, (i >> 8) as u8, i as u8], 5000));
            net.nodes[0].handle_datagram(net.now, from, &mut d);
        }
    };
    // 10,000 spoofed initiations per second, for 3 s, while the client
    // connects.
    let start: Instant = net.now;
    let cfg = net.client_config(Pattern::XX);
    let id = net.connect(c, cfg);
    let mut connected_at = None;
    for tick in 0..300u32 {
        flood(&mut net, 100, tick * 100);
        net.run_for(Duration::from_millis(10));
        if connected_at.is_none()
            && net.events[c]
                .iter()
                .any(|(i, e)| *i == id && matches!(e, Event::Connected(_)))
        {
            connected_at = Some(net.now - start);
        }
    }
    let connected_at = connected_at.expect("the real client connected");
    // The first initiation meets a loaded server and gets a cookie; the
    // answer with mac2 goes out at once and is served: well within two
    // retransmission intervals (1 s, then 2 s).
    assert!(connected_at < Duration::from_secs(1), "{connected_at:?}");
    let stats = net.nodes[0].stats();
    assert!(stats.cookies_sent > 29_000, "{stats:?}");
    let pending = net.nodes[0].pending_handshakes();
    assert!(
        pending <= 65,
        "handshake work stayed at the cookie threshold: {pending}"
    );
    assert_eq!(net.nodes[0].session_count(), 1);
}

#[test]
fn a_replayed_ik_initiation_from_elsewhere_makes_no_session() {
    let mut net =
        SimNet::with_pattern(24, LinkFaults::default(), UdpConfig::default(), Pattern::IK);
    let c = net.add_client(UdpConfig::default());
    let cfg = net.client_config(Pattern::IK);
    net.connect(c, cfg);
    // Capture the initiation on its way.
    let t = net.nodes[c].poll_transmit(net.now).unwrap();
    let mut original = t.contents.clone();
    net.nodes[0].handle_datagram(net.now, sim_addr(c), &mut original);
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.nodes[0].session_count(), 1);
    // The attacker replays it from its own address: the IK timestamp is not
    // newer than the one the server recorded for that client key.
    let mut replay = t.contents;
    let attacker = SocketAddr::from(([10, 6, 6, 6], 666));
    net.nodes[0].handle_datagram(net.now, attacker, &mut replay);
    assert_eq!(net.nodes[0].stats().dropped(DropReason::HandshakeFailed), 1);
    assert_eq!(net.nodes[0].session_count(), 1);
    assert!(
        net.nodes[0].poll_transmit(net.now).is_none(),
        "no answer to the replay"
    );
}

#[test]
fn short_initiations_with_a_valid_mac1_are_dropped_not_panicked_on() {
    let mut net = SimNet::new(25, LinkFaults::default(), UdpConfig::default());
    let keys = CookieKeys::for_responder(Some(net.server_key.public()));
    for len in 0..80 {
        let mut d = vec![0u8; len];
        if len > 0 {
            d[0] = 0x01;
        }
        if len >= 32 {
            let covered = len - 32;
            let m = mac(&keys.mac1, &[&d[..covered]]);
            d[covered..covered + 16].copy_from_slice(&m);
        }
        net.nodes[0].handle_datagram(net.now, sim_addr(9), &mut d);
    }
    assert_eq!(net.nodes[0].stats().received, 80);
    assert_eq!(net.nodes[0].pending_handshakes(), 0);
}

#[test]
fn spoofed_two_message_initiations_are_never_announced_and_count_as_load() {
    let mut net = SimNet::with_pattern(
        26,
        LinkFaults::with_delay(Duration::from_millis(5)),
        UdpConfig::default(),
        Pattern::NK,
    );
    let server = net.server_key.clone();
    let cfg = HandshakeConfig::new(None, Arc::new(AnyPeer))
        .with_pattern(Pattern::NK)
        .with_remote_key(*server.public());
    // 200 spoofed NK initiations (valid mac1: the server key is public).
    for i in 0..200u32 {
        let mut d = initiation_with(cfg.clone(), &server, i + 1, [0; 16], true);
        let from = SocketAddr::from(([10, 3, 0, i as u8], 7000));
        net.nodes[0].handle_datagram(net.now, from, &mut d);
    }
    // The first 64 cost a handshake each and wait half-open; the rest meet
    // a loaded server and get cookies.
    assert_eq!(net.nodes[0].pending_handshakes(), 64);
    assert_eq!(net.nodes[0].stats().cookies_sent, 136);
    net.flush();
    assert!(
        net.events[0].is_empty(),
        "nothing announced: {:?}",
        net.events[0]
    );
    // A real NK client still gets through (cookie, then mac2) and is
    // announced once its first record arrives.
    let c = net.add_client(UdpConfig::default());
    let cfg = net.client_config(Pattern::NK);
    net.connect(c, cfg);
    assert!(net.run_until(Duration::from_secs(3), |n| n.events[0]
        .iter()
        .any(|(_, e)| matches!(e, Event::Connected(_)))));
    // The half-open ones go quietly at the idle timeout.
    net.run_for(Duration::from_secs(25));
    assert_eq!(net.nodes[0].pending_handshakes(), 0);
    assert!(
        net.events[0]
            .iter()
            .all(|(_, e)| !matches!(e, Event::Closed(_))),
        "{:?}",
        net.events[0]
    );
}

#[test]
fn a_ping_on_a_request_stream_ends_the_session() {
    let mut net = SimNet::new(
        22,
        LinkFaults::with_delay(Duration::from_millis(5)),
        UdpConfig::default(),
    );
    let c = net.add_client(UdpConfig::default());
    let cid = connect(&mut net, c);
    // WIRE.md: PING, PONG, BYE and GOAWAY use stream 0.
    let ping = Frame::new(
        netproto_wire::FrameKind::Ping,
        5,
        bytes::Bytes::from_static(b"12345678"),
    );
    net.nodes[c]
        .send(net.now, cid, &ping, Delivery::Reliable)
        .unwrap();
    assert!(net.run_until(Duration::from_secs(5), |n| {
        n.events[0]
            .iter()
            .any(|(_, e)| matches!(e, Event::Closed(_)))
    }));
    assert!(net.nodes[0].stats().dropped(DropReason::BadRecord) >= 1);
    assert_eq!(net.nodes[0].session_count(), 0);
}
