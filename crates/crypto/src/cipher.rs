//! The Noise cipher functions netproto offers (Noise §12.3, §12.4) and the
//! set a responder accepts.
//!
//! Both are AEADs with a 256-bit key, a 96-bit nonce built from the 64-bit
//! counter and a 128-bit tag; they differ in the nonce's byte order and in
//! speed. ChaCha20-Poly1305 runs at the same speed everywhere; AES-256-GCM
//! is several times faster on a CPU with AES and carry-less multiply
//! instructions and slower without them, which is why the default follows
//! the CPU ([`CipherSuite::preferred`]).

use crate::error::Result;
use crate::primitives::{aead_open, aead_seal, KEY_LEN, TAG_LEN};

/// A Noise cipher function: the `ChaChaPoly` or `AESGCM` of a protocol name
/// such as `Noise_XX_25519_AESGCM_SHA256`.
///
/// The initiator chooses it; the name is hashed into the handshake first
/// thing, so a peer or middlebox that changes the choice makes the
/// handshake fail (no downgrade).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CipherSuite {
    /// ChaCha20-Poly1305 (RFC 8439); nonce `0^32 || LE64(n)`. Fast on every
    /// CPU; the one every netproto peer speaks.
    #[default]
    ChaChaPoly,
    /// AES-256-GCM (NIST SP 800-38D); nonce `0^32 || BE64(n)`.
    AesGcm,
}

impl CipherSuite {
    /// Every suite, ChaChaPoly first.
    pub const ALL: [Self; 2] = [Self::ChaChaPoly, Self::AesGcm];

    /// The name in a Noise protocol name (`"ChaChaPoly"`, `"AESGCM"`).
    pub const fn noise_name(self) -> &'static str {
        match self {
            Self::ChaChaPoly => "ChaChaPoly",
            Self::AesGcm => "AESGCM",
        }
    }

    /// A stable one-byte code (ChaChaPoly 1, AESGCM 2), as carriers name the
    /// initiator's choice on the wire.
    pub const fn code(self) -> u8 {
        match self {
            Self::ChaChaPoly => 1,
            Self::AesGcm => 2,
        }
    }

    /// The suite of a [`CipherSuite::code`].
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::ChaChaPoly),
            2 => Some(Self::AesGcm),
            _ => None,
        }
    }

    /// Parses a configuration name: `chachapoly` (or `chacha20-poly1305`)
    /// and `aesgcm` (or `aes-256-gcm`), in any case.
    pub fn from_config_name(name: &str) -> Option<Self> {
        let n = name.trim();
        if n.eq_ignore_ascii_case("chachapoly") || n.eq_ignore_ascii_case("chacha20-poly1305") {
            Some(Self::ChaChaPoly)
        } else if n.eq_ignore_ascii_case("aesgcm") || n.eq_ignore_ascii_case("aes-256-gcm") {
            Some(Self::AesGcm)
        } else {
            None
        }
    }

    /// The suite this CPU runs faster: AES-256-GCM where AES and carry-less
    /// multiply instructions exist (x86-64 AES-NI + PCLMULQDQ, AArch64
    /// AES + PMULL), ChaCha20-Poly1305 elsewhere. The figures behind it are
    /// in docs/BENCHMARKS.md ("AES-256-GCM" under netproto-crypto, and
    /// "Speed, round 2").
    #[cfg(feature = "std")]
    pub fn preferred() -> Self {
        if hardware_aes() {
            Self::AesGcm
        } else {
            Self::ChaChaPoly
        }
    }

    /// Plaintext bytes one key may seal before it is replaced, whatever
    /// [`crate::RekeyPolicy::after_bytes`] says. AES-GCM: RFC 8446 §5.5
    /// allows 2^24.5 records of 2^14 bytes per key for a 2^-57 margin, that
    /// is 2^38.5 bytes; netproto rekeys at 2^38 (256 GiB — 160 s at
    /// 1.6 GB/s, so the 120 s default usually comes first). ChaCha20-Poly1305
    /// has no such limit below the counter's.
    pub const fn bytes_per_key(self) -> u64 {
        match self {
            Self::ChaChaPoly => u64::MAX,
            Self::AesGcm => 1 << 38,
        }
    }

    /// The 96-bit nonce for counter `n` (Noise §12.3 / §12.4).
    pub(crate) fn nonce(self, n: u64) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        match self {
            Self::ChaChaPoly => nonce[4..].copy_from_slice(&n.to_le_bytes()),
            Self::AesGcm => nonce[4..].copy_from_slice(&n.to_be_bytes()),
        }
        nonce
    }

    /// Noise `ENCRYPT(k, n, ad, buf)` in place; returns the tag.
    pub(crate) fn seal(
        self,
        key: &[u8; KEY_LEN],
        n: u64,
        ad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        aead_seal(self, key, &self.nonce(n), ad, buf)
    }

    /// Noise `DECRYPT(k, n, ad, buf)` in place, the tag given apart.
    pub(crate) fn open(
        self,
        key: &[u8; KEY_LEN],
        n: u64,
        ad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<()> {
        aead_open(self, key, &self.nonce(n), ad, buf, tag)
    }

    const fn bit(self) -> u8 {
        1 << (self.code() - 1)
    }
}

impl core::fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.noise_name())
    }
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn hardware_aes() -> bool {
    std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(all(feature = "std", target_arch = "aarch64"))]
fn hardware_aes() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull")
}

#[cfg(all(
    feature = "std",
    not(any(target_arch = "x86_64", target_arch = "aarch64"))
))]
fn hardware_aes() -> bool {
    false
}

/// The suites a responder accepts (all by default).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CipherSet(u8);

impl CipherSet {
    /// Every suite.
    pub const ALL: Self = Self(0b11);

    /// Just one suite.
    pub const fn only(suite: CipherSuite) -> Self {
        Self(suite.bit())
    }

    /// This set with `suite` added.
    #[must_use]
    pub const fn with(self, suite: CipherSuite) -> Self {
        Self(self.0 | suite.bit())
    }

    /// Whether `suite` is in the set.
    pub const fn contains(self, suite: CipherSuite) -> bool {
        self.0 & suite.bit() != 0
    }

    /// Whether the set holds no suite (a responder with it accepts nobody).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The suites in the set, ChaChaPoly first.
    pub fn iter(self) -> impl Iterator<Item = CipherSuite> {
        CipherSuite::ALL
            .into_iter()
            .filter(move |s| self.contains(*s))
    }
}

impl Default for CipherSet {
    fn default() -> Self {
        Self::ALL
    }
}

impl FromIterator<CipherSuite> for CipherSet {
    fn from_iter<I: IntoIterator<Item = CipherSuite>>(iter: I) -> Self {
        iter.into_iter().fold(Self(0), Self::with)
    }
}

impl core::fmt::Debug for CipherSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_follow_noise_12_3_and_12_4() {
        let n = 0x0102_0304_0506_0708;
        assert_eq!(
            CipherSuite::ChaChaPoly.nonce(n),
            [0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]
        );
        assert_eq!(
            CipherSuite::AesGcm.nonce(n),
            [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn sets_and_names() {
        let set: CipherSet = [CipherSuite::AesGcm].into_iter().collect();
        assert!(set.contains(CipherSuite::AesGcm));
        assert!(!set.contains(CipherSuite::ChaChaPoly));
        assert_eq!(set, CipherSet::only(CipherSuite::AesGcm));
        assert!(CipherSet::ALL.contains(CipherSuite::ChaChaPoly));
        assert!(core::iter::empty::<CipherSuite>()
            .collect::<CipherSet>()
            .is_empty());
        for suite in CipherSuite::ALL {
            let lower = suite.noise_name().to_ascii_lowercase();
            assert_eq!(CipherSuite::from_config_name(&lower), Some(suite));
        }
        assert_eq!(
            CipherSuite::from_config_name("AES-256-GCM"),
            Some(CipherSuite::AesGcm)
        );
        assert_eq!(CipherSuite::from_config_name("aes128"), None);
    }
}
