//! # netproto-transport-udp
//!
//! netproto over UDP: the same Noise identities and handshake patterns as
//! over TCP, bound to the `udp` transport; WireGuard-style cookies when the
//! responder is under load; sessions with an anti-replay window; messages
//! of up to 1 MiB (by default) cut into datagrams of at most 1200 bytes; and
//! a delivery mode per message — *reliable* (selective acknowledgements
//! inside the encryption, RTO from measured RTT, a congestion window, a
//! deadline, delivered exactly once) or *unreliable* (sent once).
//!
//! The [`Endpoint`] is sans-IO (datagrams, `now` and randomness go in;
//! datagrams, events and a timeout come out), so tests run it on a
//! simulated link in virtual time; [`UdpEndpoint`] is the thin tokio driver
//! that owns a socket. docs/WIRE.md ("Datagram sessions") is the contract.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair, Pinned};
//! use netproto_transport_udp::{Delivery, Endpoint, Event, UdpConfig};
//! use netproto_wire::Frame;
//!
//! # fn main() -> Result<(), netproto_transport_udp::UdpError> {
//! let mut rng = rand::rngs::OsRng;
//! let server_key = Keypair::generate(&mut rng);
//! let pinned = Arc::new(Pinned(*server_key.public()));
//! let (now, wall) = (Instant::now(), Duration::from_secs(1_700_000_000));
//! let accept = HandshakeConfig::new(Some(server_key), Arc::new(AnyPeer));
//! let mut server = Endpoint::new(UdpConfig::default(), Some(accept), Box::new(rng), now, wall)?;
//! let mut client = Endpoint::new(UdpConfig::default(), None, Box::new(rng), now, wall)?;
//! let (s_addr, c_addr): (SocketAddr, SocketAddr) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
//!
//! let id = client.connect(now, s_addr, HandshakeConfig::new(Some(Keypair::generate(&mut rng)), pinned))?;
//! // A driver's whole job: move datagrams between endpoints (and sockets).
//! let mut pump = |client: &mut Endpoint, server: &mut Endpoint| {
//!     for _ in 0..8 {
//!         while let Some(mut t) = client.poll_transmit(now) { server.handle_datagram(now, c_addr, &mut t.contents); }
//!         while let Some(mut t) = server.poll_transmit(now) { client.handle_datagram(now, s_addr, &mut t.contents); }
//!     }
//! };
//! pump(&mut client, &mut server);
//! assert!(matches!(client.poll_event(), Some((_, Event::Connected(_)))));
//! client.send(now, id, &Frame::data(1, &b"hello"[..]), Delivery::Reliable)?;
//! pump(&mut client, &mut server);
//! assert!(matches!(server.poll_event(), Some((_, Event::Connected(_)))));
//! match server.poll_event() {
//!     Some((_, Event::Message { frame, reliable: true })) => assert_eq!(&frame.payload[..], b"hello"),
//!     other => panic!("{other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

mod carrier;
mod config;
mod connection;
mod driver;

mod endpoint;
mod error;
mod handshake;
pub mod items;
mod recv;
mod rtt;
mod send;
mod session;

use std::net::SocketAddr;

use netproto_crypto::{Capabilities, Pattern, PublicKey, HASH_LEN};

pub use config::{
    HandshakeLimits, RetransmitConfig, UdpConfig, DEDUP_WINDOW, MAX_ACK_RANGES, MAX_PIECES,
    RELIABLE_WINDOW,
};

pub use carrier::{UdpDialer, UdpListener};
pub use connection::UdpConnection;
pub use driver::{DatagramSocket, UdpEndpoint};
pub use endpoint::{
    Delivery, Endpoint, EndpointStats, SessionId, Transmit, DEFAULT_ENDPOINT_BUDGET,
};
pub use error::{DropReason, RecordViolation, Result, UdpError};
pub use session::{Event, SessionStats};

/// The randomness an endpoint draws from (session indexes, ephemeral keys,
/// cookie secrets and nonces).
pub trait EndpointRng: rand::RngCore + rand::CryptoRng + Send {}
impl<T: rand::RngCore + rand::CryptoRng + Send> EndpointRng for T {}

/// Facts about an established session.
#[derive(Clone)]
#[non_exhaustive]
pub struct SessionInfo {
    /// Our index for it.
    pub id: SessionId,
    /// The peer's address when the handshake completed.
    pub peer_addr: SocketAddr,
    /// The peer's verified static key (`None` for an anonymous NK client).
    pub peer_key: Option<PublicKey>,
    /// The Noise handshake hash (identical on both sides; channel binding).
    pub handshake_hash: [u8; HASH_LEN],
    /// The handshake pattern.
    pub pattern: Pattern,
    /// Whether we initiated.
    pub initiator: bool,
    /// What both sides agreed on.
    pub negotiated: Capabilities,
}

impl std::fmt::Debug for SessionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionInfo")
            .field("id", &self.id)
            .field("peer_addr", &self.peer_addr)
            .field("peer_key", &self.peer_key.map(|k| k.fingerprint()))
            .field("pattern", &self.pattern)
            .field("initiator", &self.initiator)
            .finish_non_exhaustive()
    }
}
