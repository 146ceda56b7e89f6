//! # netproto-crypto
//!
//! netproto's authenticated handshake and encrypted sessions, built on the
//! [Noise Protocol Framework](https://noiseprotocol.org/noise.html) (revision 34)
//! with X25519, ChaCha20-Poly1305 or AES-256-GCM ([`CipherSuite`], the
//! initiator's choice) and SHA-256 — `Noise_XX_25519_ChaChaPoly_SHA256` by
//! default, and XK, IK and NK when the client knows the server's key.
//!
//! `no_std` + `alloc` and sans-IO: bytes in, bytes out. Randomness comes in as
//! an `RngCore + CryptoRng`, time as a [`core::time::Duration`]. The `std`
//! feature (default) adds key files and the known-hosts verifier.
//!
//! Layers:
//! * [`noise`]: the raw Noise handshake (checked against the cacophony vectors
//!   and the `snow` crate);
//! * [`Handshake`]: netproto's three messages (SecureHandshakeInit, …Response,
//!   …Confirm) with prologue binding, capability negotiation, anti-amplification
//!   padding, peer verification and IK replay protection;
//! * [`Session`]: per-direction record keys, stream and datagram modes,
//!   anti-replay window, rekeying.
//!
//! ## Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use netproto_crypto::{AnyPeer, Handshake, HandshakeConfig, Keypair, Mode, Pinned, RekeyPolicy, Session};
//!
//! let mut rng = rand::rngs::OsRng;
//! let server_key = Keypair::generate(&mut rng);
//! let client_key = Keypair::generate(&mut rng);
//! let now = Duration::from_secs(1_700_000_000);
//!
//! // The client pins the server's key; the server accepts any client.
//! let mut client = Handshake::initiator(HandshakeConfig::new(
//!     Some(client_key),
//!     Arc::new(Pinned(*server_key.public())),
//! ))?;
//! let mut server = Handshake::responder(HandshakeConfig::new(Some(server_key), Arc::new(AnyPeer)))?;
//!
//! // SecureHandshakeInit, Response, Confirm.
//! let (mut init, mut resp, mut confirm) = (Vec::new(), Vec::new(), Vec::new());
//! client.write_message(&mut rng, now, &mut init)?;
//! server.read_message(&init, None)?;
//! server.write_message(&mut rng, now, &mut resp)?;
//! client.read_message(&resp, None)?;
//! client.write_message(&mut rng, now, &mut confirm)?;
//! server.read_message(&confirm, None)?;
//!
//! let (c, s) = (client.finish()?, server.finish()?);
//! assert_eq!(c.handshake_hash, s.handshake_hash);
//! let mut client = Session::new(&c, Mode::Stream, RekeyPolicy::default(), now);
//! let mut server = Session::new(&s, Mode::Stream, RekeyPolicy::default(), now);
//!
//! // One record: the header is the associated data and carries the key phase.
//! let mut record = b"hello".to_vec();
//! let r = client.sender.reserve(now)?;
//! let header = [u8::from(r.key_phase())];
//! let tag = client.sender.seal(r, &header, &mut record)?;
//! record.extend_from_slice(&tag);
//! let len = server.receiver.open(now, 0, header[0] == 1, &header, &mut record)?;
//! assert_eq!(&record[..len], b"hello");
//! # Ok::<(), netproto_crypto::CryptoError>(())
//! ```
#![no_std]
#![cfg_attr(test, allow(clippy::cast_possible_truncation, clippy::cast_sign_loss))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod cipher;
pub mod cookie;
mod error;
mod handshake;
mod keys;
pub mod noise;
pub mod oneshot;
mod primitives;
mod replay;
mod session;
mod symmetric;
mod timestamp;
mod verifier;

pub use cipher::{CipherSet, CipherSuite};
pub use error::{CryptoError, Result};
pub use handshake::{
    codecs, Capabilities, Established, Handshake, HandshakeConfig, MIN_MESSAGE_LIMIT,
    PROTOCOL_VERSION,
};
pub use keys::{Keypair, PublicKey};
pub use noise::Pattern;
pub use primitives::{DH_LEN, HASH_LEN, KEY_LEN, MAX_MESSAGE_LEN, TAG_LEN};
pub use replay::{ReplayWindow, WINDOW_SIZE};
pub use session::{Mode, Receiver, RekeyPolicy, Reservation, Sender, Session, MAX_PLAINTEXT};
pub use timestamp::{tai64n, ReplayCheck, TimestampGuard, TAI64N_LEN};
#[cfg(feature = "std")]
pub use verifier::KnownHosts;
pub use verifier::{AllowList, AnyPeer, PeerInfo, PeerVerifier, Pinned, Rejection};
