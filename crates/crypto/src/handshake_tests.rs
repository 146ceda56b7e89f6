//! Capabilities and the message lengths WIRE.md states.

use super::*;

#[test]
fn a_later_version_is_met_at_the_lower_one_and_version_0_is_refused() {
    let mut wire = Vec::new();
    let later = Capabilities {
        version: 2,
        ..Capabilities::default()
    };
    later.encode(&mut wire);
    // Room for fields a later version appends.
    wire.extend_from_slice(&[0xaa; 6]);
    let got = Capabilities::decode(&wire).unwrap();
    assert_eq!(got.version, 2);
    assert_eq!(Capabilities::default().intersect(&got).version, 1);
    wire[0] = 0;
    assert_eq!(
        Capabilities::decode(&wire),
        Err(CryptoError::BadPayload("protocol version 0"))
    );
    assert!(Capabilities::decode(&wire[..9]).is_err());
    let tiny = Capabilities {
        max_frame: MIN_MESSAGE_LIMIT - 1,
        ..Capabilities::default()
    };
    let mut wire = Vec::new();
    tiny.encode(&mut wire);
    assert_eq!(
        Capabilities::decode(&wire),
        Err(CryptoError::BadPayload("message limit below 1024 bytes"))
    );
}

/// The message lengths WIRE.md's "Handshake" table states, with
/// netproto's payloads (message 0 padded to the response's length).
#[test]
fn handshake_message_lengths_are_those_wire_md_states() {
    use crate::verifier::AnyPeer;
    let mut rng = rand::rngs::OsRng;
    let expected: [(Pattern, &[usize]); 4] = [
        (Pattern::XX, &[108, 108, 76]),
        (Pattern::XK, &[60, 60, 66]),
        (Pattern::IK, &[120, 60]),
        (Pattern::NK, &[60, 60]),
    ];
    for (pattern, lengths) in expected {
        let server = Keypair::generate(&mut rng);
        let server_pub = *server.public();
        let mut responder = Handshake::responder(
            HandshakeConfig::new(Some(server), Arc::new(AnyPeer)).with_pattern(pattern),
        )
        .unwrap();
        let client_key = pattern
            .initiator_has_static()
            .then(|| Keypair::generate(&mut rng));
        let mut cfg = HandshakeConfig::new(client_key, Arc::new(AnyPeer)).with_pattern(pattern);
        if pattern.responder_key_known() {
            cfg = cfg.with_remote_key(server_pub);
        }
        let mut initiator = Handshake::initiator(cfg).unwrap();
        let mut guard = TimestampGuard::default();
        let now = Duration::from_secs(1_700_000_000);
        guard.set_now(now);
        let mut got = Vec::new();
        for i in 0..lengths.len() {
            let (from, to) = if i % 2 == 0 {
                (&mut initiator, &mut responder)
            } else {
                (&mut responder, &mut initiator)
            };
            let mut msg = Vec::new();
            from.write_message(&mut rng, now, &mut msg).unwrap();
            got.push(msg.len());
            let g = (i == 0 && pattern == Pattern::IK).then_some(&mut guard);
            to.read_message(&msg, g).unwrap();
        }
        assert_eq!(got, lengths, "{pattern:?}");
        assert!(initiator.finish().is_ok() && responder.finish().is_ok());
    }
}
