//! The raw Noise layer against independent implementations: the cacophony
//! test vectors (as shipped by the snow crate) byte for byte, and the `snow`
//! crate itself in both roles.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use netproto_crypto::noise::{HandshakeState, Pattern};
use netproto_crypto::{CipherSuite, Keypair, Mode, PublicKey, RekeyPolicy, Session, TAG_LEN};
use rand::{Rng, SeedableRng};
use rand_core::RngCore;
use rand_core::{impls, CryptoRng};

/// Hands out fixed bytes: how a test injects the vectors' ephemeral keys
/// through the ordinary randomness parameter.
struct FixedRng(Vec<u8>);

impl RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        assert!(
            self.0.len() >= dest.len(),
            "test RNG ran out of fixed bytes"
        );
        let rest = self.0.split_off(dest.len());
        dest.copy_from_slice(&self.0);
        self.0 = rest;
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for FixedRng {}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn key32(s: &str) -> [u8; 32] {
    unhex(s).try_into().unwrap()
}

fn pattern_of(name: &str) -> Pattern {
    match &name[6..8] {
        "XX" => Pattern::XX,
        "XK" => Pattern::XK,
        "IK" => Pattern::IK,
        "NK" => Pattern::NK,
        other => panic!("unexpected pattern {other}"),
    }
}

fn suite_of(name: &str) -> CipherSuite {
    match name.split('_').nth(3) {
        Some("ChaChaPoly") => CipherSuite::ChaChaPoly,
        Some("AESGCM") => CipherSuite::AesGcm,
        other => panic!("unexpected cipher {other:?}"),
    }
}

/// Session keys straight from the raw handshake, so transport messages can be
/// compared with empty associated data (as cacophony and snow use).
fn session_from(hs: HandshakeState, initiator: bool) -> (Session, [u8; 32]) {
    let keys = hs.into_transport().unwrap();
    let (send, recv) = if initiator {
        (keys.initiator_to_responder, keys.responder_to_initiator)
    } else {
        (keys.responder_to_initiator, keys.initiator_to_responder)
    };
    (
        Session::from_keys(
            keys.suite,
            send,
            recv,
            Mode::Stream,
            RekeyPolicy::default(),
            Duration::ZERO,
        ),
        keys.handshake_hash,
    )
}

fn seal(s: &mut Session, pt: &[u8]) -> Vec<u8> {
    let mut buf = pt.to_vec();
    let r = s.sender.reserve(Duration::ZERO).unwrap();
    let tag = s.sender.seal(r, &[], &mut buf).unwrap();
    buf.extend_from_slice(&tag);
    buf
}

fn open(s: &mut Session, ct: &[u8]) -> Vec<u8> {
    let mut buf = ct.to_vec();
    let phase = false;
    let len = s
        .receiver
        .open(Duration::ZERO, 0, phase, &[], &mut buf)
        .unwrap();
    buf.truncate(len);
    buf
}

#[test]
fn cacophony_vectors() {
    let data: serde_json::Value =
        serde_json::from_str(include_str!("data/cacophony.json")).unwrap();
    let vectors = data["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 8);
    for v in vectors {
        let name = v["protocol_name"].as_str().unwrap();
        let pattern = pattern_of(name);
        let suite = suite_of(name);
        assert_eq!(pattern.protocol_name(suite), name);
        let s = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(|x| Keypair::from_secret_bytes(key32(x)))
        };
        let rs = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(|x| PublicKey::from_bytes(key32(x)))
        };
        let mut init = HandshakeState::new(
            pattern,
            suite,
            true,
            &unhex(v["init_prologue"].as_str().unwrap()),
            s("init_static"),
            rs("init_remote_static"),
        )
        .unwrap();
        let mut resp = HandshakeState::new(
            pattern,
            suite,
            false,
            &unhex(v["resp_prologue"].as_str().unwrap()),
            s("resp_static"),
            None,
        )
        .unwrap();
        let mut init_rng = FixedRng(unhex(v["init_ephemeral"].as_str().unwrap()));
        let mut resp_rng = FixedRng(unhex(v["resp_ephemeral"].as_str().unwrap()));
        let messages = v["messages"].as_array().unwrap();
        let hs_count = pattern.message_count();
        for (i, m) in messages.iter().take(hs_count).enumerate() {
            let payload = unhex(m["payload"].as_str().unwrap());
            let expected = unhex(m["ciphertext"].as_str().unwrap());
            let (writer, reader, rng) = if i % 2 == 0 {
                (&mut init, &mut resp, &mut init_rng)
            } else {
                (&mut resp, &mut init, &mut resp_rng)
            };
            let mut out = Vec::new();
            writer.write_message(rng, &payload, &mut out).unwrap();
            assert_eq!(out, expected, "{name} handshake message {i}");
            let mut got = Vec::new();
            reader.read_message(&out, &mut got).unwrap();
            assert_eq!(got, payload, "{name} handshake payload {i}");
        }
        let (mut i_sess, i_hash) = session_from(init, true);
        let (mut r_sess, r_hash) = session_from(resp, false);
        assert_eq!(
            hex(&i_hash),
            v["handshake_hash"].as_str().unwrap(),
            "{name} handshake hash"
        );
        assert_eq!(i_hash, r_hash);
        for (i, m) in messages.iter().enumerate().skip(hs_count) {
            let payload = unhex(m["payload"].as_str().unwrap());
            let expected = unhex(m["ciphertext"].as_str().unwrap());
            let (tx, rx) = if i % 2 == 0 {
                (&mut i_sess, &mut r_sess)
            } else {
                (&mut r_sess, &mut i_sess)
            };
            let ct = seal(tx, &payload);
            assert_eq!(ct, expected, "{name} transport message {i}");
            assert_eq!(open(rx, &ct), payload);
        }
    }
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// One handshake between our implementation and snow, `ours_initiates`
/// choosing the roles, with random keys and payload sizes, then records both
/// ways with a rekey in the middle.
fn interop(
    pattern: Pattern,
    suite: CipherSuite,
    ours_initiates: bool,
    rng: &mut rand::rngs::StdRng,
) {
    let prologue: Vec<u8> = (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect();
    let init_key = Keypair::generate(&mut rand::rngs::OsRng);
    let resp_key = Keypair::generate(&mut rand::rngs::OsRng);
    let init_secret = secret_bytes(&init_key);
    let resp_secret = secret_bytes(&resp_key);
    let params: snow::params::NoiseParams = pattern.protocol_name(suite).parse().unwrap();

    let mut builder = snow::Builder::new(params).prologue(&prologue).unwrap();
    let mut ours = if ours_initiates {
        // snow responds: it always has a static key in these patterns.
        builder = builder.local_private_key(&resp_secret).unwrap();
        HandshakeState::new(
            pattern,
            suite,
            true,
            &prologue,
            pattern.initiator_has_static().then(|| init_key.clone()),
            pattern.responder_key_known().then(|| *resp_key.public()),
        )
        .unwrap()
    } else {
        if pattern.initiator_has_static() {
            builder = builder.local_private_key(&init_secret).unwrap();
        }
        if pattern.responder_key_known() {
            builder = builder
                .remote_public_key(resp_key.public().as_bytes())
                .unwrap();
        }
        HandshakeState::new(
            pattern,
            suite,
            false,
            &prologue,
            Some(resp_key.clone()),
            None,
        )
        .unwrap()
    };
    let mut theirs = if ours_initiates {
        builder.build_responder().unwrap()
    } else {
        builder.build_initiator().unwrap()
    };

    // snow wants room for a tag even where a message has none.
    let mut buf = vec![0u8; 65535 + TAG_LEN];
    for i in 0..pattern.message_count() {
        let our_turn = (i % 2 == 0) == ours_initiates;
        let overhead = pattern.message_len(i, 0);
        let payload: Vec<u8> = {
            let n = if rng.gen_bool(0.2) {
                65535 - overhead
            } else {
                rng.gen_range(0..2000)
            };
            (0..n).map(|_| rng.gen()).collect()
        };
        if our_turn {
            let mut out = Vec::new();
            ours.write_message(&mut rand::rngs::OsRng, &payload, &mut out)
                .unwrap();
            let n = theirs.read_message(&out, &mut buf).unwrap();
            assert_eq!(&buf[..n], &payload[..], "{pattern:?} msg {i} snow read");
        } else {
            let n = theirs.write_message(&payload, &mut buf).unwrap();
            let mut got = Vec::new();
            ours.read_message(&buf[..n], &mut got).unwrap();
            assert_eq!(got, payload, "{pattern:?} msg {i} we read");
        }
    }
    assert_eq!(ours.handshake_hash()[..], *theirs.get_handshake_hash());
    if pattern.initiator_has_static() || ours_initiates {
        let expected = if ours_initiates {
            resp_key.public()
        } else {
            init_key.public()
        };
        assert_eq!(ours.remote_static(), Some(expected));
    }
    let theirs = theirs.into_transport_mode().unwrap();
    let (session, _) = session_from(ours, ours_initiates);
    records_both_ways(session, theirs, rng);
}

/// Records both ways between a session of ours and snow's transport state,
/// with a Noise rekey of both directions halfway.
fn records_both_ways(
    mut session: Session,
    mut theirs: snow::TransportState,
    rng: &mut rand::rngs::StdRng,
) {
    let mut buf = vec![0u8; 65535 + TAG_LEN];
    for round in 0..20 {
        let n = if round == 0 {
            65519
        } else {
            rng.gen_range(0..3000)
        };
        let msg: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
        if round == 10 {
            // Rekey both directions the Noise way, mid-stream.
            session.sender.force_rekey(Duration::ZERO);
            theirs.rekey_incoming();
            theirs.rekey_outgoing();
        }
        let ct = seal(&mut session, &msg);
        let k = theirs.read_message(&ct, &mut buf).unwrap();
        assert_eq!(&buf[..k], &msg[..]);
        let k = theirs.write_message(&msg, &mut buf).unwrap();
        let mut rec = buf[..k].to_vec();
        let phase = round >= 10;
        let len = session
            .receiver
            .open(Duration::ZERO, 0, phase, &[], &mut rec)
            .unwrap();
        assert_eq!(&rec[..len], &msg[..]);
        assert_eq!(k, msg.len() + TAG_LEN);
    }
}

fn secret_bytes(k: &Keypair) -> [u8; 32] {
    // The key file is the only way out for a private key; parse it back.
    use base64::Engine as _;
    let text = k.to_key_file();
    let line = text.lines().nth(1).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(line)
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn snow_interop_all_patterns_both_ciphers_both_roles() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6e70);
    for pattern in [Pattern::XX, Pattern::XK, Pattern::IK, Pattern::NK] {
        for suite in CipherSuite::ALL {
            for ours_initiates in [true, false] {
                for _ in 0..4 {
                    interop(pattern, suite, ours_initiates, &mut rng);
                }
            }
        }
    }
}
