//! The handshake phase: Noise, the TLS hello, their deadlines and errors.

use super::*;

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
fn sends_before_the_handshake_are_refused() {
    let mut p = Pair::unestablished(StreamSecurity::Plain, |_| {});
    assert_eq!(
        p.server.send_data(p.now, 1, b"early").unwrap_err(),
        TransportError::InvalidFrame(InvalidFrame::NotEstablished)
    );
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

/// Each cipher the client chooses is the one both sides run (and the
/// records of either carry data), whatever the server would choose itself.
#[test]
fn the_server_runs_the_cipher_the_client_chose() {
    use netproto_crypto::CipherSuite;
    for client in CipherSuite::ALL {
        for server in CipherSuite::ALL {
            let (mut c, mut s) = configs(|_| {});
            c.handshake.cipher = client;
            s.handshake.cipher = server;
            let mut p = Pair::from_configs(&c, &s, StreamSecurity::Plain);
            p.establish();
            assert_eq!(p.client.info().unwrap().cipher, Some(client));
            assert_eq!(p.server.info().unwrap().cipher, Some(client));
            p.client.send_data(p.now, 1, b"over either cipher").unwrap();
            p.client_to_server();
            let got = p.server_frame().unwrap().unwrap();
            assert_eq!(&got.payload[..], b"over either cipher");
        }
    }
}

/// A server that does not accept the client's cipher closes without a
/// frame (nothing for a prober to learn), with a typed error.
#[test]
fn a_cipher_the_server_does_not_accept_ends_the_handshake() {
    use netproto_crypto::{CipherSet, CipherSuite, CryptoError};
    let (mut c, mut s) = configs(|_| {});
    c.handshake.cipher = CipherSuite::AesGcm;
    s.handshake.accepted_ciphers = CipherSet::only(CipherSuite::ChaChaPoly);
    let mut p = Pair::from_configs(&c, &s, StreamSecurity::Plain);
    p.client_to_server();
    let err = p.server.handle_input(p.now, &mut p.to_server).unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Crypto(CryptoError::CipherRefused(CipherSuite::AesGcm))
        ),
        "{err:?}"
    );
    let mut out = Vec::new();
    let _ = p.server.poll_transmit(p.now, &mut out);
    assert!(out.is_empty(), "the server answered a refused cipher");
}

/// A stream id that names no cipher, or a responder that switches the
/// cipher mid-handshake, is refused.
#[test]
fn handshake_frames_must_keep_naming_the_same_cipher() {
    let (c, s) = configs(|_| {});
    let mut p = Pair::from_configs(&c, &s, StreamSecurity::Plain);
    p.client_to_server();
    // Rewrite message 1's stream id (byte 12: after the 10-byte header,
    // the kind and the flags) to 3, a value that names no cipher.
    let mut bad = p.to_server.clone();
    bad[12] = 3;
    let mut server =
        Core::stream(&s, StreamSecurity::Plain, Role::Server, p.now, WALL, rng(3)).unwrap();
    let err = server.handle_input(p.now, &mut bad).unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Protocol(ProtocolViolation::NotOneHandshakeFrame)
        ),
        "{err:?}"
    );
    // The server answers on the client's stream id; an answer naming the
    // other cipher is refused by the client.
    while p.server.handle_input(p.now, &mut p.to_server).unwrap() {}
    let mut answer = Vec::new();
    assert!(p.server.poll_transmit(p.now, &mut answer).unwrap());
    answer[12] = if answer[12] == 0 { 2 } else { 0 };
    let mut input = BytesMut::from(&answer[..]);
    let err = p.client.handle_input(p.now, &mut input).unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Crypto(netproto_crypto::CryptoError::OutOfOrder(_))
        ),
        "{err:?}"
    );
}
