//! Thin wrappers over the chosen primitive crates, exactly as the handshake and
//! sessions call them. The Wycheproof tests at the bottom run through these
//! same functions.

use aes_gcm::Aes256Gcm;
use chacha20poly1305::aead::generic_array::typenum::Unsigned;
use chacha20poly1305::aead::generic_array::GenericArray;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey as DalekPublic, StaticSecret};
use zeroize::Zeroizing;

use crate::cipher::CipherSuite;
use crate::error::{CryptoError, Result};

/// Length of an X25519 key or shared secret.
pub const DH_LEN: usize = 32;
/// Length of a SHA-256 output.
pub const HASH_LEN: usize = 32;
/// Length of an AEAD key (ChaCha20-Poly1305 and AES-256-GCM alike).
pub const KEY_LEN: usize = 32;
/// Length of an AEAD tag (Poly1305 or GHASH).
pub const TAG_LEN: usize = 16;
/// Longest Noise message, tag included (Noise §3).
pub const MAX_MESSAGE_LEN: usize = 65535;

/// X25519 with the all-zero (low-order point) result refused.
pub(crate) fn dh(secret: &StaticSecret, public: &[u8; DH_LEN]) -> Result<Zeroizing<[u8; DH_LEN]>> {
    let shared = secret.diffie_hellman(&DalekPublic::from(*public));
    if !shared.was_contributory() {
        return Err(CryptoError::LowOrderPoint);
    }
    Ok(Zeroizing::new(*shared.as_bytes()))
}

/// AEAD seal in place with an explicit 12-byte nonce; returns the tag.
/// With the `ring` feature, through ring's assembly implementations;
/// otherwise RustCrypto's portable ones. Same ciphers, same bytes.
pub(crate) fn aead_seal(
    suite: CipherSuite,
    key: &[u8; KEY_LEN],
    nonce: &[u8; 12],
    ad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN]> {
    #[cfg(feature = "ring")]
    return ring_backend::seal(suite, key, nonce, ad, buf);
    #[cfg(not(feature = "ring"))]
    return portable::seal(suite, key, nonce, ad, buf);
}

/// AEAD open in place with an explicit 12-byte nonce.
pub(crate) fn aead_open(
    suite: CipherSuite,
    key: &[u8; KEY_LEN],
    nonce: &[u8; 12],
    ad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<()> {
    #[cfg(feature = "ring")]
    return ring_backend::open(suite, key, nonce, ad, buf, tag);
    #[cfg(not(feature = "ring"))]
    return portable::open(suite, key, nonce, ad, buf, tag);
}

/// Seal in place with any RustCrypto AEAD of this crate (ChaCha20-Poly1305,
/// AES-256-GCM, XChaCha20-Poly1305): a 32-byte key, a nonce of the cipher's
/// size, a 16-byte tag. Sizes are checked, never assumed (no panic path).
fn rustcrypto_seal<C: KeyInit + AeadInPlace>(
    key: &[u8; KEY_LEN],
    nonce: &[u8],
    ad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN]> {
    if nonce.len() != C::NonceSize::USIZE {
        return Err(CryptoError::Decrypt);
    }
    let cipher = C::new_from_slice(key).map_err(|_| CryptoError::Decrypt)?;
    let tag = cipher
        .encrypt_in_place_detached(GenericArray::from_slice(nonce), ad, buf)
        .map_err(|_| CryptoError::TooLong { len: buf.len() })?;
    let mut out = [0u8; TAG_LEN];
    let n = tag.len().min(TAG_LEN);
    out[..n].copy_from_slice(&tag[..n]);
    Ok(out)
}

/// Open in place with any RustCrypto AEAD of this crate; the tag is checked
/// before anything is decrypted.
fn rustcrypto_open<C: KeyInit + AeadInPlace>(
    key: &[u8; KEY_LEN],
    nonce: &[u8],
    ad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<()> {
    if nonce.len() != C::NonceSize::USIZE || tag.len() != C::TagSize::USIZE {
        return Err(CryptoError::Decrypt);
    }
    let cipher = C::new_from_slice(key).map_err(|_| CryptoError::Decrypt)?;
    cipher
        .decrypt_in_place_detached(
            GenericArray::from_slice(nonce),
            ad,
            buf,
            GenericArray::from_slice(tag),
        )
        .map_err(|_| CryptoError::Decrypt)
}

/// RustCrypto's ChaCha20-Poly1305 and AES-256-GCM (`no_std`, portable; the
/// `aes` crate picks AES-NI at run time where the CPU has it). Kept, and
/// tested, with the `ring` feature too: the `no_std` build uses it.
#[cfg_attr(feature = "ring", allow(dead_code))]
pub(crate) mod portable {
    use super::{
        rustcrypto_open, rustcrypto_seal, Aes256Gcm, ChaCha20Poly1305, CipherSuite, Result,
        KEY_LEN, TAG_LEN,
    };

    pub(crate) fn seal(
        suite: CipherSuite,
        key: &[u8; KEY_LEN],
        nonce: &[u8; 12],
        ad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        match suite {
            CipherSuite::ChaChaPoly => rustcrypto_seal::<ChaCha20Poly1305>(key, nonce, ad, buf),
            CipherSuite::AesGcm => rustcrypto_seal::<Aes256Gcm>(key, nonce, ad, buf),
        }
    }

    pub(crate) fn open(
        suite: CipherSuite,
        key: &[u8; KEY_LEN],
        nonce: &[u8; 12],
        ad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<()> {
        match suite {
            CipherSuite::ChaChaPoly => {
                rustcrypto_open::<ChaCha20Poly1305>(key, nonce, ad, buf, tag)
            }
            CipherSuite::AesGcm => rustcrypto_open::<Aes256Gcm>(key, nonce, ad, buf, tag),
        }
    }
}

/// ring's ChaCha20-Poly1305 and AES-256-GCM (assembly; the implementations
/// rustls uses).
#[cfg(feature = "ring")]
pub(crate) mod ring_backend {
    use super::{CipherSuite, CryptoError, Result, KEY_LEN, TAG_LEN};
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, CHACHA20_POLY1305};

    // The key is set up per record rather than kept: the raw bytes stay in
    // `Zeroizing` storage (ring's expanded keys are not wiped on drop), and
    // setting one up costs little next to a record (AES-256 key schedule
    // and GHASH table: well under 1 µs; a 64 KiB record takes ~10-20 µs).
    fn key(suite: CipherSuite, k: &[u8; KEY_LEN]) -> Result<LessSafeKey> {
        let alg = match suite {
            CipherSuite::ChaChaPoly => &CHACHA20_POLY1305,
            CipherSuite::AesGcm => &AES_256_GCM,
        };
        UnboundKey::new(alg, k)
            .map(LessSafeKey::new)
            .map_err(|_| CryptoError::Decrypt)
    }

    pub(crate) fn seal(
        suite: CipherSuite,
        k: &[u8; KEY_LEN],
        nonce: &[u8; 12],
        ad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        let tag = key(suite, k)?
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(ad), buf)
            .map_err(|_| CryptoError::TooLong { len: buf.len() })?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    pub(crate) fn open(
        suite: CipherSuite,
        k: &[u8; KEY_LEN],
        nonce: &[u8; 12],
        ad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<()> {
        let tag = ring::aead::Tag::from(*tag);
        key(suite, k)?
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(ad),
                tag,
                buf,
                0..,
            )
            .map(|_| ())
            .map_err(|_| CryptoError::Decrypt)
    }
}

/// XChaCha20-Poly1305 seal in place with a 24-byte nonce.
pub(crate) fn xchacha_seal(
    key: &[u8; KEY_LEN],
    nonce: &[u8; 24],
    ad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN]> {
    rustcrypto_seal::<XChaCha20Poly1305>(key, nonce, ad, buf)
}

/// XChaCha20-Poly1305 open in place with a 24-byte nonce.
pub(crate) fn xchacha_open(
    key: &[u8; KEY_LEN],
    nonce: &[u8; 24],
    ad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<()> {
    rustcrypto_open::<XChaCha20Poly1305>(key, nonce, ad, buf, tag)
}

/// SHA-256 over the concatenation of `parts`.
pub(crate) fn hash(parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// RFC 5869 HKDF-SHA-256. `out` longer than 255 × 32 bytes is refused.
pub(crate) fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) -> Result<()> {
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, out)
        .map_err(|_| CryptoError::TooLong { len: out.len() })
}

/// Noise's HKDF with two outputs: salt = chaining key, empty info (Noise §4.3).
pub(crate) fn hkdf2(
    ck: &[u8; HASH_LEN],
    ikm: &[u8],
) -> (Zeroizing<[u8; HASH_LEN]>, Zeroizing<[u8; HASH_LEN]>) {
    let mut okm = Zeroizing::new([0u8; 2 * HASH_LEN]);
    // 64 bytes is far below HKDF's 8160-byte limit, so this cannot fail.
    let _ = hkdf_sha256(ck, ikm, &[], &mut okm[..]);
    let mut a = Zeroizing::new([0u8; HASH_LEN]);
    let mut b = Zeroizing::new([0u8; HASH_LEN]);
    a.copy_from_slice(&okm[..HASH_LEN]);
    b.copy_from_slice(&okm[HASH_LEN..]);
    (a, b)
}

#[cfg(test)]
mod wycheproof_tests {
    //! Google's Wycheproof vectors through the wrappers above.
    use super::*;
    use alloc::vec::Vec;
    use wycheproof::TestResult;

    #[test]
    fn chacha20poly1305() {
        let name = wycheproof::aead::TestName::ChaCha20Poly1305;
        check_aead(
            name,
            CipherSuite::ChaChaPoly,
            portable::seal,
            portable::open,
        );
        #[cfg(feature = "ring")]
        check_aead(
            name,
            CipherSuite::ChaChaPoly,
            ring_backend::seal,
            ring_backend::open,
        );
    }

    #[test]
    fn aes_256_gcm() {
        let name = wycheproof::aead::TestName::AesGcm;
        check_aead(name, CipherSuite::AesGcm, portable::seal, portable::open);
        #[cfg(feature = "ring")]
        check_aead(
            name,
            CipherSuite::AesGcm,
            ring_backend::seal,
            ring_backend::open,
        );
    }

    type Seal = fn(CipherSuite, &[u8; 32], &[u8; 12], &[u8], &mut [u8]) -> Result<[u8; 16]>;
    type Open = fn(CipherSuite, &[u8; 32], &[u8; 12], &[u8], &mut [u8], &[u8; 16]) -> Result<()>;

    /// Every Wycheproof vector of one AEAD with a 256-bit key, a 96-bit
    /// nonce and a 128-bit tag (the only sizes Noise uses) through one
    /// backend.
    fn check_aead(name: wycheproof::aead::TestName, suite: CipherSuite, seal: Seal, open: Open) {
        let set = wycheproof::aead::TestSet::load(name).unwrap();
        let mut checked = 0;
        for group in set.test_groups {
            for t in group.tests {
                let (Ok(key), Ok(nonce), Ok(tag)) = (
                    <[u8; 32]>::try_from(&t.key[..]),
                    <[u8; 12]>::try_from(&t.nonce[..]),
                    <[u8; 16]>::try_from(&t.tag[..]),
                ) else {
                    // Other sizes cannot be expressed through these
                    // wrappers: invalid for ChaCha20-Poly1305; AES-128/192
                    // and other nonce or tag sizes for AES-GCM.
                    if suite == CipherSuite::ChaChaPoly {
                        assert_eq!(t.result, TestResult::Invalid, "tc {}", t.tc_id);
                    }
                    continue;
                };
                let mut buf: Vec<u8> = t.ct.to_vec();
                let opened = open(suite, &key, &nonce, &t.aad, &mut buf, &tag);
                if t.result.must_fail() {
                    assert!(opened.is_err(), "tc {} opened", t.tc_id);
                } else {
                    assert!(opened.is_ok(), "tc {} failed to open", t.tc_id);
                    assert_eq!(&buf[..], &t.pt[..], "tc {}", t.tc_id);
                    let mut sealed: Vec<u8> = t.pt.to_vec();
                    let got = seal(suite, &key, &nonce, &t.aad, &mut sealed).unwrap();
                    assert_eq!(&sealed[..], &t.ct[..], "tc {}", t.tc_id);
                    assert_eq!(got, tag, "tc {}", t.tc_id);
                }
                checked += 1;
            }
        }
        assert!(checked > 50, "only {checked} vectors");
    }

    /// The two backends produce the same bytes for random inputs (and each
    /// opens the other's records).
    #[cfg(feature = "ring")]
    #[test]
    fn backends_agree() {
        use alloc::vec;
        use alloc::vec::Vec;
        use rand::{Rng, RngCore};
        let mut rng = rand::thread_rng();
        let sizes = [0usize, 1, 15, 16, 32, 63, 64, 65, 255, 1024, 16_383, 65_519];
        for (round, (len, suite)) in sizes
            .into_iter()
            .flat_map(|len| CipherSuite::ALL.map(|suite| (len, suite)))
            .enumerate()
        {
            let (mut key, mut nonce) = ([0u8; 32], [0u8; 12]);
            rng.fill_bytes(&mut key);
            rng.fill_bytes(&mut nonce);
            if round % 4 < 2 {
                // The REKEY nonce, 2^64 - 1.
                nonce = suite.nonce(u64::MAX);
            }
            let ad: Vec<u8> = (0..rng.gen_range(0..40)).map(|_| rng.gen()).collect();
            let mut plain = vec![0u8; len];
            rng.fill_bytes(&mut plain);
            let (mut a, mut b) = (plain.clone(), plain.clone());
            let ta = portable::seal(suite, &key, &nonce, &ad, &mut a).unwrap();
            let tb = ring_backend::seal(suite, &key, &nonce, &ad, &mut b).unwrap();
            assert_eq!(a, b, "{suite:?} len {len}");
            assert_eq!(ta, tb, "{suite:?} len {len}");
            ring_backend::open(suite, &key, &nonce, &ad, &mut a, &ta).unwrap();
            portable::open(suite, &key, &nonce, &ad, &mut b, &tb).unwrap();
            assert_eq!(a, plain);
            assert_eq!(b, plain);
        }
    }

    #[test]
    fn xchacha20poly1305() {
        let set =
            wycheproof::aead::TestSet::load(wycheproof::aead::TestName::XChaCha20Poly1305).unwrap();
        let mut checked = 0;
        for group in set.test_groups {
            for t in group.tests {
                let (Ok(key), Ok(nonce), Ok(tag)) = (
                    <[u8; 32]>::try_from(&t.key[..]),
                    <[u8; 24]>::try_from(&t.nonce[..]),
                    <[u8; 16]>::try_from(&t.tag[..]),
                ) else {
                    assert_eq!(t.result, TestResult::Invalid, "tc {}", t.tc_id);
                    continue;
                };
                let mut buf: Vec<u8> = t.ct.to_vec();
                let opened = xchacha_open(&key, &nonce, &t.aad, &mut buf, &tag);
                if t.result.must_fail() {
                    assert!(opened.is_err(), "tc {} opened", t.tc_id);
                } else {
                    assert!(opened.is_ok(), "tc {}", t.tc_id);
                    assert_eq!(&buf[..], &t.pt[..]);
                    let mut sealed: Vec<u8> = t.pt.to_vec();
                    assert_eq!(
                        xchacha_seal(&key, &nonce, &t.aad, &mut sealed).unwrap(),
                        tag
                    );
                    assert_eq!(&sealed[..], &t.ct[..]);
                }
                checked += 1;
            }
        }
        assert!(checked > 250, "only {checked} vectors");
    }

    #[test]
    fn x25519() {
        let set = wycheproof::xdh::TestSet::load(wycheproof::xdh::TestName::X25519).unwrap();
        let (mut checked, mut zero_shared) = (0, 0);
        for group in set.test_groups {
            for t in group.tests {
                let (Ok(private), Ok(public)) = (
                    <[u8; 32]>::try_from(&t.private_key[..]),
                    <[u8; 32]>::try_from(&t.public_key[..]),
                ) else {
                    assert!(t.result.must_fail(), "tc {}", t.tc_id);
                    continue;
                };
                let got = dh(&StaticSecret::from(private), &public);
                let all_zero = t.shared_secret.iter().all(|b| *b == 0);
                if all_zero {
                    // The handshake refuses every exchange that gives the
                    // all-zero secret, whatever Wycheproof calls it.
                    assert_eq!(got, Err(CryptoError::LowOrderPoint), "tc {}", t.tc_id);
                    zero_shared += 1;
                } else if t.result.must_fail() {
                    assert!(got.is_err(), "tc {}", t.tc_id);
                } else {
                    assert_eq!(&got.unwrap()[..], &t.shared_secret[..], "tc {}", t.tc_id);
                }
                checked += 1;
            }
        }
        assert!(checked > 400, "only {checked} vectors");
        assert!(
            zero_shared >= 31,
            "only {zero_shared} zero-shared-secret cases"
        );
    }

    #[test]
    fn hkdf() {
        let set = wycheproof::hkdf::TestSet::load(wycheproof::hkdf::TestName::HkdfSha256).unwrap();
        let mut checked = 0;
        for group in set.test_groups {
            for t in group.tests {
                let mut out = alloc::vec![0u8; t.size];
                let got = hkdf_sha256(&t.salt, &t.ikm, &t.info, &mut out);
                if t.result.must_fail() {
                    assert!(got.is_err(), "tc {}", t.tc_id);
                } else {
                    assert!(got.is_ok(), "tc {}", t.tc_id);
                    assert_eq!(&out[..], &t.okm[..], "tc {}", t.tc_id);
                }
                checked += 1;
            }
        }
        assert!(checked > 50, "only {checked} vectors");
    }
}
