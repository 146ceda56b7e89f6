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

/// An XX exchange of the first two messages with the responder told
/// `named` (what the carrier said the initiator chose).
fn exchange(initiator_cipher: CipherSuite, named: CipherSuite, accepted: CipherSet) -> Result<()> {
    use crate::verifier::AnyPeer;
    let mut rng = rand::rngs::OsRng;
    let now = Duration::from_secs(1_700_000_000);
    let mut initiator = Handshake::initiator(
        HandshakeConfig::new(Some(Keypair::generate(&mut rng)), Arc::new(AnyPeer))
            .with_cipher(initiator_cipher),
    )?;
    let mut responder = Handshake::responder(
        HandshakeConfig::new(Some(Keypair::generate(&mut rng)), Arc::new(AnyPeer))
            .with_accepted_ciphers(accepted),
    )?;
    responder.select_cipher(named)?;
    let (mut m1, mut m2, mut m3) = (Vec::new(), Vec::new(), Vec::new());
    initiator.write_message(&mut rng, now, &mut m1)?;
    responder.read_message(&m1, None)?;
    responder.write_message(&mut rng, now, &mut m2)?;
    initiator.read_message(&m2, None)?;
    initiator.write_message(&mut rng, now, &mut m3)?;
    responder.read_message(&m3, None)?;
    let (i, r) = (initiator.finish()?, responder.finish()?);
    assert_eq!((i.suite, r.suite), (initiator_cipher, initiator_cipher));
    assert_eq!(i.handshake_hash, r.handshake_hash);
    Ok(())
}

#[test]
fn the_responder_follows_the_initiators_cipher_within_its_accepted_set() {
    for suite in CipherSuite::ALL {
        exchange(suite, suite, CipherSet::ALL).unwrap();
        exchange(suite, suite, CipherSet::only(suite)).unwrap();
    }
    assert_eq!(
        exchange(
            CipherSuite::AesGcm,
            CipherSuite::AesGcm,
            CipherSet::only(CipherSuite::ChaChaPoly)
        ),
        Err(CryptoError::CipherRefused(CipherSuite::AesGcm))
    );
    // A responder accepting only AES-GCM starts with it.
    let only_aes = Handshake::responder(
        HandshakeConfig::new(
            Some(Keypair::generate(&mut rand::rngs::OsRng)),
            Arc::new(crate::verifier::AnyPeer),
        )
        .with_accepted_ciphers(CipherSet::only(CipherSuite::AesGcm)),
    )
    .unwrap();
    assert_eq!(only_aes.cipher(), CipherSuite::AesGcm);
}

/// A middlebox that rewrites the initiator's choice (a downgrade) makes the
/// handshake fail: the protocol name is hashed in first thing.
#[test]
fn a_changed_cipher_choice_fails_the_handshake() {
    assert_eq!(
        exchange(CipherSuite::AesGcm, CipherSuite::ChaChaPoly, CipherSet::ALL),
        Err(CryptoError::Decrypt)
    );
    assert_eq!(
        exchange(CipherSuite::ChaChaPoly, CipherSuite::AesGcm, CipherSet::ALL),
        Err(CryptoError::Decrypt)
    );
}
