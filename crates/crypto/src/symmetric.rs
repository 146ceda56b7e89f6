//! Noise's CipherState and SymmetricState (Noise §5.1, §5.2).

use alloc::vec::Vec;
use zeroize::Zeroizing;

use crate::cipher::CipherSuite;
use crate::error::{CryptoError, Result};
use crate::primitives::{hash, hkdf2, HASH_LEN, KEY_LEN, TAG_LEN};

/// A key, its nonce counter and the cipher function.
pub(crate) struct CipherState {
    suite: CipherSuite,
    k: Option<Zeroizing<[u8; KEY_LEN]>>,
    n: u64,
}

impl CipherState {
    pub(crate) const fn empty(suite: CipherSuite) -> Self {
        Self {
            suite,
            k: None,
            n: 0,
        }
    }

    fn with_key(suite: CipherSuite, k: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Self {
            suite,
            k: Some(k),
            n: 0,
        }
    }

    pub(crate) const fn has_key(&self) -> bool {
        self.k.is_some()
    }

    fn next_nonce(&mut self) -> Result<u64> {
        // 2^64 - 1 is reserved (Noise §5.1).
        if self.n == u64::MAX {
            return Err(CryptoError::NonceExhausted);
        }
        let n = self.n;
        self.n += 1;
        Ok(n)
    }

    /// Appends `plaintext` encrypted (with tag) to `out`, or as is without a key.
    pub(crate) fn encrypt_with_ad(
        &mut self,
        ad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let start = out.len();
        out.extend_from_slice(plaintext);
        if self.k.is_some() {
            let n = self.next_nonce()?;
            let k = self
                .k
                .as_ref()
                .ok_or(CryptoError::MissingKey("cipher key"))?;
            let tag = self.suite.seal(k, n, ad, &mut out[start..])?;
            out.extend_from_slice(&tag);
        }
        Ok(())
    }

    /// Appends the decryption of `ciphertext` to `out`.
    pub(crate) fn decrypt_with_ad(
        &mut self,
        ad: &[u8],
        ciphertext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let Some(k) = &self.k else {
            out.extend_from_slice(ciphertext);
            return Ok(());
        };
        let split = ciphertext
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(CryptoError::Decrypt)?;
        let (ct, tag) = ciphertext.split_at(split);
        let mut tag_arr = [0u8; TAG_LEN];
        tag_arr.copy_from_slice(tag);
        if self.n == u64::MAX {
            return Err(CryptoError::NonceExhausted);
        }
        let start = out.len();
        out.extend_from_slice(ct);
        if let Err(e) = self.suite.open(k, self.n, ad, &mut out[start..], &tag_arr) {
            out.truncate(start);
            return Err(e);
        }
        self.n += 1;
        Ok(())
    }
}

/// Chaining key, handshake hash and the current cipher state.
pub(crate) struct SymmetricState {
    cs: CipherState,
    ck: Zeroizing<[u8; HASH_LEN]>,
    h: [u8; HASH_LEN],
}

impl SymmetricState {
    pub(crate) fn new(protocol_name: &str, suite: CipherSuite) -> Self {
        let name = protocol_name.as_bytes();
        let mut h = [0u8; HASH_LEN];
        if name.len() <= HASH_LEN {
            h[..name.len()].copy_from_slice(name);
        } else {
            h = hash(&[name]);
        }
        Self {
            cs: CipherState::empty(suite),
            ck: Zeroizing::new(h),
            h,
        }
    }

    pub(crate) fn mix_key(&mut self, ikm: &[u8]) {
        let (ck, k) = hkdf2(&self.ck, ikm);
        self.ck = ck;
        self.cs = CipherState::with_key(self.cs.suite, k);
    }

    pub(crate) fn mix_hash(&mut self, data: &[u8]) {
        self.h = hash(&[&self.h, data]);
    }

    pub(crate) const fn has_key(&self) -> bool {
        self.cs.has_key()
    }

    /// The cipher function the handshake was started with.
    pub(crate) const fn suite(&self) -> CipherSuite {
        self.cs.suite
    }

    pub(crate) const fn handshake_hash(&self) -> &[u8; HASH_LEN] {
        &self.h
    }

    pub(crate) fn encrypt_and_hash(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        let h = self.h;
        self.cs.encrypt_with_ad(&h, plaintext, out)?;
        self.h = hash(&[&self.h, out.get(start..).unwrap_or_default()]);
        Ok(())
    }

    pub(crate) fn decrypt_and_hash(&mut self, ciphertext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let h = self.h;
        self.cs.decrypt_with_ad(&h, ciphertext, out)?;
        self.mix_hash(ciphertext);
        Ok(())
    }

    /// The two transport keys: (initiator → responder, responder → initiator).
    pub(crate) fn split(&self) -> (Zeroizing<[u8; KEY_LEN]>, Zeroizing<[u8; KEY_LEN]>) {
        hkdf2(&self.ck, &[])
    }
}
