//! `[transport] cipher` and `accepted_ciphers`: the Noise cipher function a
//! client chooses and the ones a server accepts (docs/WIRE.md "Cipher
//! choice").

use serde::{Deserialize, Serialize};

/// A Noise cipher function as the configuration names it. A value that is
/// not one of these fails loading with an error that lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum NoiseCipher {
    /// The faster one on this CPU: AES-GCM with AES hardware, else
    /// ChaCha20-Poly1305 (only as `cipher`, the client's choice).
    #[default]
    Auto,
    /// ChaCha20-Poly1305 (every netproto peer speaks it).
    ChaChaPoly,
    /// AES-256-GCM.
    AesGcm,
}

/// Every concrete cipher, the default of `accepted_ciphers`.
pub(crate) fn all() -> Vec<NoiseCipher> {
    vec![NoiseCipher::ChaChaPoly, NoiseCipher::AesGcm]
}

/// `accepted_ciphers` must name at least one cipher, and no `auto`.
pub(crate) fn check_accepted(accepted: &[NoiseCipher]) -> Result<(), &'static str> {
    if accepted.is_empty() {
        return Err("must name at least one cipher (\"chachapoly\", \"aesgcm\")");
    }
    if accepted.contains(&NoiseCipher::Auto) {
        return Err(
            "names the ciphers a server accepts: \"chachapoly\" and/or \"aesgcm\", not \"auto\"",
        );
    }
    Ok(())
}
