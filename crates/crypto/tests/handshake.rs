//! netproto's handshake layer: every pattern end to end, verification,
//! downgrade detection, IK replay, anti-amplification, tampering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
#![allow(clippy::many_single_char_names)]

use std::sync::Arc;
use std::time::Duration;

use netproto_crypto::{
    codecs, AllowList, AnyPeer, Capabilities, CryptoError, Established, Handshake, HandshakeConfig,
    Keypair, Pattern, PeerVerifier, Pinned, Rejection, TimestampGuard,
};
use proptest::prelude::*;
use rand::rngs::OsRng;

const NOW: Duration = Duration::from_secs(1_763_000_000);

fn guard() -> TimestampGuard {
    let mut g = TimestampGuard::default();
    g.set_now(NOW);
    g
}

struct Pair {
    client: Handshake,
    server: Handshake,
}

fn keys() -> (Keypair, Keypair) {
    (Keypair::generate(&mut OsRng), Keypair::generate(&mut OsRng))
}

fn pair(
    pattern: Pattern,
    client_verifier: Arc<dyn PeerVerifier>,
    server_verifier: Arc<dyn PeerVerifier>,
) -> (Pair, Keypair, Keypair) {
    let (ck, sk) = keys();
    let mut ccfg = HandshakeConfig::new(
        pattern.initiator_has_static().then(|| ck.clone()),
        client_verifier,
    )
    .with_pattern(pattern)
    .with_host("server.test:9000");
    if pattern.responder_key_known() {
        ccfg = ccfg.with_remote_key(*sk.public());
    }
    let scfg = HandshakeConfig::new(Some(sk.clone()), server_verifier).with_pattern(pattern);
    (
        Pair {
            client: Handshake::initiator(ccfg).unwrap(),
            server: Handshake::responder(scfg).unwrap(),
        },
        ck,
        sk,
    )
}

/// Runs the handshake, returning every message sent and both results.
fn run(p: &mut Pair, guard: &mut TimestampGuard) -> Result<Vec<Vec<u8>>, CryptoError> {
    let mut sent = Vec::new();
    let mut client_turn = true;
    while !(p.client.is_finished() && p.server.is_finished()) {
        let (w, r) = if client_turn {
            (&mut p.client, &mut p.server)
        } else {
            (&mut p.server, &mut p.client)
        };
        let mut msg = Vec::new();
        w.write_message(&mut OsRng, NOW, &mut msg)?;
        let g = if client_turn { Some(&mut *guard) } else { None };
        r.read_message(&msg, g)?;
        sent.push(msg);
        client_turn = !client_turn;
    }
    Ok(sent)
}

fn finish(p: Pair) -> (Established, Established) {
    (p.client.finish().unwrap(), p.server.finish().unwrap())
}

#[test]
fn every_pattern_completes_and_agrees() {
    for pattern in [Pattern::XX, Pattern::XK, Pattern::IK, Pattern::NK] {
        let (mut p, ck, sk) = pair(pattern, Arc::new(AnyPeer), Arc::new(AnyPeer));
        let msgs = run(&mut p, &mut guard()).unwrap();
        assert_eq!(msgs.len(), pattern.message_count());
        // No amplification: the response is never longer than the initiation.
        assert!(
            msgs[1].len() <= msgs[0].len(),
            "{pattern:?}: {} > {}",
            msgs[1].len(),
            msgs[0].len()
        );
        let (c, s) = finish(p);
        assert_eq!(c.handshake_hash, s.handshake_hash);
        assert_eq!(*c.send_key, *s.recv_key);
        assert_eq!(*c.recv_key, *s.send_key);
        assert_ne!(*c.send_key, *c.recv_key);
        assert_eq!(c.peer, Some(*sk.public()));
        if pattern == Pattern::NK {
            assert_eq!(s.peer, None, "NK client stays anonymous");
        } else {
            assert_eq!(s.peer, Some(*ck.public()));
        }
        assert_eq!(c.negotiated, s.negotiated);
    }
}

#[test]
fn capabilities_are_intersected() {
    let (ck, sk) = keys();
    let mut a = Capabilities::default();
    a.max_frame = 1 << 20;
    a.compression = codecs::LZ4;
    a.features = 0b1011;
    let mut b = Capabilities::default();
    b.max_frame = 1 << 16;
    b.compression = codecs::LZ4 | codecs::ZSTD;
    b.features = 0b0110;
    let mut p = Pair {
        client: Handshake::initiator(
            HandshakeConfig::new(Some(ck), Arc::new(AnyPeer)).with_capabilities(a),
        )
        .unwrap(),
        server: Handshake::responder(
            HandshakeConfig::new(Some(sk), Arc::new(AnyPeer)).with_capabilities(b),
        )
        .unwrap(),
    };
    run(&mut p, &mut guard()).unwrap();
    let (c, s) = finish(p);
    assert_eq!(c.negotiated.max_frame, 1 << 16);
    assert_eq!(c.negotiated.compression, codecs::LZ4);
    assert_eq!(c.negotiated.features, 0b0010);
    assert_eq!(s.negotiated, c.negotiated);
}

#[test]
fn pinned_key_mismatch_is_refused_before_client_reveals_itself() {
    let other = Keypair::generate(&mut OsRng);
    let (mut p, _, _) = pair(
        Pattern::XX,
        Arc::new(Pinned(*other.public())),
        Arc::new(AnyPeer),
    );
    let mut init = Vec::new();
    p.client.write_message(&mut OsRng, NOW, &mut init).unwrap();
    p.server.read_message(&init, None).unwrap();
    let mut resp = Vec::new();
    p.server.write_message(&mut OsRng, NOW, &mut resp).unwrap();
    let err = p.client.read_message(&resp, None).unwrap_err();
    assert!(
        matches!(err, CryptoError::PeerRejected(Rejection::NotPinned { .. })),
        "{err:?}"
    );
    // The client never gets to send its identity.
    assert!(p.client.finish().is_err());
}

#[test]
fn server_allow_list() {
    let (mut p, _, _) = pair(Pattern::XX, Arc::new(AnyPeer), Arc::new(AllowList::new([])));
    let err = run(&mut p, &mut guard()).unwrap_err();
    assert!(matches!(
        err,
        CryptoError::PeerRejected(Rejection::NotAllowed { .. })
    ));
    let (mut p, _, _) = pair(Pattern::NK, Arc::new(AnyPeer), Arc::new(AllowList::new([])));
    assert_eq!(
        run(&mut p, &mut guard()).unwrap_err(),
        CryptoError::PeerRejected(Rejection::Anonymous)
    );
}

#[test]
fn prologue_mismatch_is_detected() {
    // Same keys, but the client thinks it speaks over "tls": a downgrade or
    // confusion attempt fails authentication.
    let (ck, sk) = keys();
    let mut p = Pair {
        client: Handshake::initiator(
            HandshakeConfig::new(Some(ck), Arc::new(AnyPeer))
                .with_pattern(Pattern::XK)
                .with_remote_key(*sk.public())
                .with_transport("tls"),
        )
        .unwrap(),
        server: Handshake::responder(
            HandshakeConfig::new(Some(sk), Arc::new(AnyPeer)).with_pattern(Pattern::XK),
        )
        .unwrap(),
    };
    assert_eq!(run(&mut p, &mut guard()).unwrap_err(), CryptoError::Decrypt);
}

#[test]
fn wrong_server_key_for_xk_fails() {
    let (ck, sk) = keys();
    let impostor = Keypair::generate(&mut OsRng);
    let mut p = Pair {
        client: Handshake::initiator(
            HandshakeConfig::new(Some(ck), Arc::new(AnyPeer))
                .with_pattern(Pattern::XK)
                .with_remote_key(*sk.public()),
        )
        .unwrap(),
        server: Handshake::responder(
            HandshakeConfig::new(Some(impostor), Arc::new(AnyPeer)).with_pattern(Pattern::XK),
        )
        .unwrap(),
    };
    assert_eq!(run(&mut p, &mut guard()).unwrap_err(), CryptoError::Decrypt);
}

#[test]
fn ik_replayed_initiation_is_refused() {
    let (ck, sk) = keys();
    let client_cfg = HandshakeConfig::new(Some(ck), Arc::new(AnyPeer))
        .with_pattern(Pattern::IK)
        .with_remote_key(*sk.public());
    let server_cfg = HandshakeConfig::new(Some(sk), Arc::new(AnyPeer)).with_pattern(Pattern::IK);
    let mut guard = guard();
    let mut client = Handshake::initiator(client_cfg.clone()).unwrap();
    let mut init = Vec::new();
    client.write_message(&mut OsRng, NOW, &mut init).unwrap();
    Handshake::responder(server_cfg.clone())
        .unwrap()
        .read_message(&init, Some(&mut guard))
        .unwrap();
    // The same bytes again: refused.
    assert_eq!(
        Handshake::responder(server_cfg.clone())
            .unwrap()
            .read_message(&init, Some(&mut guard)),
        Err(CryptoError::ReplayedInitiation)
    );
    // Without a guard an IK responder refuses to read at all.
    assert_eq!(
        Handshake::responder(server_cfg.clone())
            .unwrap()
            .read_message(&init, None),
        Err(CryptoError::ReplayGuardRequired)
    );
    // A fresh initiation with a later timestamp is fine.
    let mut client = Handshake::initiator(client_cfg).unwrap();
    let mut later = Vec::new();
    client
        .write_message(&mut OsRng, NOW + Duration::from_millis(1), &mut later)
        .unwrap();
    Handshake::responder(server_cfg)
        .unwrap()
        .read_message(&later, Some(&mut guard))
        .unwrap();
}

#[test]
fn short_initiation_is_refused_before_dh() {
    for pattern in [Pattern::XX, Pattern::XK, Pattern::IK, Pattern::NK] {
        let (mut p, _, _) = pair(pattern, Arc::new(AnyPeer), Arc::new(AnyPeer));
        let mut init = Vec::new();
        p.client.write_message(&mut OsRng, NOW, &mut init).unwrap();
        // One byte shorter than the response (2-byte length + 10 bytes of
        // capabilities) would be.
        init.truncate(pattern.message_len(1, 12) - 1);
        let err = p
            .server
            .read_message(&init, Some(&mut guard()))
            .unwrap_err();
        assert!(
            matches!(err, CryptoError::InitiationTooShort { .. }),
            "{pattern:?}: {err:?}"
        );
    }
}

#[test]
fn oversize_and_out_of_turn() {
    let (mut p, _, _) = pair(Pattern::XX, Arc::new(AnyPeer), Arc::new(AnyPeer));
    let huge = vec![0u8; 70_000];
    assert!(matches!(
        p.server.read_message(&huge, None),
        Err(CryptoError::BadMessageLength { .. })
    ));
    let mut out = Vec::new();
    assert!(matches!(
        p.server.write_message(&mut OsRng, NOW, &mut out),
        Err(CryptoError::OutOfOrder(_))
    ));
}

#[test]
fn low_order_ephemeral_is_refused() {
    // An initiation whose ephemeral key is a low-order point (here: zero).
    let (mut p, _, _) = pair(Pattern::XX, Arc::new(AnyPeer), Arc::new(AnyPeer));
    let mut init = Vec::new();
    p.client.write_message(&mut OsRng, NOW, &mut init).unwrap();
    init[..32].fill(0);
    p.server.read_message(&init, None).unwrap();
    let mut resp = Vec::new();
    // Writing `ee` needs DH with the zero point: refused.
    assert_eq!(
        p.server.write_message(&mut OsRng, NOW, &mut resp),
        Err(CryptoError::LowOrderPoint)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Flipping any bit of any handshake message makes the handshake fail.
    #[test]
    fn tampering_any_byte_fails(
        pattern in prop_oneof![Just(Pattern::XX), Just(Pattern::XK), Just(Pattern::IK), Just(Pattern::NK)],
        which in 0usize..3,
        pos in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let (mut p, _, _) = pair(pattern, Arc::new(AnyPeer), Arc::new(AnyPeer));
        let which = which % pattern.message_count();
        let mut guard = guard();
        let mut client_turn = true;
        let mut failed = false;
        for i in 0..pattern.message_count() {
            let (w, r) = if client_turn { (&mut p.client, &mut p.server) } else { (&mut p.server, &mut p.client) };
            let mut msg = Vec::new();
            w.write_message(&mut OsRng, NOW, &mut msg).unwrap();
            if i == which {
                let at = pos.index(msg.len());
                msg[at] ^= 1 << bit;
            }
            let g = if client_turn { Some(&mut guard) } else { None };
            if r.read_message(&msg, g).is_err() {
                failed = true;
                break;
            }
            client_turn = !client_turn;
        }
        // A flip in XX's plaintext first message (the ephemeral key or the
        // padding) is caught one message later, when keys disagree; either
        // way the handshake cannot complete with both sides agreeing.
        if !failed {
            let (c, s) = (p.client.finish(), p.server.finish());
            prop_assert!(c.is_err() || s.is_err() || c.unwrap().handshake_hash != s.unwrap().handshake_hash);
        }
    }
}

#[test]
fn xx_initiator_with_a_configured_server_key_pins_it() {
    let (ck, sk) = keys();
    let other = Keypair::generate(&mut OsRng);
    for (expected, ok) in [(*sk.public(), true), (*other.public(), false)] {
        let mut p = Pair {
            client: Handshake::initiator(
                HandshakeConfig::new(Some(ck.clone()), Arc::new(AnyPeer)).with_remote_key(expected),
            )
            .unwrap(),
            server: Handshake::responder(HandshakeConfig::new(Some(sk.clone()), Arc::new(AnyPeer)))
                .unwrap(),
        };
        let result = run(&mut p, &mut guard());
        if ok {
            result.unwrap();
        } else {
            assert!(
                matches!(
                    result,
                    Err(CryptoError::PeerRejected(Rejection::NotPinned { .. }))
                ),
                "{result:?}"
            );
        }
    }
}

#[test]
fn ik_initiation_from_the_future_is_refused() {
    let (ck, sk) = keys();
    let mut client = Handshake::initiator(
        HandshakeConfig::new(Some(ck), Arc::new(AnyPeer))
            .with_pattern(Pattern::IK)
            .with_remote_key(*sk.public()),
    )
    .unwrap();
    let mut init = Vec::new();
    client
        .write_message(&mut OsRng, NOW + Duration::from_hours(1), &mut init)
        .unwrap();
    let mut server = Handshake::responder(
        HandshakeConfig::new(Some(sk), Arc::new(AnyPeer)).with_pattern(Pattern::IK),
    )
    .unwrap();
    assert_eq!(
        server.read_message(&init, Some(&mut guard())),
        Err(CryptoError::TimestampInFuture)
    );
}
