//! netproto's handshake on top of [`crate::noise`]: the three messages
//! SecureHandshakeInit, SecureHandshakeResponse and (for XX and XK)
//! SecureHandshakeConfirm.
//!
//! It adds what the raw Noise layer leaves to the application:
//! * a **prologue** binding protocol version, pattern and transport, so both
//!   sides must agree on all three or the handshake fails (no downgrade);
//! * **capabilities** (version, max frame size, compression codecs, feature
//!   bits) carried inside the encryption wherever the pattern allows, and
//!   intersected into a [`Capabilities`] both sides agree on;
//! * **padding** of the initiation so the response is never larger than it
//!   (no amplification), checked by the responder before any DH work;
//! * **peer verification** through a [`PeerVerifier`];
//! * for IK, a **TAI64N timestamp** checked against a [`TimestampGuard`].
//!
//! Handshake payload layout: `content_len u16 BE | content | zero padding`.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::cipher::{CipherSet, CipherSuite};
use crate::error::{CryptoError, Result};
use crate::keys::{Keypair, PublicKey};
use crate::noise::{HandshakeState, Pattern};
use crate::primitives::{HASH_LEN, KEY_LEN};
use crate::timestamp::{tai64n, ReplayCheck, TimestampGuard, TAI64N_LEN};
use crate::verifier::{PeerInfo, PeerVerifier};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// The smallest message limit a peer may advertise: an ERR frame (code and
/// a reason of at most 256 bytes) must always fit, or a request could go
/// unanswered. Smaller configured limits are raised to this.
pub const MIN_MESSAGE_LIMIT: u32 = 1024;
/// Length of an encoded [`Capabilities`].
const CAPABILITIES_LEN: usize = 10;
/// Content of the responder's message: length prefix plus capabilities.
const RESPONSE_PAYLOAD_LEN: usize = 2 + CAPABILITIES_LEN;

/// Compression codec bits in [`Capabilities::compression`].
pub mod codecs {
    /// LZ4 block compression.
    pub const LZ4: u8 = 0b01;
    /// Zstandard.
    pub const ZSTD: u8 = 0b10;
}

/// What a peer offers, and after the handshake what both agreed on.
///
/// Wire form (10 bytes): `version u8 | compression u8 | max_frame u32 BE |
/// features u32 BE`. Trailing bytes after these are ignored (room for later
/// fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Protocol version (1).
    pub version: u8,
    /// Largest message the peer accepts.
    pub max_frame: u32,
    /// Codec bits ([`codecs`]).
    pub compression: u8,
    /// Feature bits, defined by the layers above.
    pub features: u32,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            version: PROTOCOL_VERSION,
            max_frame: 16 * 1024 * 1024,
            compression: codecs::LZ4 | codecs::ZSTD,
            features: 0,
        }
    }
}

impl Capabilities {
    /// Appends the 10-byte wire form.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.version);
        out.push(self.compression);
        out.extend_from_slice(&self.max_frame.to_be_bytes());
        out.extend_from_slice(&self.features.to_be_bytes());
    }

    /// Reads the wire form (trailing bytes ignored). Any version from 1 up
    /// is accepted: it is the highest the peer speaks, and
    /// [`Capabilities::intersect`] settles on the lower one.
    ///
    /// # Errors
    /// [`CryptoError::BadPayload`] when truncated, of version 0, or with a
    /// message limit below [`MIN_MESSAGE_LIMIT`].
    pub fn decode(src: &[u8]) -> Result<Self> {
        let b = src
            .get(..CAPABILITIES_LEN)
            .ok_or(CryptoError::BadPayload("capabilities truncated"))?;
        let caps = Self {
            version: b[0],
            compression: b[1],
            max_frame: u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
            features: u32::from_be_bytes([b[6], b[7], b[8], b[9]]),
        };
        // A peer announces the highest version it speaks; both then use
        // the lower of the two (`intersect`), so a later version can still
        // talk to this one. Version 0 never existed.
        if caps.version == 0 {
            return Err(CryptoError::BadPayload("protocol version 0"));
        }
        if caps.max_frame < MIN_MESSAGE_LIMIT {
            return Err(CryptoError::BadPayload("message limit below 1024 bytes"));
        }
        Ok(caps)
    }

    /// What both sides support.
    #[must_use]
    pub fn intersect(&self, other: &Self) -> Self {
        Self {
            version: self.version.min(other.version),
            max_frame: self.max_frame.min(other.max_frame),
            compression: self.compression & other.compression,
            features: self.features & other.features,
        }
    }
}

/// Everything a handshake needs besides the peer.
#[derive(Clone)]
#[non_exhaustive]
pub struct HandshakeConfig {
    /// The pattern (default XX).
    pub pattern: Pattern,
    /// The cipher function: an initiator's choice (default: with `std`,
    /// [`CipherSuite::preferred`], the faster one on this CPU; without,
    /// ChaChaPoly); a responder starts with it and follows the initiator's
    /// through [`Handshake::select_cipher`].
    pub cipher: CipherSuite,
    /// The cipher functions a responder accepts (default all).
    pub accepted_ciphers: CipherSet,
    /// The transport label bound into the prologue (`"tcp"`, `"uds"`, `"tls"`,
    /// `"udp"`, …); both sides must use the same one.
    pub transport: String,
    /// Our static key (required except for an NK initiator).
    pub local_key: Option<Keypair>,
    /// The responder's key: required for an initiator of XK, IK and NK; for
    /// XX, if set, the responder must present exactly this key.
    pub remote_key: Option<PublicKey>,
    /// What we offer.
    pub capabilities: Capabilities,
    /// Who we accept.
    pub verifier: Arc<dyn PeerVerifier>,
    /// The name we dialled (initiators), for trust-on-first-use.
    pub host: Option<String>,
}

impl core::fmt::Debug for HandshakeConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HandshakeConfig")
            .field("pattern", &self.pattern)
            .field("cipher", &self.cipher)
            .field("accepted_ciphers", &self.accepted_ciphers)
            .field("transport", &self.transport)
            .field("local_key", &self.local_key)
            .field("remote_key", &self.remote_key)
            .field("capabilities", &self.capabilities)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl HandshakeConfig {
    /// XX over `"tcp"` with default capabilities and the default cipher
    /// (see [`HandshakeConfig::cipher`]); every cipher accepted.
    pub fn new(local_key: Option<Keypair>, verifier: Arc<dyn PeerVerifier>) -> Self {
        #[cfg(feature = "std")]
        let cipher = CipherSuite::preferred();
        #[cfg(not(feature = "std"))]
        let cipher = CipherSuite::ChaChaPoly;
        Self {
            pattern: Pattern::XX,
            cipher,
            accepted_ciphers: CipherSet::ALL,
            transport: String::from("tcp"),
            local_key,
            remote_key: None,
            capabilities: Capabilities::default(),
            verifier,
            host: None,
        }
    }

    /// Sets the pattern.
    #[must_use]
    pub fn with_pattern(mut self, pattern: Pattern) -> Self {
        self.pattern = pattern;
        self
    }

    /// Sets the cipher function (an initiator's choice).
    #[must_use]
    pub fn with_cipher(mut self, cipher: CipherSuite) -> Self {
        self.cipher = cipher;
        self
    }

    /// Sets the cipher functions a responder accepts.
    #[must_use]
    pub fn with_accepted_ciphers(mut self, accepted: CipherSet) -> Self {
        self.accepted_ciphers = accepted;
        self
    }

    /// Sets the responder key an initiator expects (XK, IK, NK).
    #[must_use]
    pub fn with_remote_key(mut self, key: PublicKey) -> Self {
        self.remote_key = Some(key);
        self
    }

    /// Sets the transport label bound into the prologue.
    #[must_use]
    pub fn with_transport(mut self, transport: &str) -> Self {
        self.transport = String::from(transport);
        self
    }

    /// Sets the dialled host name.
    #[must_use]
    pub fn with_host(mut self, host: &str) -> Self {
        self.host = Some(String::from(host));
        self
    }

    /// Sets the offered capabilities.
    #[must_use]
    pub fn with_capabilities(mut self, caps: Capabilities) -> Self {
        self.capabilities = caps;
        self
    }

    /// The prologue: `"netproto/1" 0x00 | pattern code | transport_len u8 | transport`.
    pub fn prologue(&self) -> Vec<u8> {
        let t = self.transport.as_bytes();
        let t = &t[..t.len().min(255)];
        let mut p = Vec::with_capacity(14 + t.len());
        p.extend_from_slice(b"netproto/1\0");
        p.push(self.pattern.code());
        #[allow(clippy::cast_possible_truncation)] // at most 255 by the slice above
        p.push(t.len() as u8);
        p.extend_from_slice(t);
        p
    }
}

/// The session keys and facts of a finished handshake.
pub struct Established {
    /// Key for what we send.
    pub send_key: Zeroizing<[u8; KEY_LEN]>,
    /// Key for what we receive.
    pub recv_key: Zeroizing<[u8; KEY_LEN]>,
    /// The Noise handshake hash: identical on both sides, unique per session
    /// (use it for channel binding).
    pub handshake_hash: [u8; HASH_LEN],
    /// The peer's verified static key (`None` for an anonymous NK initiator).
    pub peer: Option<PublicKey>,
    /// What both sides agreed on.
    pub negotiated: Capabilities,
    /// What the peer offered (for example its own message limit, which is
    /// what we may send up to).
    pub peer_capabilities: Capabilities,
    /// The pattern used.
    pub pattern: Pattern,
    /// The cipher function of the session keys.
    pub suite: CipherSuite,
    /// Whether we were the initiator.
    pub initiator: bool,
}

impl core::fmt::Debug for Established {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Established")
            .field("peer", &self.peer)
            .field("negotiated", &self.negotiated)
            .field("pattern", &self.pattern)
            .field("suite", &self.suite)
            .field("initiator", &self.initiator)
            .finish_non_exhaustive()
    }
}

/// A netproto handshake in progress. See the module docs.
pub struct Handshake {
    noise: HandshakeState,
    cfg: HandshakeConfig,
    initiator: bool,
    peer_caps: Option<Capabilities>,
    verified: bool,
}

impl Handshake {
    /// Starts as the initiator (client).
    ///
    /// # Errors
    /// [`CryptoError::MissingKey`] if the pattern needs a key not configured.
    pub fn initiator(cfg: HandshakeConfig) -> Result<Self> {
        Self::start(cfg, true)
    }

    /// Starts as the responder (server).
    ///
    /// # Errors
    /// [`CryptoError::MissingKey`] without a local static key.
    pub fn responder(cfg: HandshakeConfig) -> Result<Self> {
        Self::start(cfg, false)
    }

    fn start(cfg: HandshakeConfig, initiator: bool) -> Result<Self> {
        if !initiator && !cfg.accepted_ciphers.contains(cfg.cipher) {
            // Start with an accepted suite; the initiator's choice replaces
            // it before message 1 is read.
            let first = cfg.accepted_ciphers.iter().next();
            let cipher = first.ok_or(CryptoError::CipherRefused(cfg.cipher))?;
            return Self::start(cfg.with_cipher(cipher), initiator);
        }
        let noise = Self::noise_state(&cfg, initiator)?;
        Ok(Self {
            noise,
            cfg,
            initiator,
            peer_caps: None,
            verified: false,
        })
    }

    fn noise_state(cfg: &HandshakeConfig, initiator: bool) -> Result<HandshakeState> {
        let remote = if initiator { cfg.remote_key } else { None };
        HandshakeState::new(
            cfg.pattern,
            cfg.cipher,
            initiator,
            &cfg.prologue(),
            cfg.local_key.clone(),
            remote,
        )
    }

    /// The cipher function of this handshake.
    pub const fn cipher(&self) -> CipherSuite {
        self.noise.suite()
    }

    /// A responder's answer to the cipher function the initiator named
    /// (outside the Noise message, where the carrier puts it): switches to
    /// it if accepted. Only before message 1 is read. The choice needs no
    /// authentication of its own: the protocol name is hashed into the
    /// handshake first thing, so a changed choice fails the handshake.
    ///
    /// # Errors
    /// [`CryptoError::CipherRefused`] if not in
    /// [`HandshakeConfig::accepted_ciphers`]; [`CryptoError::OutOfOrder`]
    /// for an initiator or once message 1 was read.
    pub fn select_cipher(&mut self, suite: CipherSuite) -> Result<()> {
        if self.initiator || self.noise.message_index() != 0 {
            return Err(CryptoError::OutOfOrder(
                "only a responder chooses the cipher, before message 1",
            ));
        }
        if !self.cfg.accepted_ciphers.contains(suite) {
            return Err(CryptoError::CipherRefused(suite));
        }
        if suite != self.noise.suite() {
            self.cfg.cipher = suite;
            self.noise = Self::noise_state(&self.cfg, false)?;
        }
        Ok(())
    }

    /// Whether the next step is [`Handshake::write_message`].
    pub const fn is_my_turn(&self) -> bool {
        self.noise.is_my_turn()
    }

    /// Whether all messages have been exchanged.
    pub const fn is_finished(&self) -> bool {
        self.noise.is_finished()
    }

    /// The message this side sends its capabilities in.
    fn caps_message(&self, initiator: bool) -> usize {
        match (initiator, self.cfg.pattern) {
            (false, _) => 1,
            // XX's first message is not encrypted: the initiator's offer waits
            // for the third.
            (true, Pattern::XX) => 2,
            (true, _) => 0,
        }
    }

    /// The responder's message length: the initiation must be at least this long.
    fn response_len(&self) -> usize {
        self.cfg.pattern.message_len(1, RESPONSE_PAYLOAD_LEN)
    }

    /// Writes the next message into `out` (appended). `now_unix` is the
    /// current Unix time; only an IK initiation uses it.
    ///
    /// # Errors
    /// [`CryptoError::OutOfOrder`] and the errors of the Noise layer.
    pub fn write_message<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now_unix: Duration,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let index = self.noise.message_index();
        let mut content = Vec::with_capacity(TAI64N_LEN + CAPABILITIES_LEN);
        if index == 0 && self.cfg.pattern == Pattern::IK {
            content.extend_from_slice(&tai64n(now_unix));
        }
        if index == self.caps_message(self.initiator) {
            self.cfg.capabilities.encode(&mut content);
        }
        let mut payload = Vec::with_capacity(2 + content.len());
        #[allow(clippy::cast_possible_truncation)] // at most 22 bytes
        payload.extend_from_slice(&(content.len() as u16).to_be_bytes());
        payload.extend_from_slice(&content);
        if index == 0 {
            let bare = self.cfg.pattern.message_len(0, payload.len());
            payload.resize(payload.len() + self.response_len().saturating_sub(bare), 0);
        }
        self.noise.write_message(rng, &payload, out)
    }

    /// Reads the peer's next message.
    ///
    /// An IK responder must pass its [`TimestampGuard`] (shared by all
    /// handshakes of the listener); everyone else passes `None`.
    ///
    /// # Errors
    /// [`CryptoError::InitiationTooShort`] (before any DH work),
    /// [`CryptoError::BadMessageLength`], [`CryptoError::Decrypt`],
    /// [`CryptoError::PeerRejected`], [`CryptoError::ReplayedInitiation`],
    /// [`CryptoError::ReplayGuardRequired`], [`CryptoError::BadPayload`].
    pub fn read_message(
        &mut self,
        message: &[u8],
        guard: Option<&mut TimestampGuard>,
    ) -> Result<()> {
        match guard {
            Some(g) => self.read_message_with(message, Some(g)),
            None => self.read_message_with(message, None),
        }
    }

    /// As [`Handshake::read_message`], with any [`ReplayCheck`] (a guard
    /// shared behind a lock takes the lock only for the check, after the
    /// key agreement).
    ///
    /// # Errors
    /// As [`Handshake::read_message`].
    pub fn read_message_with(
        &mut self,
        message: &[u8],
        guard: Option<&mut dyn ReplayCheck>,
    ) -> Result<()> {
        let index = self.noise.message_index();
        if index == 0 && !self.initiator {
            if message.len() < self.response_len() {
                return Err(CryptoError::InitiationTooShort {
                    len: message.len(),
                    response: self.response_len(),
                });
            }
            if self.cfg.pattern == Pattern::IK && guard.is_none() {
                return Err(CryptoError::ReplayGuardRequired);
            }
        }
        let mut payload = Vec::new();
        self.noise.read_message(message, &mut payload)?;
        let content = parse_payload(&payload)?;
        let mut rest = content;
        let mut stamp = None;
        if index == 0 && self.cfg.pattern == Pattern::IK {
            let (ts, tail) = rest
                .split_first_chunk::<TAI64N_LEN>()
                .ok_or(CryptoError::BadPayload("IK initiation without timestamp"))?;
            stamp = Some(*ts);
            rest = tail;
        }
        if index == self.caps_message(!self.initiator) {
            self.peer_caps = Some(Capabilities::decode(rest)?);
        }
        self.verify_if_due(index)?;
        if let (Some(stamp), Some(guard)) = (stamp, guard) {
            let peer = self
                .noise
                .remote_static()
                .ok_or(CryptoError::MissingKey("initiator key"))?;
            guard.check_and_update(peer, stamp)?;
        }
        Ok(())
    }

    /// Runs the verifier once the peer's identity is known (or known to be absent).
    fn verify_if_due(&mut self, read_index: usize) -> Result<()> {
        if self.verified {
            return Ok(());
        }
        let due = if self.initiator {
            // The responder's key is proven once its first message decrypts.
            read_index == 1
        } else {
            match self.cfg.pattern {
                Pattern::IK | Pattern::NK => read_index == 0,
                _ => read_index == 2,
            }
        };
        if !due {
            return Ok(());
        }
        let info = PeerInfo {
            key: self.noise.remote_static(),
            host: self.cfg.host.as_deref(),
        };
        // XX does not need the responder's key in advance, but an initiator
        // that was given one expects exactly that key.
        if let (true, Some(expected), Some(got)) = (self.initiator, self.cfg.remote_key, info.key) {
            if expected != *got {
                let reason = crate::verifier::Rejection::NotPinned {
                    fingerprint: got.fingerprint(),
                };
                tracing::warn!(%reason, "handshake peer rejected");
                return Err(reason.into());
            }
        }
        if let Err(reason) = self.cfg.verifier.verify(&info) {
            tracing::warn!(
                peer = info.key.map(PublicKey::fingerprint).as_deref().unwrap_or("anonymous"),
                %reason,
                "handshake peer rejected"
            );
            return Err(reason.into());
        }
        self.verified = true;
        Ok(())
    }

    /// The keys and facts of the finished handshake.
    ///
    /// # Errors
    /// [`CryptoError::OutOfOrder`] if messages remain.
    pub fn finish(self) -> Result<Established> {
        if !self.verified {
            return Err(CryptoError::OutOfOrder("peer not verified"));
        }
        let peer_caps = self
            .peer_caps
            .ok_or(CryptoError::BadPayload("peer sent no capabilities"))?;
        let negotiated = self.cfg.capabilities.intersect(&peer_caps);
        let pattern = self.cfg.pattern;
        let keys = self.noise.into_transport()?;
        let suite = keys.suite;
        let (send_key, recv_key) = if self.initiator {
            (keys.initiator_to_responder, keys.responder_to_initiator)
        } else {
            (keys.responder_to_initiator, keys.initiator_to_responder)
        };
        Ok(Established {
            send_key,
            recv_key,
            handshake_hash: keys.handshake_hash,
            peer: keys.remote_static,
            negotiated,
            peer_capabilities: peer_caps,
            pattern,
            suite,
            initiator: self.initiator,
        })
    }
}

fn parse_payload(payload: &[u8]) -> Result<&[u8]> {
    let (len, rest) = payload
        .split_first_chunk::<2>()
        .ok_or(CryptoError::BadPayload(
            "payload shorter than its length prefix",
        ))?;
    rest.get(..usize::from(u16::from_be_bytes(*len)))
        .ok_or(CryptoError::BadPayload("payload length exceeds message"))
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
