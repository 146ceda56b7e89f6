//! The datagram handshake against an independent Noise implementation
//! (`snow`) in both roles, framed by hand from docs/WIRE.md ("Datagram
//! sessions"): envelope, indexes, mac1/mac2, capabilities, then one record
//! each way.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::many_single_char_names,
    missing_docs
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netproto_crypto::cookie::{mac, CookieKeys};
use netproto_crypto::{
    AnyPeer, Capabilities, HandshakeConfig, Keypair, Mode, Pinned, RekeyPolicy, Session,
};
use netproto_transport_udp::items::{items, Item, Piece};
use netproto_transport_udp::{Delivery, Endpoint, Event, UdpConfig};
use netproto_wire::{DatagramHeader, DatagramRef, DatagramType, Frame, FrameLimits};
use rand::RngCore;

const WALL: Duration = Duration::from_secs(1_700_000_000);

fn secret() -> [u8; 32] {
    let mut s = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

fn prologue() -> Vec<u8> {
    HandshakeConfig::new(None, Arc::new(AnyPeer))
        .with_transport("udp")
        .prologue()
}

fn handshake_datagram(receiver: u32, number: u64, sender: u32, noise: &[u8]) -> Vec<u8> {
    let mut d = vec![0x01, 0x00];
    d.extend_from_slice(&receiver.to_be_bytes());
    d.extend_from_slice(&number.to_be_bytes());
    d.extend_from_slice(&sender.to_be_bytes());
    d.extend_from_slice(noise);
    d
}

/// `len u16 BE | capabilities`, the payload that carries them.
fn caps_payload() -> Vec<u8> {
    let mut caps = Vec::new();
    Capabilities::default().encode(&mut caps);
    let mut p = (caps.len() as u16).to_be_bytes().to_vec();
    p.extend_from_slice(&caps);
    p
}

fn check_caps_payload(p: &[u8]) {
    let len = u16::from_be_bytes([p[0], p[1]]) as usize;
    Capabilities::decode(&p[2..2 + len]).unwrap();
}

/// Seals `plaintext` as a RECORD for `receiver`.
fn seal_record(session: &mut Session, receiver: u32, plaintext: &[u8]) -> Vec<u8> {
    let r = session.sender.reserve(Duration::ZERO).unwrap();
    let header = DatagramHeader {
        kind: DatagramType::Record,
        session: receiver,
        counter: r.counter(),
        fragment: None,
        key_phase: r.key_phase(),
    };
    let mut d = Vec::new();
    header.write(&mut d);
    let mut body = plaintext.to_vec();
    let tag = session.sender.seal(r, &d.clone(), &mut body).unwrap();
    d.extend_from_slice(&body);
    d.extend_from_slice(&tag);
    d
}

/// Opens a RECORD addressed to `receiver`; returns its plaintext.
fn open_record(session: &mut Session, receiver: u32, datagram: &[u8]) -> Vec<u8> {
    let d = DatagramRef::parse(datagram).unwrap();
    assert_eq!(
        (d.header.kind, d.header.session),
        (DatagramType::Record, receiver)
    );
    let mut body = d.body.to_vec();
    let len = session
        .receiver
        .open(
            Duration::ZERO,
            d.header.counter,
            d.header.key_phase,
            d.envelope,
            &mut body,
        )
        .unwrap();
    body.truncate(len);
    body
}

fn message_item(frame: &Frame) -> Vec<u8> {
    let mut msg = Vec::new();
    frame.encode(&mut msg);
    let mut pt = Vec::new();
    Piece {
        reliable: true,
        message_id: 0,
        order: None,
        count: 1,
        index: 0,
        data: &msg,
    }
    .encode(&mut pt);
    pt
}

#[test]
fn snow_initiates_and_our_endpoint_responds() {
    let (server_secret, client_secret) = (secret(), secret());
    let server_key = Keypair::from_secret_bytes(server_secret);
    let now = Instant::now();
    let accept = HandshakeConfig::new(Some(server_key.clone()), Arc::new(AnyPeer));
    let mut ep = Endpoint::new(
        UdpConfig::default(),
        Some(accept),
        Box::new(rand::rngs::OsRng),
        now,
        WALL,
    )
    .unwrap();
    let from: SocketAddr = "192.0.2.7:4000".parse().unwrap();

    let mut snow = snow::Builder::new("Noise_XX_25519_ChaChaPoly_SHA256".parse().unwrap())
        .prologue(&prologue())
        .unwrap()
        .local_private_key(&client_secret)
        .unwrap()
        .build_initiator()
        .unwrap();
    let mut buf = vec![0u8; 65_535];

    // Message 0: empty content, padded so the response cannot be larger.
    let mut payload = vec![0, 0];
    payload.resize(200, 0);
    let n = snow.write_message(&payload, &mut buf).unwrap();
    let mut d = handshake_datagram(0, 0, 0x0102_0304, &buf[..n]);
    let keys = CookieKeys::for_responder(Some(server_key.public()));
    let mac1 = mac(&keys.mac1, &[&d]);
    d.extend_from_slice(&mac1);
    d.extend_from_slice(&[0; 16]);
    let init_len = d.len();
    ep.handle_datagram(now, from, &mut d);

    // Message 1: to our index, from the server's.
    let t = ep.poll_transmit(now).unwrap();
    assert_eq!(t.destination, from);
    assert!(t.contents.len() <= init_len, "no amplification");
    let r = DatagramRef::parse(&t.contents).unwrap();
    assert_eq!(
        (r.header.kind, r.header.session, r.header.counter),
        (DatagramType::Handshake, 0x0102_0304, 1)
    );
    let server_index = u32::from_be_bytes(r.body[..4].try_into().unwrap());
    let n = snow.read_message(&r.body[4..], &mut buf).unwrap();
    check_caps_payload(&buf[..n]);

    // Message 2: our capabilities.
    let n = snow.write_message(&caps_payload(), &mut buf).unwrap();
    let mut d = handshake_datagram(server_index, 2, 0x0102_0304, &buf[..n]);
    ep.handle_datagram(now, from, &mut d);
    assert!(
        matches!(ep.poll_event(), Some((_, Event::Connected(info))) if info.peer_key == Some(*Keypair::from_secret_bytes(client_secret).public()))
    );

    // The responder proves it finished with a record (PADDING only).
    let (i2r, r2i) = snow.dangerously_get_raw_split();
    let mut session = Session::from_keys(
        netproto_crypto::CipherSuite::ChaChaPoly,
        i2r.into(),
        r2i.into(),
        Mode::Datagram,
        RekeyPolicy::default(),
        Duration::ZERO,
    );
    let t = ep.poll_transmit(now).unwrap();
    assert_eq!(open_record(&mut session, 0x0102_0304, &t.contents), [0x00]);

    // A reliable message from the snow side arrives and is acknowledged.
    let mut d = seal_record(
        &mut session,
        server_index,
        &message_item(&Frame::data(9, &b"hi"[..])),
    );
    ep.handle_datagram(now + Duration::from_millis(10), from, &mut d);
    match ep.poll_event() {
        Some((
            _,
            Event::Message {
                frame,
                reliable: true,
            },
        )) => assert_eq!((frame.stream_id, &frame.payload[..]), (9, &b"hi"[..])),
        other => panic!("{other:?}"),
    }
    ep.handle_timeout(now + Duration::from_millis(20));
    let t = ep.poll_transmit(now + Duration::from_millis(20)).unwrap();
    let pt = open_record(&mut session, 0x0102_0304, &t.contents);
    let got: Vec<Item<'_>> = items(&pt).collect::<Result<_, _>>().unwrap();
    assert!(
        matches!(&got[..], [Item::Ack(a)] if a.ranges == [(0, 0)]),
        "{got:?}"
    );
}

#[test]
fn our_endpoint_initiates_and_snow_responds() {
    let server_secret = secret();
    let server_key = Keypair::from_secret_bytes(server_secret);
    let now = Instant::now();
    let mut ep = Endpoint::new(
        UdpConfig::default(),
        None,
        Box::new(rand::rngs::OsRng),
        now,
        WALL,
    )
    .unwrap();
    let server: SocketAddr = "192.0.2.8:5000".parse().unwrap();
    let cfg = HandshakeConfig::new(
        Some(Keypair::generate(&mut rand::rngs::OsRng)),
        Arc::new(Pinned(*server_key.public())),
    )
    .with_remote_key(*server_key.public());
    let id = ep.connect(now, server, cfg).unwrap();

    let mut snow = snow::Builder::new("Noise_XX_25519_ChaChaPoly_SHA256".parse().unwrap())
        .prologue(&prologue())
        .unwrap()
        .local_private_key(&server_secret)
        .unwrap()
        .build_responder()
        .unwrap();
    let mut buf = vec![0u8; 65_535];

    let t = ep.poll_transmit(now).unwrap();
    let d = &t.contents;
    assert_eq!(&d[..14], &[0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let client_index = u32::from_be_bytes(d[14..18].try_into().unwrap());
    assert_eq!(client_index, id.0);
    let covered = d.len() - 32;
    let keys = CookieKeys::for_responder(Some(server_key.public()));
    assert_eq!(
        mac(&keys.mac1, &[&d[..covered]]),
        d[covered..covered + 16],
        "mac1"
    );
    assert_eq!(&d[covered + 16..], &[0; 16], "no cookie, no mac2");
    snow.read_message(&d[18..covered], &mut buf).unwrap();

    let n = snow.write_message(&caps_payload(), &mut buf).unwrap();
    let mut resp = handshake_datagram(client_index, 1, 777, &buf[..n]);
    ep.handle_datagram(now, server, &mut resp);
    assert!(matches!(ep.poll_event(), Some((_, Event::Connected(_)))));

    let t = ep.poll_transmit(now).unwrap();
    let r = DatagramRef::parse(&t.contents).unwrap();
    assert_eq!(
        (r.header.kind, r.header.session, r.header.counter),
        (DatagramType::Handshake, 777, 2)
    );
    assert_eq!(
        u32::from_be_bytes(r.body[..4].try_into().unwrap()),
        client_index
    );
    let n = snow.read_message(&r.body[4..], &mut buf).unwrap();
    check_caps_payload(&buf[..n]);

    let (i2r, r2i) = snow.dangerously_get_raw_split();
    let mut session = Session::from_keys(
        netproto_crypto::CipherSuite::ChaChaPoly,
        r2i.into(),
        i2r.into(),
        Mode::Datagram,
        RekeyPolicy::default(),
        Duration::ZERO,
    );
    ep.send(
        now,
        id,
        &Frame::data(3, &b"from netproto"[..]),
        Delivery::Reliable,
    )
    .unwrap();
    let t = ep.poll_transmit(now).unwrap();
    let pt = open_record(&mut session, 777, &t.contents);
    let got: Vec<Item<'_>> = items(&pt).collect::<Result<_, _>>().unwrap();
    let [Item::Piece(p)] = &got[..] else {
        panic!("{got:?}")
    };
    assert!(p.reliable && p.count == 1);
    let (frame, _) = Frame::decode(
        &bytes::Bytes::copy_from_slice(p.data),
        &FrameLimits::default(),
    )
    .unwrap();
    assert_eq!(&frame.payload[..], b"from netproto");

    // The responder's first record confirms the handshake; the endpoint
    // stops resending message 2 once it authenticates.
    let mut d = seal_record(&mut session, client_index, &[0x00]);
    ep.handle_datagram(now, server, &mut d);
    ep.handle_timeout(now + Duration::from_secs(5));
    while let Some(t) = ep.poll_transmit(now + Duration::from_secs(5)) {
        assert_ne!(
            t.contents[0], 0x01,
            "no handshake datagram after confirmation"
        );
    }
}
