//! netproto-crypto next to `snow` in the same run: the full XX handshake
//! (both sides, in memory), record seal+open at several sizes, and the two
//! AEADs alone through the portable backend.
//!
//! Run with `cargo xtask criterion` (or `cargo bench -p netproto-benches --bench crypto`).

// Benchmark inputs are built here, not received: a failure is a bug to see at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// criterion_group! generates undocumented items.
#![allow(missing_docs)]
#![allow(clippy::many_single_char_names)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use netproto_crypto::noise::{HandshakeState, Pattern};
use netproto_crypto::{
    AnyPeer, CipherSuite, Handshake, HandshakeConfig, Keypair, Mode, RekeyPolicy, Session,
};
use rand::rngs::OsRng;
use zeroize::Zeroizing;

const XX: &str = "Noise_XX_25519_ChaChaPoly_SHA256";

fn secret(k: &Keypair) -> Vec<u8> {
    use base64::Engine as _;
    let text = k.to_key_file();
    base64::engine::general_purpose::STANDARD
        .decode(text.lines().nth(1).unwrap())
        .unwrap()
}

fn handshakes(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake_xx");
    let (ik, rk) = (Keypair::generate(&mut OsRng), Keypair::generate(&mut OsRng));
    let (is, rs) = (secret(&ik), secret(&rk));

    g.bench_function("snow", |b| {
        let mut buf = vec![0u8; 1024];
        let mut pl = vec![0u8; 1024];
        b.iter(|| {
            let mut i = snow::Builder::new(XX.parse().unwrap())
                .local_private_key(&is)
                .unwrap()
                .build_initiator()
                .unwrap();
            let mut r = snow::Builder::new(XX.parse().unwrap())
                .local_private_key(&rs)
                .unwrap()
                .build_responder()
                .unwrap();
            let n = i.write_message(&[], &mut buf).unwrap();
            r.read_message(&buf[..n], &mut pl).unwrap();
            let n = r.write_message(&[], &mut buf).unwrap();
            i.read_message(&buf[..n], &mut pl).unwrap();
            let n = i.write_message(&[], &mut buf).unwrap();
            r.read_message(&buf[..n], &mut pl).unwrap();
            black_box((
                i.into_transport_mode().unwrap(),
                r.into_transport_mode().unwrap(),
            ))
        });
    });

    g.bench_function("netproto_noise", |b| {
        let mut msg = Vec::with_capacity(256);
        let mut pl = Vec::with_capacity(256);
        b.iter(|| {
            let mut i = HandshakeState::new(
                Pattern::XX,
                CipherSuite::ChaChaPoly,
                true,
                &[],
                Some(ik.clone()),
                None,
            )
            .unwrap();
            let mut r = HandshakeState::new(
                Pattern::XX,
                CipherSuite::ChaChaPoly,
                false,
                &[],
                Some(rk.clone()),
                None,
            )
            .unwrap();
            for step in 0..3 {
                msg.clear();
                pl.clear();
                let (w, rd) = if step % 2 == 0 {
                    (&mut i, &mut r)
                } else {
                    (&mut r, &mut i)
                };
                w.write_message(&mut OsRng, &[], &mut msg).unwrap();
                rd.read_message(&msg, &mut pl).unwrap();
            }
            black_box((i.into_transport().unwrap(), r.into_transport().unwrap()))
        });
    });

    // The full netproto handshake: prologue, capabilities, padding, verifier.
    g.bench_function("netproto_handshake", |b| {
        let verifier = Arc::new(AnyPeer);
        let mut msg = Vec::with_capacity(256);
        b.iter(|| {
            let mut i =
                Handshake::initiator(HandshakeConfig::new(Some(ik.clone()), verifier.clone()))
                    .unwrap();
            let mut r =
                Handshake::responder(HandshakeConfig::new(Some(rk.clone()), verifier.clone()))
                    .unwrap();
            for step in 0..3 {
                msg.clear();
                let (w, rd) = if step % 2 == 0 {
                    (&mut i, &mut r)
                } else {
                    (&mut r, &mut i)
                };
                w.write_message(&mut OsRng, Duration::ZERO, &mut msg)
                    .unwrap();
                rd.read_message(&msg, None).unwrap();
            }
            black_box((i.finish().unwrap(), r.finish().unwrap()))
        });
    });
    g.finish();
}

fn snow_pair() -> (snow::TransportState, snow::TransportState) {
    let mut i = snow::Builder::new(XX.parse().unwrap())
        .local_private_key(&secret(&Keypair::generate(&mut OsRng)))
        .unwrap()
        .build_initiator()
        .unwrap();
    let mut r = snow::Builder::new(XX.parse().unwrap())
        .local_private_key(&secret(&Keypair::generate(&mut OsRng)))
        .unwrap()
        .build_responder()
        .unwrap();
    let (mut buf, mut pl) = (vec![0u8; 1024], vec![0u8; 1024]);
    let n = i.write_message(&[], &mut buf).unwrap();
    r.read_message(&buf[..n], &mut pl).unwrap();
    let n = r.write_message(&[], &mut buf).unwrap();
    i.read_message(&buf[..n], &mut pl).unwrap();
    let n = i.write_message(&[], &mut buf).unwrap();
    r.read_message(&buf[..n], &mut pl).unwrap();
    (
        i.into_transport_mode().unwrap(),
        r.into_transport_mode().unwrap(),
    )
}

fn records(c: &mut Criterion) {
    let mut g = c.benchmark_group("record_seal_open");
    for size in [64usize, 1024, 16 * 1024, 65519] {
        g.throughput(Throughput::Bytes(size as u64));
        let payload = vec![0x5au8; size];

        g.bench_with_input(BenchmarkId::new("snow", size), &payload, |b, p| {
            let (mut tx, mut rx) = snow_pair();
            let mut ct = vec![0u8; 65535];
            let mut pt = vec![0u8; 65535];
            b.iter(|| {
                let n = tx.write_message(black_box(p), &mut ct).unwrap();
                black_box(rx.read_message(&ct[..n], &mut pt).unwrap())
            });
        });

        for suite in CipherSuite::ALL {
            let name = format!("netproto-{}", suite.noise_name().to_ascii_lowercase());
            g.bench_with_input(BenchmarkId::new(name, size), &payload, |b, p| {
                let k1 = Zeroizing::new([1u8; 32]);
                let k2 = Zeroizing::new([2u8; 32]);
                let mut tx = Session::from_keys(
                    suite,
                    k1.clone(),
                    k2.clone(),
                    Mode::Stream,
                    RekeyPolicy::default(),
                    Duration::ZERO,
                );
                let mut rx = Session::from_keys(
                    suite,
                    k2,
                    k1,
                    Mode::Stream,
                    RekeyPolicy::default(),
                    Duration::ZERO,
                );
                let mut buf = Vec::with_capacity(65535);
                let header = [0u8; 10];
                b.iter(|| {
                    // In place on one reusable buffer, as a transport does.
                    buf.clear();
                    buf.extend_from_slice(black_box(p));
                    let r = tx.sender.reserve(Duration::ZERO).unwrap();
                    let phase = r.key_phase();
                    let tag = tx.sender.seal(r, &header, &mut buf).unwrap();
                    buf.extend_from_slice(&tag);
                    black_box(
                        rx.receiver
                            .open(Duration::ZERO, 0, phase, &header, &mut buf)
                            .unwrap(),
                    )
                });
            });
        }
    }
    g.finish();
}

/// The AEADs alone through RustCrypto's portable crates (the `no_std`
/// build's backend). Built with `RUSTFLAGS="--cfg aes_force_soft --cfg
/// polyval_force_soft"` this is what a CPU without AES instructions runs:
/// the figure behind `CipherSuite::preferred()` choosing ChaCha20-Poly1305
/// there (docs/BENCHMARKS.md, "AES-256-GCM" under netproto-crypto).
fn portable_aeads(c: &mut Criterion) {
    use aes_gcm::aead::generic_array::GenericArray;
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use aes_gcm::Aes256Gcm;
    use chacha20poly1305::ChaCha20Poly1305;

    fn seal_open<C: KeyInit + AeadInPlace>(c: &C, buf: &mut Vec<u8>, p: &[u8]) {
        let nonce = GenericArray::default();
        buf.clear();
        buf.extend_from_slice(p);
        let tag = c.encrypt_in_place_detached(&nonce, &[], buf).unwrap();
        c.decrypt_in_place_detached(&nonce, &[], buf, &tag).unwrap();
    }

    let mut g = c.benchmark_group("aead_portable_seal_open");
    for size in [1024usize, 16 * 1024] {
        g.throughput(Throughput::Bytes(size as u64));
        let payload = vec![0x5au8; size];
        let mut buf = Vec::with_capacity(size);
        let aes = Aes256Gcm::new(&[7u8; 32].into());
        g.bench_with_input(BenchmarkId::new("aes256gcm", size), &payload, |b, p| {
            b.iter(|| seal_open(&aes, &mut buf, black_box(p)));
        });
        let chacha = ChaCha20Poly1305::new(&[7u8; 32].into());
        g.bench_with_input(
            BenchmarkId::new("chacha20poly1305", size),
            &payload,
            |b, p| {
                b.iter(|| seal_open(&chacha, &mut buf, black_box(p)));
            },
        );
    }
    g.finish();
}

criterion_group!(benches, handshakes, records, portable_aeads);
criterion_main!(benches);
