//! The XX transcripts of docs/WIRE.md ("Handshake transcript", one per
//! cipher), each checked three ways: the connection core, given the transcript's keys, sends exactly
//! those bytes and accepts the peer's; an independent Noise implementation
//! (`snow`), given the same keys, computes the same handshake messages,
//! payloads, hash and session keys; and an independent AEAD opens the
//! records with those keys, nonces and associated data as WIRE.md says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::Aes256Gcm;
use bytes::BytesMut;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use netproto_crypto::noise::Pattern;
use netproto_crypto::{AnyPeer, CipherSuite, HandshakeConfig, Keypair, Pinned};
use netproto_testkit::{hex, spec_vectors, unhex, SpecVector};
use netproto_transport::core::{Core, Event, Role};
use netproto_transport::{ConnectionConfig, StreamSecurity};
use netproto_wire::FrameKind;

const SPEC: &str = include_str!("../../docs/WIRE.md");
/// Packet header (10) + HANDSHAKE frame head (kind, flags, stream 0, a
/// one-byte length): where the Noise message starts in a handshake packet
/// of fewer than 128 Noise bytes.
const NOISE_AT: usize = 14;

/// Hands out exactly the bytes it was given: the transcript's ephemeral
/// keys. For test vectors only.
struct Scripted(VecDeque<u8>);

impl rand_core::RngCore for Scripted {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self
                .0
                .pop_front()
                .expect("the transcript's randomness is used up");
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for Scripted {}

fn field(v: &SpecVector, key: &str) -> Vec<u8> {
    unhex(
        v.field(key)
            .unwrap_or_else(|| panic!("transcript lacks {key}")),
    )
}

fn key32(v: &SpecVector, key: &str) -> [u8; 32] {
    field(v, key).try_into().expect("32 bytes")
}

/// Every transcript of the document (at least one per cipher).
fn transcripts() -> Vec<SpecVector> {
    let all = spec_vectors(SPEC, "transcript");
    for suite in CipherSuite::ALL {
        assert!(
            all.iter().any(|v| cipher(v) == suite),
            "WIRE.md has no {suite} transcript"
        );
    }
    all
}

/// The transcript's `cipher` line (its Noise name).
fn cipher(v: &SpecVector) -> CipherSuite {
    let name = v.field("cipher").expect("transcript lacks cipher");
    CipherSuite::ALL
        .into_iter()
        .find(|s| s.noise_name() == name)
        .unwrap_or_else(|| panic!("unknown cipher {name}"))
}

/// What the implementation computed, to compare with the document.
#[derive(Default)]
struct Computed(Vec<(&'static str, Vec<u8>)>);

impl Computed {
    fn put(&mut self, key: &'static str, value: &[u8]) {
        self.0.push((key, value.to_vec()));
    }

    /// Every computed field against the document; on a difference the
    /// whole block is printed as the implementation sees it.
    fn check(&self, v: &SpecVector) {
        let wrong: Vec<_> = self
            .0
            .iter()
            .filter(|(k, val)| v.field(k).map(unhex).as_deref() != Some(&val[..]))
            .map(|(k, _)| *k)
            .collect();
        if !wrong.is_empty() {
            let mut block = String::new();
            for (k, val) in &self.0 {
                let _ = writeln!(block, "{k}: {}", hex(val));
            }
            panic!("WIRE.md's transcript differs in {wrong:?}; the implementation gives:\n{block}");
        }
    }
}

fn cores(v: &SpecVector, now: Instant) -> (Core, Core) {
    let client_key = Keypair::from_secret_bytes(key32(v, "client_static_private"));
    let server_key = Keypair::from_secret_bytes(key32(v, "server_static_private"));
    let server_pub = *server_key.public();
    let client_cfg = ConnectionConfig::new(
        HandshakeConfig::new(Some(client_key), Arc::new(Pinned(server_pub))).with_cipher(cipher(v)),
    );
    let server_cfg =
        ConnectionConfig::new(HandshakeConfig::new(Some(server_key), Arc::new(AnyPeer)));
    let wall = Duration::from_secs(1_700_000_000);
    let rng = |k| Box::new(Scripted(field(v, k).into()));
    let client = Core::stream(
        &client_cfg,
        StreamSecurity::Plain,
        Role::Client,
        now,
        wall,
        rng("client_ephemeral_private"),
    )
    .unwrap();
    let server = Core::stream(
        &server_cfg,
        StreamSecurity::Plain,
        Role::Server,
        now,
        wall,
        rng("server_ephemeral_private"),
    )
    .unwrap();
    (client, server)
}

/// Feeds `bytes` to `core` and returns the next application frame's kind,
/// stream and payload, if one arrives.
fn feed(core: &mut Core, now: Instant, bytes: &[u8]) -> Option<(FrameKind, u64, Vec<u8>)> {
    let mut input = BytesMut::from(bytes);
    loop {
        match core.poll_event(now).unwrap() {
            Some(Event::Frame(f)) => return Some((f.kind, f.stream_id, f.payload.to_vec())),
            Some(_) => continue,
            None => {}
        }
        if !core.handle_input(now, &mut input).unwrap() {
            assert!(input.is_empty(), "bytes left unread");
            return None;
        }
    }
}

fn transmit(core: &mut Core, now: Instant) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(core.poll_transmit(now, &mut out).unwrap());
    out
}

/// Runs the transcript's exchange between two cores. Each side is fed
/// either what the other core sent or, with `from_document`, the
/// document's bytes; returns what the cores sent and computed.
fn exchange(v: &SpecVector, from_document: bool) -> Computed {
    let now = Instant::now();
    let (mut client, mut server) = cores(v, now);
    let mut got = Computed::default();
    let pick = |k: &str, sent: &[u8]| {
        if from_document {
            field(v, k)
        } else {
            sent.to_vec()
        }
    };
    let sent = transmit(&mut client, now);
    got.put("client_message_1", &sent);
    assert!(feed(&mut server, now, &pick("client_message_1", &sent)).is_none());
    let sent = transmit(&mut server, now);
    got.put("server_message_2", &sent);
    assert!(feed(&mut client, now, &pick("server_message_2", &sent)).is_none());
    assert!(client.is_established());
    // Message 3 leaves together with the first record.
    let echo_hello = field(v, "request_message");
    client.send_data(now, 1, &echo_hello).unwrap();
    let sent = transmit(&mut client, now);
    let (message_3, record) = sent.split_at(sent.len() - (10 + echo_hello.len() + 4 + 16));
    got.put("client_message_3", message_3);
    got.put("client_record_1", record);
    let input = [
        pick("client_message_3", message_3),
        pick("client_record_1", record),
    ]
    .concat();
    let request = feed(&mut server, now, &input);
    assert_eq!(request, Some((FrameKind::Data, 1, echo_hello.clone())));
    server.send_data(now, 1, &echo_hello).unwrap();
    let sent = transmit(&mut server, now);
    got.put("server_record_1", &sent);
    let reply = feed(&mut client, now, &pick("server_record_1", &sent));
    assert_eq!(reply, Some((FrameKind::Data, 1, echo_hello)));
    let hash = client.info().unwrap().handshake_hash.unwrap();
    assert_eq!(Some(hash), server.info().unwrap().handshake_hash);
    got.put("handshake_hash", &hash);
    got
}

/// Given the transcript's keys, the connection core sends exactly the
/// document's bytes.
#[test]
fn the_core_sends_the_transcript_in_wire_md() {
    for v in &transcripts() {
        exchange(v, false).check(v);
    }
}

/// Each core accepts the document's bytes from its peer (and, as the
/// exchange goes on, answers with the document's bytes again).
#[test]
fn the_core_accepts_the_transcript_in_wire_md() {
    for v in &transcripts() {
        exchange(v, true).check(v);
    }
}

/// snow, as the responder, with the transcript's server keys: the same
/// Noise messages, payloads, hash and session keys.
#[test]
fn an_independent_noise_implementation_agrees_with_the_transcript() {
    for v in &transcripts() {
        snow_agrees(v);
    }
}

fn snow_agrees(v: &SpecVector) {
    let client_public = Keypair::from_secret_bytes(key32(v, "client_static_private"));
    let server_public = Keypair::from_secret_bytes(key32(v, "server_static_private"));
    let mut got = Computed::default();
    got.put("client_static_public", client_public.public().as_bytes());
    got.put("server_static_public", server_public.public().as_bytes());
    let prologue = field(v, "prologue");
    let server_ephemeral = field(v, "server_ephemeral_private");
    let name = Pattern::XX.protocol_name(cipher(v));
    let mut responder = snow::Builder::new(name.parse().unwrap())
        .prologue(&prologue)
        .unwrap()
        .local_private_key(&field(v, "server_static_private"))
        .unwrap()
        .fixed_ephemeral_key_for_testing_only(&server_ephemeral)
        .build_responder()
        .unwrap();
    let noise = |packet: &str| field(v, packet)[NOISE_AT..].to_vec();
    let mut buf = vec![0u8; 65_535];
    let n = responder
        .read_message(&noise("client_message_1"), &mut buf)
        .unwrap();
    got.put("message_1_payload", &buf[..n]);
    let n = responder
        .write_message(&field(v, "message_2_payload"), &mut buf)
        .unwrap();
    assert_eq!(&buf[..n], &noise("server_message_2")[..], "message 2");
    let n = responder
        .read_message(&noise("client_message_3"), &mut buf)
        .unwrap();
    got.put("message_3_payload", &buf[..n]);
    assert_eq!(
        responder.get_remote_static(),
        Some(&client_public.public().as_bytes()[..])
    );
    got.put("handshake_hash", responder.get_handshake_hash());
    let (client_to_server, server_to_client) = responder.dangerously_get_raw_split();
    got.put("client_to_server_key", &client_to_server);
    got.put("server_to_client_key", &server_to_client);
    got.check(v);
}

/// ChaCha20-Poly1305 (RustCrypto's, not the ring code the core runs) or
/// AES-256-GCM opens each record with the direction's key, nonce = 4 zero
/// bytes and the counter as u64 (0 for the first record), and the 10-byte
/// header as associated data.
#[test]
fn the_records_open_with_the_transcript_keys_as_wire_md_describes() {
    for v in &transcripts() {
        records_open(v);
    }
}

fn records_open(v: &SpecVector) {
    let mut got = Computed::default();
    for (record, key) in [
        ("client_record_1", "client_to_server_key"),
        ("server_record_1", "server_to_client_key"),
    ] {
        let packet = field(v, record);
        let (header, sealed) = packet.split_at(10);
        assert_eq!(&header[..6], &[0x4e, 0x50, 0x52, 0x4f, 0x01, 0x04]);
        let nonce = [0u8; 12];
        let payload = Payload {
            msg: sealed,
            aad: header,
        };
        let key = field(v, key);
        let plain = match cipher(v) {
            CipherSuite::AesGcm => Aes256Gcm::new_from_slice(&key)
                .unwrap()
                .decrypt((&nonce).into(), payload),
            _ => ChaCha20Poly1305::new_from_slice(&key)
                .unwrap()
                .decrypt((&nonce).into(), payload),
        }
        .unwrap_or_else(|_| panic!("{record} does not open"));
        got.put(
            if record == "client_record_1" {
                "client_record_1_plaintext"
            } else {
                "server_record_1_plaintext"
            },
            &plain,
        );
    }
    got.check(v);
}
