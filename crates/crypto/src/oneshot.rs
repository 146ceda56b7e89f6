//! `network-protocol`'s stand-alone helpers, kept for users who call them.
//!
//! These are **single-message utilities**: XChaCha20-Poly1305 with a random
//! 192-bit nonce per message, safe to use with one key for very many messages
//! because random 24-byte nonces do not collide in practice. They are not the
//! session cipher: they have no ordering, no replay protection and no key
//! agreement. Use [`crate::Session`] for connections.
//!
//! Format of [`encrypt`]'s output: `nonce (24) | ciphertext | tag (16)`.

use alloc::vec;
use alloc::vec::Vec;
use rand_core::{CryptoRng, RngCore};

use crate::error::{CryptoError, Result};
use crate::primitives::{xchacha_open, xchacha_seal, KEY_LEN, TAG_LEN};

const NONCE_LEN: usize = 24;

/// `len` bytes from a cryptographically secure generator.
pub fn generate_random_bytes<R: RngCore + CryptoRng>(rng: &mut R, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// Encrypts one message under `key` with a fresh random nonce.
///
/// # Errors
/// [`CryptoError::TooLong`] for inputs beyond the AEAD's limit (256 GiB).
pub fn encrypt<R: RngCore + CryptoRng>(
    rng: &mut R,
    key: &[u8; KEY_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = xchacha_seal(key, &nonce, &[], &mut out[NONCE_LEN..])?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Decrypts the output of [`encrypt`].
///
/// # Errors
/// [`CryptoError::Decrypt`] for anything that does not authenticate.
pub fn decrypt(key: &[u8; KEY_LEN], data: &[u8]) -> Result<Vec<u8>> {
    if data.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Decrypt);
    }
    let (nonce, rest) = data.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(nonce);
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(tag);
    let mut out = ct.to_vec();
    xchacha_open(key, &n, &[], &mut out, &t)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_tamper() {
        let mut rng = rand::rngs::OsRng;
        let key = [3u8; 32];
        let a = encrypt(&mut rng, &key, b"hello").unwrap();
        let b = encrypt(&mut rng, &key, b"hello").unwrap();
        assert_ne!(a, b, "fresh nonce per message");
        assert_eq!(decrypt(&key, &a).unwrap(), b"hello");
        let mut bad = a.clone();
        bad[30] ^= 1;
        assert_eq!(decrypt(&key, &bad), Err(CryptoError::Decrypt));
        assert_eq!(decrypt(&key, &a[..20]), Err(CryptoError::Decrypt));
        assert_eq!(generate_random_bytes(&mut rng, 17).len(), 17);
    }
}
