//! Static identity keys: generation, encoding, fingerprints and key files.
//!
//! Text forms (documented in docs/SECURITY.md):
//! * public key: standard base64 (with padding) of the 32 raw bytes;
//! * fingerprint: `SHA256:` followed by unpadded standard base64 of
//!   SHA-256(public key), the form OpenSSH prints;
//! * key file: the line `netproto-x25519-private-key-v1`, then one line with
//!   the base64 private key; written with mode 0600 and refused on load if
//!   group or others can read it.

use alloc::string::String;
use core::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey as DalekPublic, StaticSecret};
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::primitives::{hash, DH_LEN};

/// An X25519 public key. Equality is constant-time.
// Equality is byte equality, computed in constant time, so deriving Hash over
// the same bytes stays consistent with it.
#[allow(clippy::derived_hash_with_manual_eq)]
#[derive(Clone, Copy, Hash)]
pub struct PublicKey([u8; DH_LEN]);

impl PublicKey {
    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; DH_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; DH_LEN] {
        &self.0
    }

    /// Parses the base64 text form.
    ///
    /// # Errors
    /// [`CryptoError::BadKey`] if it is not base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self> {
        let mut out = [0u8; DH_LEN];
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| CryptoError::BadKey("public key is not valid base64"))?;
        if bytes.len() != DH_LEN {
            return Err(CryptoError::BadKey("public key is not 32 bytes"));
        }
        out.copy_from_slice(&bytes);
        Ok(Self(out))
    }

    /// The base64 text form.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// `SHA256:<unpadded base64 of SHA-256(key)>`, safe to log.
    pub fn fingerprint(&self) -> String {
        let mut s = String::from("SHA256:");
        s.push_str(&STANDARD_NO_PAD.encode(hash(&[&self.0])));
        s
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// A static X25519 identity: private key (zeroized on drop) and public key.
#[derive(Clone)]
pub struct Keypair {
    secret: StaticSecret,
    public: PublicKey,
}

impl Keypair {
    /// A fresh key from a cryptographically secure generator.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = Zeroizing::new([0u8; DH_LEN]);
        rng.fill_bytes(&mut bytes[..]);
        Self::from_secret_bytes(*bytes)
    }

    /// From the 32 private-key bytes (clamping happens inside X25519).
    pub fn from_secret_bytes(bytes: [u8; DH_LEN]) -> Self {
        let secret = StaticSecret::from(bytes);
        let public = PublicKey(DalekPublic::from(&secret).to_bytes());
        Self { secret, public }
    }

    /// The public half.
    pub const fn public(&self) -> &PublicKey {
        &self.public
    }

    pub(crate) const fn secret(&self) -> &StaticSecret {
        &self.secret
    }

    /// The key-file text (see the module docs). Treat it as a secret.
    pub fn to_key_file(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::from(KEY_FILE_HEADER));
        s.push('\n');
        s.push_str(&STANDARD.encode(self.secret.as_bytes()));
        s.push('\n');
        s
    }

    /// Parses key-file text.
    ///
    /// # Errors
    /// [`CryptoError::BadKeyFile`].
    pub fn from_key_file(text: &str) -> Result<Self> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(CryptoError::BadKeyFile(
                "missing netproto-x25519-private-key-v1 header",
            ));
        }
        let body = lines.next().ok_or(CryptoError::BadKeyFile("no key line"))?;
        if lines.next().is_some() {
            return Err(CryptoError::BadKeyFile("unexpected text after the key"));
        }
        let raw = Zeroizing::new(
            STANDARD
                .decode(body)
                .map_err(|_| CryptoError::BadKeyFile("key is not valid base64"))?,
        );
        let bytes: [u8; DH_LEN] = raw
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::BadKeyFile("key is not 32 bytes"))?;
        Ok(Self::from_secret_bytes(bytes))
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key.
        f.debug_struct("Keypair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

const KEY_FILE_HEADER: &str = "netproto-x25519-private-key-v1";

#[cfg(feature = "std")]
mod files {
    use super::{CryptoError, Keypair, Result};
    use std::path::Path;
    use std::string::ToString;

    pub(crate) fn io_err(path: &Path, e: &std::io::Error) -> CryptoError {
        CryptoError::Io {
            path: path.display().to_string(),
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    impl Keypair {
        /// Writes the key file with mode 0600 (created exclusively: an
        /// existing file is not overwritten).
        ///
        /// # Errors
        /// [`CryptoError::Io`], including `AlreadyExists`.
        pub fn save(&self, path: &Path) -> Result<()> {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(path).map_err(|e| io_err(path, &e))?;
            f.write_all(self.to_key_file().as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| io_err(path, &e))
        }

        /// Reads a key file, refusing one that group or others can read.
        ///
        /// # Errors
        /// [`CryptoError::Io`] (with kind `PermissionDenied` for a file that is
        /// too open), [`CryptoError::BadKeyFile`].
        pub fn load(path: &Path) -> Result<Self> {
            use std::io::Read;
            // Opened once, and the opened file is checked and read: what
            // is checked is what is read (a check of the path, then an
            // open, could be raced by swapping a link in between).
            let mut file = std::fs::File::open(path).map_err(|e| io_err(path, &e))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let meta = file.metadata().map_err(|e| io_err(path, &e))?;
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(CryptoError::Io {
                        path: path.display().to_string(),
                        kind: std::io::ErrorKind::PermissionDenied,
                        message: std::format!(
                            "private key file has mode {mode:o}; it must not be readable by group or others (chmod 600)"
                        ),
                    });
                }
            }
            let mut text = zeroize::Zeroizing::new(std::string::String::new());
            file.read_to_string(&mut text)
                .map_err(|e| io_err(path, &e))?;
            Self::from_key_file(&text)
        }
    }
}

#[cfg(feature = "std")]
pub(crate) use files::io_err;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_roundtrip() {
        let k = Keypair::from_secret_bytes([7u8; 32]);
        let back = Keypair::from_key_file(&k.to_key_file()).unwrap();
        assert_eq!(back.public(), k.public());
        assert_eq!(
            PublicKey::from_base64(&k.public().to_base64()).unwrap(),
            *k.public()
        );
        assert!(k.public().fingerprint().starts_with("SHA256:"));
        assert_eq!(k.public().fingerprint().len(), 7 + 43);
        assert!(PublicKey::from_base64("AAAA").is_err());
        assert!(Keypair::from_key_file("nope\nAAAA").is_err());
    }

    #[test]
    fn debug_hides_secret() {
        let k = Keypair::from_secret_bytes([7u8; 32]);
        let s = alloc::format!("{k:?}");
        assert!(!s.contains(&STANDARD.encode([7u8; 32])));
    }

    #[cfg(all(feature = "std", unix))]
    #[test]
    fn file_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(std::format!("netproto-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("id.key");
        let _ = std::fs::remove_file(&path);
        let k = Keypair::from_secret_bytes([9u8; 32]);
        k.save(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(Keypair::load(&path).unwrap().public(), k.public());
        assert!(k.save(&path).is_err(), "must not overwrite");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Keypair::load(&path),
            Err(CryptoError::Io {
                kind: std::io::ErrorKind::PermissionDenied,
                ..
            })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
