//! A Noise Protocol Framework (revision 34) handshake for the four patterns
//! netproto uses, with `25519`, `ChaChaPoly` or `AESGCM`, and `SHA256`.
//!
//! This is the raw layer: arbitrary prologue and payloads, as in the Noise spec
//! and the cacophony test vectors. [`crate::Handshake`] builds netproto's
//! handshake (prologue, negotiation, padding, peer verification) on top of it.

use alloc::vec::Vec;
use rand_core::{CryptoRng, RngCore};
use x25519_dalek::{PublicKey as DalekPublic, StaticSecret};
use zeroize::Zeroizing;

use crate::cipher::CipherSuite;
use crate::error::{CryptoError, Result};
use crate::keys::{Keypair, PublicKey};
use crate::primitives::{dh, DH_LEN, HASH_LEN, KEY_LEN, MAX_MESSAGE_LEN, TAG_LEN};
use crate::symmetric::SymmetricState;

/// The handshake patterns netproto supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pattern {
    /// Mutual authentication, nobody knows anything in advance (the default).
    XX,
    /// The initiator knows the responder's key; hides the initiator's identity best.
    XK,
    /// The initiator knows the responder's key and sends its identity at once
    /// (one round trip); needs a timestamp against replays.
    IK,
    /// The initiator knows the responder's key and stays anonymous.
    NK,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    E,
    S,
    EE,
    ES,
    SE,
    SS,
}

use Token::{E, EE, ES, S, SE, SS};

impl Pattern {
    /// The full Noise protocol name with `suite`'s cipher function.
    pub const fn protocol_name(self, suite: CipherSuite) -> &'static str {
        match (self, suite) {
            (Self::XX, CipherSuite::ChaChaPoly) => "Noise_XX_25519_ChaChaPoly_SHA256",
            (Self::XK, CipherSuite::ChaChaPoly) => "Noise_XK_25519_ChaChaPoly_SHA256",
            (Self::IK, CipherSuite::ChaChaPoly) => "Noise_IK_25519_ChaChaPoly_SHA256",
            (Self::NK, CipherSuite::ChaChaPoly) => "Noise_NK_25519_ChaChaPoly_SHA256",
            (Self::XX, CipherSuite::AesGcm) => "Noise_XX_25519_AESGCM_SHA256",
            (Self::XK, CipherSuite::AesGcm) => "Noise_XK_25519_AESGCM_SHA256",
            (Self::IK, CipherSuite::AesGcm) => "Noise_IK_25519_AESGCM_SHA256",
            (Self::NK, CipherSuite::AesGcm) => "Noise_NK_25519_AESGCM_SHA256",
        }
    }

    /// Short name (`"XX"`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Self::XX => "XX",
            Self::XK => "XK",
            Self::IK => "IK",
            Self::NK => "NK",
        }
    }

    /// A stable one-byte code (used in netproto's prologue).
    pub const fn code(self) -> u8 {
        match self {
            Self::XX => 1,
            Self::XK => 2,
            Self::IK => 3,
            Self::NK => 4,
        }
    }

    const fn messages(self) -> &'static [&'static [Token]] {
        match self {
            Self::XX => &[&[E], &[E, EE, S, ES], &[S, SE]],
            Self::XK => &[&[E, ES], &[E, EE], &[S, SE]],
            Self::IK => &[&[E, ES, S, SS], &[E, EE, SE]],
            Self::NK => &[&[E, ES], &[E, EE]],
        }
    }

    /// Number of handshake messages (2 or 3).
    pub const fn message_count(self) -> usize {
        self.messages().len()
    }

    /// Whether the initiator must know the responder's static key beforehand
    /// (the `<- s` pre-message).
    pub const fn responder_key_known(self) -> bool {
        !matches!(self, Self::XX)
    }

    /// Whether the initiator has (and sends) a static key.
    pub const fn initiator_has_static(self) -> bool {
        !matches!(self, Self::NK)
    }

    /// Length of message `index` for a payload of `payload_len` bytes.
    pub fn message_len(self, index: usize, payload_len: usize) -> usize {
        let mut has_key = self.key_before(index);
        let mut len = 0;
        for token in self.messages().get(index).copied().unwrap_or_default() {
            match token {
                E => len += DH_LEN,
                S => len += DH_LEN + if has_key { TAG_LEN } else { 0 },
                _ => has_key = true,
            }
        }
        len + payload_len + if has_key { TAG_LEN } else { 0 }
    }

    fn key_before(self, index: usize) -> bool {
        self.messages()
            .iter()
            .take(index)
            .flat_map(|m| m.iter())
            .any(|t| !matches!(t, E | S))
    }
}

/// The keys a finished handshake yields.
pub struct TransportKeys {
    /// Key for messages from initiator to responder.
    pub initiator_to_responder: Zeroizing<[u8; KEY_LEN]>,
    /// Key for messages from responder to initiator.
    pub responder_to_initiator: Zeroizing<[u8; KEY_LEN]>,
    /// The handshake hash (for channel binding).
    pub handshake_hash: [u8; HASH_LEN],
    /// The peer's static key, if the pattern transmitted or pre-shared one.
    pub remote_static: Option<PublicKey>,
    /// The cipher function both keys are for.
    pub suite: CipherSuite,
}

/// A Noise handshake in progress.
pub struct HandshakeState {
    pattern: Pattern,
    initiator: bool,
    symmetric: SymmetricState,
    s: Option<Keypair>,
    e: Option<Keypair>,
    rs: Option<PublicKey>,
    re: Option<[u8; DH_LEN]>,
    index: usize,
}

impl HandshakeState {
    /// The tokens of the current message (none once the pattern is done).
    fn tokens(&self) -> &'static [Token] {
        self.pattern
            .messages()
            .get(self.index)
            .copied()
            .unwrap_or_default()
    }

    /// Starts a handshake of `pattern` with `suite`'s cipher function.
    ///
    /// `local` is our static key (required unless we are an NK initiator);
    /// `remote` the responder's static key (required for an initiator of XK,
    /// IK and NK).
    ///
    /// # Errors
    /// [`CryptoError::MissingKey`].
    pub fn new(
        pattern: Pattern,
        suite: CipherSuite,
        initiator: bool,
        prologue: &[u8],
        local: Option<Keypair>,
        remote: Option<PublicKey>,
    ) -> Result<Self> {
        let needs_local = !initiator || pattern.initiator_has_static();
        if needs_local && local.is_none() {
            return Err(CryptoError::MissingKey("our static key"));
        }
        let mut symmetric = SymmetricState::new(pattern.protocol_name(suite), suite);
        symmetric.mix_hash(prologue);
        let mut rs = None;
        if pattern.responder_key_known() {
            // The `<- s` pre-message: both sides hash the responder's key.
            let responder_key = if initiator {
                remote.ok_or(CryptoError::MissingKey("the responder's public key"))?
            } else {
                *local
                    .as_ref()
                    .ok_or(CryptoError::MissingKey("our static key"))?
                    .public()
            };
            symmetric.mix_hash(responder_key.as_bytes());
            if initiator {
                rs = Some(responder_key);
            }
        }
        Ok(Self {
            pattern,
            initiator,
            symmetric,
            s: if needs_local { local } else { None },
            e: None,
            rs,
            re: None,
            index: 0,
        })
    }

    /// The pattern.
    pub const fn pattern(&self) -> Pattern {
        self.pattern
    }

    /// The cipher function.
    pub const fn suite(&self) -> CipherSuite {
        self.symmetric.suite()
    }

    /// Whether the next step is ours to write.
    pub const fn is_my_turn(&self) -> bool {
        self.index.is_multiple_of(2) == self.initiator
    }

    /// Whether all messages have been exchanged.
    pub const fn is_finished(&self) -> bool {
        self.index >= self.pattern.message_count()
    }

    /// Index of the next message (0-based).
    pub const fn message_index(&self) -> usize {
        self.index
    }

    /// The running handshake hash.
    pub const fn handshake_hash(&self) -> &[u8; HASH_LEN] {
        self.symmetric.handshake_hash()
    }

    /// The peer's static key once known.
    pub const fn remote_static(&self) -> Option<&PublicKey> {
        self.rs.as_ref()
    }

    /// Whether the payload of the next message will be encrypted.
    pub fn next_payload_encrypted(&self) -> bool {
        self.symmetric.has_key()
            || self
                .pattern
                .messages()
                .get(self.index)
                .is_some_and(|m| m.iter().any(|t| !matches!(t, E | S)))
    }

    fn local_dh(&self, ours_static: bool, theirs_static: bool) -> Result<Zeroizing<[u8; DH_LEN]>> {
        let ours = if ours_static { &self.s } else { &self.e };
        let ours = ours
            .as_ref()
            .ok_or(CryptoError::MissingKey("local key for DH"))?;
        let theirs = if theirs_static {
            self.rs.as_ref().map(|k| *k.as_bytes())
        } else {
            self.re
        };
        let theirs = theirs.ok_or(CryptoError::MissingKey("remote key for DH"))?;
        dh(ours.secret(), &theirs)
    }

    fn mix_dh(&mut self, token: Token) -> Result<()> {
        // Which of our keys meets which of theirs, from our point of view.
        let (ours_static, theirs_static) = match (token, self.initiator) {
            (EE, _) => (false, false),
            (SS, _) => (true, true),
            (ES, true) | (SE, false) => (false, true),
            (ES, false) | (SE, true) => (true, false),
            (E | S, _) => return Ok(()),
        };
        let shared = self.local_dh(ours_static, theirs_static)?;
        self.symmetric.mix_key(&shared[..]);
        Ok(())
    }

    /// Writes the next message with `payload`, appending it to `out`.
    ///
    /// # Errors
    /// [`CryptoError::OutOfOrder`], [`CryptoError::TooLong`], DH errors.
    pub fn write_message<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        if self.is_finished() || !self.is_my_turn() {
            return Err(CryptoError::OutOfOrder("not our turn to write"));
        }
        let expected = self.pattern.message_len(self.index, payload.len());
        if expected > MAX_MESSAGE_LEN {
            return Err(CryptoError::TooLong { len: expected });
        }
        let start = out.len();
        let tokens = self.tokens();
        let result = (|| {
            for &token in tokens {
                match token {
                    E => {
                        let e = Keypair::generate(rng);
                        out.extend_from_slice(e.public().as_bytes());
                        self.symmetric.mix_hash(e.public().as_bytes());
                        self.e = Some(e);
                    }
                    S => {
                        let s = *self
                            .s
                            .as_ref()
                            .ok_or(CryptoError::MissingKey("our static key"))?
                            .public();
                        self.symmetric.encrypt_and_hash(s.as_bytes(), out)?;
                    }
                    dh_token => self.mix_dh(dh_token)?,
                }
            }
            self.symmetric.encrypt_and_hash(payload, out)
        })();
        if result.is_err() {
            out.truncate(start);
        }
        result?;
        self.index += 1;
        Ok(())
    }

    /// Reads the next message, appending its payload to `payload_out`.
    ///
    /// The length is checked against the pattern before anything else.
    ///
    /// # Errors
    /// [`CryptoError::BadMessageLength`], [`CryptoError::Decrypt`],
    /// [`CryptoError::LowOrderPoint`], [`CryptoError::OutOfOrder`].
    pub fn read_message(&mut self, message: &[u8], payload_out: &mut Vec<u8>) -> Result<()> {
        if self.is_finished() || self.is_my_turn() {
            return Err(CryptoError::OutOfOrder("not our turn to read"));
        }
        let min = self.pattern.message_len(self.index, 0);
        if message.len() < min || message.len() > MAX_MESSAGE_LEN {
            return Err(CryptoError::BadMessageLength {
                len: message.len(),
                min,
                max: MAX_MESSAGE_LEN,
            });
        }
        let tokens = self.tokens();
        let mut rest = message;
        for &token in tokens {
            match token {
                E => {
                    let (re, tail) = rest
                        .split_first_chunk::<DH_LEN>()
                        .ok_or(CryptoError::Decrypt)?;
                    self.symmetric.mix_hash(re);
                    self.re = Some(*re);
                    rest = tail;
                }
                S => {
                    let len = DH_LEN + if self.symmetric.has_key() { TAG_LEN } else { 0 };
                    let (enc, tail) = rest.split_at_checked(len).ok_or(CryptoError::Decrypt)?;
                    let mut key = Vec::with_capacity(DH_LEN);
                    self.symmetric.decrypt_and_hash(enc, &mut key)?;
                    let key: [u8; DH_LEN] = key
                        .as_slice()
                        .try_into()
                        .map_err(|_| CryptoError::Decrypt)?;
                    self.rs = Some(PublicKey::from_bytes(key));
                    rest = tail;
                }
                dh_token => self.mix_dh(dh_token)?,
            }
        }
        self.symmetric.decrypt_and_hash(rest, payload_out)?;
        self.index += 1;
        Ok(())
    }

    /// Finishes the handshake (Noise `Split()`).
    ///
    /// # Errors
    /// [`CryptoError::OutOfOrder`] if messages remain.
    pub fn into_transport(self) -> Result<TransportKeys> {
        if !self.is_finished() {
            return Err(CryptoError::OutOfOrder("handshake not finished"));
        }
        let (i2r, r2i) = self.symmetric.split();
        Ok(TransportKeys {
            initiator_to_responder: i2r,
            responder_to_initiator: r2i,
            handshake_hash: *self.symmetric.handshake_hash(),
            remote_static: self.rs,
            suite: self.symmetric.suite(),
        })
    }
}

/// Derives the public key bytes of a raw private key (for tests and tools).
pub fn public_from_secret(secret: [u8; DH_LEN]) -> PublicKey {
    PublicKey::from_bytes(DalekPublic::from(&StaticSecret::from(secret)).to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_lengths() {
        // XX: -> e | <- e, ee, s, es | -> s, se
        assert_eq!(Pattern::XX.message_len(0, 0), 32);
        assert_eq!(Pattern::XX.message_len(1, 0), 32 + 48 + 16);
        assert_eq!(Pattern::XX.message_len(2, 0), 48 + 16);
        // IK: -> e, es, s, ss | <- e, ee, se
        assert_eq!(Pattern::IK.message_len(0, 0), 32 + 48 + 16);
        assert_eq!(Pattern::IK.message_len(1, 0), 32 + 16);
        assert_eq!(Pattern::NK.message_len(0, 5), 32 + 5 + 16);
        assert_eq!(Pattern::XK.message_len(2, 0), 48 + 16);
    }
}
