//! Certificate pinning: SHA-256 of the leaf's SubjectPublicKeyInfo (survives
//! re-issuing with the same key) or of the whole certificate.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use crate::error::TlsError;

/// One pin. Text forms: `spki-sha256:<64 hex>` (also `sha256//<base64>`, the
/// form curl's `--pinnedpubkey` and HPKP use) and `cert-sha256:<64 hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertPin {
    /// SHA-256 of the DER SubjectPublicKeyInfo.
    Spki([u8; 32]),
    /// SHA-256 of the whole DER certificate.
    Certificate([u8; 32]),
}

impl CertPin {
    /// The SPKI pin of a DER certificate.
    ///
    /// # Errors
    /// [`TlsError::BadPin`] if the certificate does not parse.
    pub fn spki_of(cert: &CertificateDer<'_>) -> Result<Self, TlsError> {
        let parsed = webpki::EndEntityCert::try_from(cert).map_err(|_| TlsError::BadPin {
            input: "(certificate)".into(),
            reason: "the certificate does not parse as X.509",
        })?;
        let spki = parsed.subject_public_key_info();
        Ok(Self::Spki(Sha256::digest(spki.as_ref()).into()))
    }

    /// The whole-certificate pin of a DER certificate.
    pub fn certificate_of(cert: &CertificateDer<'_>) -> Self {
        Self::Certificate(Sha256::digest(cert.as_ref()).into())
    }

    /// Whether `cert` matches this pin.
    pub fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        match self {
            Self::Spki(_) => Self::spki_of(cert).is_ok_and(|p| p == *self),
            Self::Certificate(_) => Self::certificate_of(cert) == *self,
        }
    }
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl FromStr for CertPin {
    type Err = TlsError;

    fn from_str(input: &str) -> Result<Self, TlsError> {
        let bad = |reason| TlsError::BadPin {
            input: input.to_owned(),
            reason,
        };
        let input_trim = input.trim();
        if let Some(b64) = input_trim.strip_prefix("sha256//") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| bad("sha256// must be followed by base64"))?;
            let digest: [u8; 32] = bytes
                .try_into()
                .map_err(|_| bad("a SHA-256 digest is 32 bytes"))?;
            return Ok(Self::Spki(digest));
        }
        let (kind, hex) = input_trim
            .split_once(':')
            .ok_or_else(|| bad("use spki-sha256:<hex>, cert-sha256:<hex> or sha256//<base64>"))?;
        let digest = hex32(&hex.replace(':', "").to_ascii_lowercase())
            .ok_or_else(|| bad("expected 64 hexadecimal digits"))?;
        match kind {
            "spki-sha256" => Ok(Self::Spki(digest)),
            "cert-sha256" => Ok(Self::Certificate(digest)),
            _ => Err(bad("unknown pin kind: use spki-sha256 or cert-sha256")),
        }
    }
}

impl fmt::Display for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, digest) = match self {
            Self::Spki(d) => ("spki-sha256", d),
            Self::Certificate(d) => ("cert-sha256", d),
        };
        f.write_str(kind)?;
        f.write_str(":")?;
        for b in digest {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        for kind in ["spki-sha256", "cert-sha256"] {
            let s = format!("{kind}:{hex}");
            let pin: CertPin = s.parse().unwrap();
            assert_eq!(pin.to_string(), s);
        }
        let upper: CertPin = format!("spki-sha256:{}", hex.to_uppercase())
            .parse()
            .unwrap();
        assert_eq!(upper.to_string(), format!("spki-sha256:{hex}"));
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let pin: CertPin = format!("sha256//{b64}").parse().unwrap();
        assert_eq!(pin, CertPin::Spki([7; 32]));
    }

    #[test]
    fn bad_pins_are_refused() {
        for s in [
            "spki-sha256:00",
            "md5:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            "nocolon",
            "sha256//!!!",
            "sha256//AAAA",
            "spki-sha256:zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        ] {
            assert!(
                matches!(s.parse::<CertPin>(), Err(TlsError::BadPin { .. })),
                "{s}"
            );
        }
    }
}
