//! Deciding whether a peer's static key is acceptable.
//!
//! The handshake proves that the peer holds the private key for the static
//! key it presented; a [`PeerVerifier`] decides whether that key is one we
//! want to talk to. Ready-made verifiers: [`Pinned`] (exactly this key),
//! [`AllowList`], [`KnownHosts`] (trust on first use, like SSH; `std` only),
//! and [`AnyPeer`] (encryption without authentication, logged as a warning).

use alloc::string::String;
use alloc::vec::Vec;

use crate::keys::PublicKey;

/// What the verifier is told about the peer.
#[derive(Debug, Clone, Copy)]
pub struct PeerInfo<'a> {
    /// The peer's static key; `None` for an anonymous NK initiator.
    pub key: Option<&'a PublicKey>,
    /// The name we dialled (clients) or `None` (servers).
    pub host: Option<&'a str>,
}

/// Why a peer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The key is not the pinned one.
    #[error("peer key {fingerprint} does not match the pinned key")]
    NotPinned {
        /// Fingerprint of the presented key.
        fingerprint: String,
    },
    /// The key is not on the allow-list.
    #[error("peer key {fingerprint} is not on the allow-list")]
    NotAllowed {
        /// Fingerprint of the presented key.
        fingerprint: String,
    },
    /// The host presented a different key than the one recorded for it.
    #[error("KEY CHANGED for {host}: recorded {recorded}, presented {presented}; possible man-in-the-middle")]
    KeyChanged {
        /// The host name.
        host: String,
        /// Fingerprint on record.
        recorded: String,
        /// Fingerprint presented now.
        presented: String,
    },
    /// The peer did not present a static key but this verifier needs one.
    #[error("peer is anonymous but a static key is required")]
    Anonymous,
    /// Trust-on-first-use needs the dialled host name.
    #[error("no host name to look up in known hosts")]
    NoHostName,
    /// The known-hosts store could not be read or updated.
    #[error("known-hosts store failed: {0}")]
    Store(String),
}

/// Decides whether a peer may complete the handshake.
pub trait PeerVerifier: Send + Sync {
    /// `Ok(())` to accept the peer.
    ///
    /// # Errors
    /// The reason the peer is refused.
    fn verify(&self, peer: &PeerInfo<'_>) -> Result<(), Rejection>;
}

fn require_key<'a>(peer: &PeerInfo<'a>) -> Result<&'a PublicKey, Rejection> {
    peer.key.ok_or(Rejection::Anonymous)
}

/// Accepts exactly one key.
#[derive(Debug, Clone)]
pub struct Pinned(pub PublicKey);

impl PeerVerifier for Pinned {
    fn verify(&self, peer: &PeerInfo<'_>) -> Result<(), Rejection> {
        let key = require_key(peer)?;
        if *key == self.0 {
            Ok(())
        } else {
            Err(Rejection::NotPinned {
                fingerprint: key.fingerprint(),
            })
        }
    }
}

/// Accepts any key on a list.
#[derive(Debug, Clone, Default)]
pub struct AllowList(Vec<PublicKey>);

impl AllowList {
    /// A list of acceptable keys.
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        Self(keys.into_iter().collect())
    }
}

impl PeerVerifier for AllowList {
    fn verify(&self, peer: &PeerInfo<'_>) -> Result<(), Rejection> {
        let key = require_key(peer)?;
        // Every entry is compared (constant-time each) so timing reveals
        // nothing about which entry matched.
        #[allow(clippy::needless_bitwise_bool)] // no short-circuit, on purpose
        let found = self.0.iter().fold(false, |acc, k| acc | (k == key));
        if found {
            Ok(())
        } else {
            Err(Rejection::NotAllowed {
                fingerprint: key.fingerprint(),
            })
        }
    }
}

/// Accepts every peer, anonymous or not: the session is encrypted but the
/// peer is not authenticated, so an active man in the middle goes unnoticed.
/// Every acceptance is logged as a warning.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyPeer;

impl PeerVerifier for AnyPeer {
    fn verify(&self, peer: &PeerInfo<'_>) -> Result<(), Rejection> {
        let fingerprint = peer.key.map(PublicKey::fingerprint);
        tracing::warn!(
            peer = fingerprint.as_deref().unwrap_or("anonymous"),
            host = peer.host.unwrap_or(""),
            "accepting peer without authentication (AnyPeer verifier)"
        );
        Ok(())
    }
}

#[cfg(feature = "std")]
pub use known_hosts::KnownHosts;

#[cfg(feature = "std")]
mod known_hosts {
    use super::{require_key, PeerInfo, PeerVerifier, Rejection};
    use crate::keys::{io_err, PublicKey};
    use crate::CryptoError;
    use std::collections::BTreeMap;
    use std::io::{Read, Write};
    use std::path::{Path, PathBuf};
    use std::string::{String, ToString};
    use std::sync::Mutex;

    /// Trust on first use against a known-hosts file, as SSH does.
    ///
    /// File format: one `host base64-public-key` per line; blank lines and
    /// lines starting with `#` are ignored; a host with two different keys
    /// makes the file invalid. The first key seen for a host is appended to
    /// the file under an exclusive lock, after re-reading it, so two
    /// processes trusting a host at once cannot record two keys; a
    /// different key later is refused with [`Rejection::KeyChanged`]. The
    /// file is created with mode 0600 and never read or written through a
    /// symbolic link.
    #[derive(Debug)]
    pub struct KnownHosts {
        path: PathBuf,
        entries: Mutex<BTreeMap<String, PublicKey>>,
    }

    /// Parses a known-hosts file.
    fn parse(text: &str, path: &Path) -> Result<BTreeMap<String, PublicKey>, CryptoError> {
        let mut entries = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (host, key) = line
                .split_once(char::is_whitespace)
                .ok_or(CryptoError::BadKey("known-hosts line without a key"))?;
            let key = PublicKey::from_base64(key.trim())?;
            if let Some(before) = entries.insert(host.to_string(), key) {
                if before != key {
                    return Err(CryptoError::KnownHostsConflict {
                        path: path.display().to_string(),
                        host: host.to_string(),
                    });
                }
            }
        }
        Ok(entries)
    }

    /// Opens `path` with `opts` and refuses it if `path` is a symbolic
    /// link. Checked after the open, on the file opened: the path must name
    /// that same file, not through a link (a check before the open could be
    /// raced by swapping a link in between). `Ok(None)` if it does not exist.
    fn open_no_link(
        path: &Path,
        opts: &std::fs::OpenOptions,
    ) -> Result<Option<std::fs::File>, CryptoError> {
        let file = match opts.open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(path, &e)),
        };
        let named = std::fs::symlink_metadata(path).map_err(|e| io_err(path, &e))?;
        let link = CryptoError::KnownHostsSymlink {
            path: path.display().to_string(),
        };
        if named.file_type().is_symlink() {
            return Err(link);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let opened = file.metadata().map_err(|e| io_err(path, &e))?;
            if (opened.dev(), opened.ino()) != (named.dev(), named.ino()) {
                return Err(link);
            }
        }
        Ok(Some(file))
    }

    impl KnownHosts {
        /// Loads `path` (a missing file is an empty store, created on first use).
        ///
        /// # Errors
        /// [`CryptoError::Io`] if it cannot be read, [`CryptoError::BadKey`] for
        /// a malformed line, [`CryptoError::KnownHostsConflict`] for a host
        /// listed with two keys, [`CryptoError::KnownHostsSymlink`] if `path`
        /// is a symbolic link.
        pub fn open(path: impl AsRef<Path>) -> Result<Self, CryptoError> {
            let path = path.as_ref().to_path_buf();
            let entries = match open_no_link(&path, std::fs::OpenOptions::new().read(true))? {
                Some(mut f) => {
                    let mut text = String::new();
                    f.read_to_string(&mut text).map_err(|e| io_err(&path, &e))?;
                    parse(&text, &path)?
                }
                None => BTreeMap::new(),
            };
            Ok(Self {
                path,
                entries: Mutex::new(entries),
            })
        }

        /// The key recorded for `host`.
        pub fn get(&self, host: &str) -> Option<PublicKey> {
            self.entries.lock().ok()?.get(host).copied()
        }

        /// Records `key` for `host` unless the file (re-read under an
        /// exclusive lock) already names a key for it; returns that key.
        fn record(&self, host: &str, key: &PublicKey) -> Result<Option<PublicKey>, CryptoError> {
            let mut opts = std::fs::OpenOptions::new();
            opts.create(true).read(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let Some(mut f) = open_no_link(&self.path, &opts)? else {
                // Created above unless it vanished in between.
                return Err(io_err(
                    &self.path,
                    &std::io::Error::from(std::io::ErrorKind::NotFound),
                ));
            };
            // Released when `f` is dropped.
            f.lock().map_err(|e| io_err(&self.path, &e))?;
            let mut text = String::new();
            f.read_to_string(&mut text)
                .map_err(|e| io_err(&self.path, &e))?;
            if let Some(existing) = parse(&text, &self.path)?.get(host) {
                return Ok(Some(*existing));
            }
            writeln!(f, "{host} {}", key.to_base64()).map_err(|e| io_err(&self.path, &e))?;
            f.sync_data().map_err(|e| io_err(&self.path, &e))?;
            Ok(None)
        }
    }

    impl PeerVerifier for KnownHosts {
        fn verify(&self, peer: &PeerInfo<'_>) -> Result<(), Rejection> {
            let key = require_key(peer)?;
            let host = peer.host.ok_or(Rejection::NoHostName)?;
            if host.chars().any(char::is_whitespace) || host.is_empty() {
                return Err(Rejection::Store(
                    "host name must be non-empty without spaces".into(),
                ));
            }
            let mut entries = self
                .entries
                .lock()
                .map_err(|_| Rejection::Store("known-hosts lock poisoned".into()))?;
            let recorded = match entries.get(host) {
                Some(recorded) => Some(*recorded),
                None => self
                    .record(host, key)
                    .map_err(|e| Rejection::Store(e.to_string()))?,
            };
            match recorded {
                Some(recorded) if recorded == *key => {
                    entries.insert(host.to_string(), recorded);
                    Ok(())
                }
                Some(recorded) => {
                    // Another process may have recorded it first: remember
                    // what the file says.
                    entries.insert(host.to_string(), recorded);
                    tracing::error!(host, recorded = %recorded.fingerprint(), presented = %key.fingerprint(), "host key changed");
                    Err(Rejection::KeyChanged {
                        host: host.to_string(),
                        recorded: recorded.fingerprint(),
                        presented: key.fingerprint(),
                    })
                }
                None => {
                    tracing::warn!(host, key = %key.fingerprint(), "trusting new host key on first use");
                    entries.insert(host.to_string(), *key);
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;

    fn key(b: u8) -> PublicKey {
        *Keypair::from_secret_bytes([b; 32]).public()
    }

    fn info(k: &PublicKey) -> PeerInfo<'_> {
        PeerInfo {
            key: Some(k),
            host: Some("server.example:9000"),
        }
    }

    #[test]
    fn pinned_and_allow_list() {
        let (a, b) = (key(1), key(2));
        assert!(Pinned(a).verify(&info(&a)).is_ok());
        assert!(matches!(
            Pinned(a).verify(&info(&b)),
            Err(Rejection::NotPinned { .. })
        ));
        let list = AllowList::new([a]);
        assert!(list.verify(&info(&a)).is_ok());
        assert!(matches!(
            list.verify(&info(&b)),
            Err(Rejection::NotAllowed { .. })
        ));
        let anon = PeerInfo {
            key: None,
            host: None,
        };
        assert_eq!(list.verify(&anon), Err(Rejection::Anonymous));
        assert!(AnyPeer.verify(&anon).is_ok());
    }

    #[cfg(feature = "std")]
    #[test]
    fn trust_on_first_use() {
        let path =
            std::env::temp_dir().join(std::format!("netproto-known-hosts-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let (a, b) = (key(1), key(2));
        let kh = KnownHosts::open(&path).unwrap();
        assert!(kh.verify(&info(&a)).is_ok(), "first use is trusted");
        assert!(kh.verify(&info(&a)).is_ok());
        assert!(matches!(
            kh.verify(&info(&b)),
            Err(Rejection::KeyChanged { .. })
        ));
        // The decision survives a restart.
        let again = KnownHosts::open(&path).unwrap();
        assert_eq!(again.get("server.example:9000"), Some(a));
        assert!(matches!(
            again.verify(&info(&b)),
            Err(Rejection::KeyChanged { .. })
        ));
        std::fs::remove_file(&path).unwrap();
    }

    #[cfg(feature = "std")]
    fn temp_path(name: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(std::format!("netproto-kh-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    #[cfg(feature = "std")]
    #[test]
    fn two_processes_trusting_at_once_record_one_key() {
        // Both opened the file before either recorded the host, as two
        // processes racing through an alternating proxy would.
        let path = temp_path("race");
        let (first, second) = (
            KnownHosts::open(&path).unwrap(),
            KnownHosts::open(&path).unwrap(),
        );
        let (a, b) = (key(1), key(2));
        assert!(first.verify(&info(&a)).is_ok());
        assert!(matches!(
            second.verify(&info(&b)),
            Err(Rejection::KeyChanged { .. })
        ));
        assert!(
            second.verify(&info(&a)).is_ok(),
            "the legitimate key is still accepted"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[cfg(feature = "std")]
    #[test]
    fn conflicting_lines_and_symlinks_are_refused() {
        let path = temp_path("conflict");
        let (a, b) = (key(1), key(2));
        std::fs::write(
            &path,
            std::format!("h:1 {}\nh:1 {}\n", a.to_base64(), b.to_base64()),
        )
        .unwrap();
        assert!(matches!(
            KnownHosts::open(&path),
            Err(crate::CryptoError::KnownHostsConflict { ref host, .. }) if host == "h:1"
        ));
        std::fs::remove_file(&path).unwrap();
        #[cfg(unix)]
        {
            let target = temp_path("target");
            let link = temp_path("link");
            std::fs::write(&target, "").unwrap();
            std::os::unix::fs::symlink(&target, &link).unwrap();
            assert!(matches!(
                KnownHosts::open(&link),
                Err(crate::CryptoError::KnownHostsSymlink { .. })
            ));
            std::fs::remove_file(&link).unwrap();
            std::fs::remove_file(&target).unwrap();
        }
    }
}
