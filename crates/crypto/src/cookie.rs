//! The datagram handshake's denial-of-service defence: WireGuard's mac1,
//! mac2 and cookie reply, with this suite's SHA-256 instead of BLAKE2s.
//!
//! * `mac1 = HMAC-SHA-256(key = SHA-256("mac1----" ‖ responder static), initiation)[..16]`:
//!   a datagram from someone who does not know the responder's public key is
//!   dropped before any Diffie-Hellman work.
//! * `cookie = HMAC-SHA-256(secret, source address)[..16]` with a secret the
//!   responder replaces every 120 s; under load the responder answers an
//!   initiation without a valid `mac2 = HMAC-SHA-256(cookie, initiation ‖ mac1)[..16]`
//!   with the cookie sealed by XChaCha20-Poly1305 under
//!   `SHA-256("cookie--" ‖ responder static)`, the initiation's mac1 as
//!   associated data. Only a sender that receives at its source address can
//!   answer, so spoofed floods cost the responder one HMAC each.
//!
//! An initiator that does not know the responder's key (XX with
//! trust-on-first-use) uses 32 zero bytes in its place; a responder accepts
//! such initiations only if configured to (docs/WIRE.md).
//!
//! ```
//! use netproto_crypto::cookie::{mac, CookieKeys, MAC_LEN};
//! let keys = CookieKeys::for_responder(None);
//! let m = mac(&keys.mac1, &[b"initiation".as_slice()]);
//! assert_eq!(m.len(), MAC_LEN);
//! ```

use hkdf::hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{CryptoError, Result};
use crate::keys::PublicKey;
use crate::primitives::{hash, xchacha_open, xchacha_seal, DH_LEN, HASH_LEN, TAG_LEN};

/// Length of mac1, mac2 and a cookie.
pub const MAC_LEN: usize = 16;
/// Length of the XChaCha20 nonce of a cookie reply.
pub const COOKIE_NONCE_LEN: usize = 24;
/// Length of a sealed cookie: the cookie and its tag.
pub const SEALED_COOKIE_LEN: usize = MAC_LEN + TAG_LEN;

/// The two keys derived from the responder's static key.
#[derive(Clone)]
pub struct CookieKeys {
    /// Keys mac1.
    pub mac1: [u8; HASH_LEN],
    /// Seals cookie replies.
    pub cookie: [u8; HASH_LEN],
}

impl core::fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("CookieKeys(..)")
    }
}

impl CookieKeys {
    /// The keys for a responder with this static key (`None`: 32 zero
    /// bytes, for initiators that do not know it).
    pub fn for_responder(responder: Option<&PublicKey>) -> Self {
        let zero = [0u8; DH_LEN];
        let key = responder.map_or(&zero, PublicKey::as_bytes);
        Self {
            mac1: hash(&[b"mac1----", key]),
            cookie: hash(&[b"cookie--", key]),
        }
    }
}

/// HMAC-SHA-256 over the concatenation of `parts`, truncated to 16 bytes.
pub fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    // HMAC takes keys of any length, so construction cannot fail.
    let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return [0; MAC_LEN];
    };
    for p in parts {
        m.update(p);
    }
    let full = m.finalize().into_bytes();
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&full[..MAC_LEN]);
    out
}

/// Constant-time comparison of two MACs.
pub fn mac_eq(a: &[u8; MAC_LEN], b: &[u8; MAC_LEN]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Seals `cookie` for a cookie reply.
///
/// # Errors
/// Never in practice (the AEAD accepts any 16-byte plaintext).
pub fn seal_cookie(
    keys: &CookieKeys,
    nonce: &[u8; COOKIE_NONCE_LEN],
    cookie: &[u8; MAC_LEN],
    mac1: &[u8; MAC_LEN],
) -> Result<[u8; SEALED_COOKIE_LEN]> {
    let mut buf = *cookie;
    let tag = xchacha_seal(&keys.cookie, nonce, mac1, &mut buf)?;
    let mut out = [0u8; SEALED_COOKIE_LEN];
    out[..MAC_LEN].copy_from_slice(&buf);
    out[MAC_LEN..].copy_from_slice(&tag);
    Ok(out)
}

/// Opens a cookie reply to the initiation whose mac1 was `mac1`.
///
/// # Errors
/// [`CryptoError::Decrypt`] if it was not sealed for that initiation.
pub fn open_cookie(
    keys: &CookieKeys,
    nonce: &[u8; COOKIE_NONCE_LEN],
    sealed: &[u8; SEALED_COOKIE_LEN],
    mac1: &[u8; MAC_LEN],
) -> Result<[u8; MAC_LEN]> {
    let mut buf = [0u8; MAC_LEN];
    buf.copy_from_slice(&sealed[..MAC_LEN]);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&sealed[MAC_LEN..]);
    xchacha_open(&keys.cookie, nonce, mac1, &mut buf, &tag).map_err(|_| CryptoError::Decrypt)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_round_trip_is_bound_to_mac1() {
        let keys = CookieKeys::for_responder(Some(&PublicKey::from_bytes([9; 32])));
        let nonce = [7u8; COOKIE_NONCE_LEN];
        let sealed = seal_cookie(&keys, &nonce, &[1; MAC_LEN], &[2; MAC_LEN]).unwrap();
        assert_eq!(
            open_cookie(&keys, &nonce, &sealed, &[2; MAC_LEN]).unwrap(),
            [1; MAC_LEN]
        );
        assert!(open_cookie(&keys, &nonce, &sealed, &[3; MAC_LEN]).is_err());
        let other = CookieKeys::for_responder(None);
        assert!(open_cookie(&other, &nonce, &sealed, &[2; MAC_LEN]).is_err());
    }

    #[test]
    fn mac_matches_rfc4231_case_2_truncated() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let m = mac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let expect = [
            0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
            0x75, 0xc7,
        ];
        assert_eq!(m, expect);
        assert!(mac_eq(&m, &expect));
    }
}
