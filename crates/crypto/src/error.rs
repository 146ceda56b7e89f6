//! The one error type of this crate.

/// Everything that can go wrong in a handshake or a session.
///
/// Authentication failures are deliberately one variant, [`CryptoError::Decrypt`]:
/// telling a peer (or a log reader) *why* a record failed to open helps an
/// attacker and no one else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A record or handshake message failed authentication (wrong key,
    /// tampered bytes, wrong prologue, replayed or reordered stream record).
    #[error("decryption failed")]
    Decrypt,
    /// A handshake message has the wrong length for its position in the pattern.
    #[error("handshake message of {len} bytes; expected {min} to {max}")]
    BadMessageLength {
        /// Received length.
        len: usize,
        /// Shortest valid length at this step.
        min: usize,
        /// Longest valid length at this step.
        max: usize,
    },
    /// A payload or record is longer than a Noise message may be (65535 bytes).
    #[error("{len} bytes exceed the Noise message limit of 65535")]
    TooLong {
        /// Offending length.
        len: usize,
    },
    /// The peer's X25519 public key is a low-order point: the shared secret
    /// would be all zeros, known to anyone.
    #[error("peer sent a low-order X25519 point (non-contributory key exchange)")]
    LowOrderPoint,
    /// The handshake was driven out of turn (writing when a read is due, or
    /// after it finished).
    #[error("handshake step out of order: {0}")]
    OutOfOrder(&'static str),
    /// A key the pattern needs was not configured (for example the server's
    /// public key for XK, IK or NK, or our static key).
    #[error("missing key: {0}")]
    MissingKey(&'static str),
    /// The peer verifier refused the peer's static key.
    #[error("peer rejected: {0}")]
    PeerRejected(#[from] crate::verifier::Rejection),
    /// An IK initiation carried a timestamp not newer than one already seen
    /// from the same peer: a replay.
    #[error("replayed handshake initiation (timestamp not newer than the last one seen)")]
    ReplayedInitiation,
    /// An IK initiation's timestamp is too far ahead of our clock (or the
    /// replay guard's clock was never set).
    #[error("handshake initiation timestamp is in the future")]
    TimestampInFuture,
    /// An IK responder was asked to read an initiation without a replay guard.
    #[error("an IK responder needs a TimestampGuard to read initiations")]
    ReplayGuardRequired,
    /// The initiator chose a cipher function this responder does not accept
    /// ([`crate::HandshakeConfig::accepted_ciphers`]).
    #[error("cipher {0} not accepted")]
    CipherRefused(crate::CipherSuite),
    /// The handshake payload is malformed or names an unsupported protocol version.
    #[error("bad handshake payload: {0}")]
    BadPayload(&'static str),
    /// The initiation is shorter than the response would be: answering it would
    /// amplify traffic towards a possibly spoofed address.
    #[error(
        "initiation of {len} bytes is shorter than the {response} byte response (amplification)"
    )]
    InitiationTooShort {
        /// Initiation length.
        len: usize,
        /// Length of the response we would send.
        response: usize,
    },
    /// The nonce counter is exhausted or a message budget reached its hard
    /// limit; the session must be replaced by a new handshake.
    #[error("session key exhausted; a new handshake is required")]
    NonceExhausted,
    /// A key is older than the configured reject-after time.
    #[error("session key expired; a new handshake is required")]
    KeyExpired,
    /// A datagram counter is outside the replay window or was already seen.
    #[error("datagram counter {0} replayed or too old")]
    Replayed(u64),
    /// A stream session failed earlier and accepts nothing more.
    #[error("session failed earlier and is closed")]
    SessionFailed,
    /// A key file is malformed.
    #[error("bad key file: {0}")]
    BadKeyFile(&'static str),
    /// A key or key text is malformed.
    #[error("bad key encoding: {0}")]
    BadKey(&'static str),
    /// A known-hosts file names two different keys for one host.
    #[cfg(feature = "std")]
    #[error("{path}: {host} is listed with two different keys")]
    KnownHostsConflict {
        /// The file.
        path: std::string::String,
        /// The host.
        host: std::string::String,
    },
    /// A known-hosts path is a symbolic link (refused: it could point
    /// anywhere another user chose).
    #[cfg(feature = "std")]
    #[error("{path}: is a symbolic link; refusing to use it as a known-hosts file")]
    KnownHostsSymlink {
        /// The file.
        path: std::string::String,
    },
    /// A key file or known-hosts file could not be read or written.
    #[cfg(feature = "std")]
    #[error("{path}: {kind:?}: {message}")]
    Io {
        /// The file.
        path: std::string::String,
        /// What the OS said.
        kind: std::io::ErrorKind,
        /// Details.
        message: std::string::String,
    },
}

/// Shorthand for this crate's results.
pub type Result<T, E = CryptoError> = core::result::Result<T, E>;
