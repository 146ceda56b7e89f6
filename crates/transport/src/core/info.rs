//! The core's public vocabulary: roles, what protects a stream, what a
//! handshake established, and the events a driver receives.

use netproto_crypto::{Capabilities, CipherSuite, Pattern, PublicKey};
use netproto_wire::{Compression, Frame};
use rand::{CryptoRng, RngCore};

/// A source of randomness for the handshake (ephemeral keys).
pub trait CoreRng: RngCore + CryptoRng + Send {}
impl<T: RngCore + CryptoRng + Send> CoreRng for T {}

/// Which side of the connection this core is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that dialled: the handshake initiator.
    Client,
    /// The side that accepted: the handshake responder.
    Server,
}

/// What protects a stream before netproto runs on it, declared by the
/// stream itself ([`crate::IoStream::security`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StreamSecurity {
    /// Nothing: netproto runs its Noise handshake and seals every record.
    #[default]
    Plain,
    /// An authenticated TLS session: the two sides exchange a capability
    /// hello and send plain records inside TLS, unless
    /// [`crate::ConnectionConfig::noise_inside_tls`] asks for Noise as well.
    Tls,
}

/// What the handshake established about a connection. Its `Debug` output
/// leaves the handshake hash out (docs/SECURITY.md: never logged).
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The peer's verified static key (`None` for an anonymous NK client, and
    /// over TLS without Noise, where TLS authenticated the peer).
    pub peer_key: Option<PublicKey>,
    /// The Noise handshake hash (identical on both ends; for channel
    /// binding); `None` over TLS without Noise.
    pub handshake_hash: Option<[u8; 32]>,
    /// Capabilities both sides agreed on.
    pub negotiated: Capabilities,
    /// The Noise handshake pattern; `None` over TLS without Noise.
    pub pattern: Option<Pattern>,
    /// The Noise cipher function of the session records (the initiator's
    /// choice); `None` over TLS without Noise.
    pub cipher: Option<CipherSuite>,
    /// The transport label bound into the handshake (`"tcp"`, `"uds"`,
    /// `"tls"`).
    pub transport: String,
    /// Whether we initiated.
    pub initiator: bool,
    /// The codec we compress outgoing records with (if any).
    ///
    /// A TLS client without Noise does not wait for the server's hello
    /// (saving a round trip): until it arrives, `negotiated` holds the
    /// client's own offer, `compression` is `None`, and sends are checked
    /// against the protocol's default 16 MiB limit; the server's limit and
    /// codecs apply from its hello on.
    pub compression: Compression,
}

impl std::fmt::Debug for ConnectionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionInfo")
            .field("peer_key", &self.peer_key.map(|k| k.fingerprint()))
            .field(
                "handshake_hash",
                &self.handshake_hash.map(|_| "<not shown>"),
            )
            .field("negotiated", &self.negotiated)
            .field("pattern", &self.pattern)
            .field("cipher", &self.cipher)
            .field("transport", &self.transport)
            .field("initiator", &self.initiator)
            .field("compression", &self.compression)
            .finish()
    }
}

/// What the core reports to its driver.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The handshake finished; [`crate::core::Core::info`] says what it established.
    Established,
    /// A frame for the application: DATA (whole messages, continuation
    /// already reassembled), ERR, ACK, GOAWAY, PONG, and extension frames
    /// of negotiated extensions.
    Frame(Frame),
}
