//! Encrypted sessions after the handshake.
//!
//! One key per direction, the handshake's cipher function
//! ([`CipherSuite`]: ChaCha20-Poly1305 with the nonce `0^32 || LE64(counter)`
//! or AES-256-GCM with `0^32 || BE64(counter)`), records of at most 65535
//! bytes including the tag, sealed and opened in place on the caller's
//! buffer.
//!
//! * **Stream** records have an implicit counter that must advance by one:
//!   any failure is fatal to the session (a stream cannot lose or reorder).
//! * **Datagram** records carry their counter; an RFC 6479 window refuses
//!   replays, updated only after a record authenticated.
//!
//! **Rekeying** (Noise §11.3 `REKEY`): the sender replaces its key with
//! `ENCRYPT(k, 2^64−1, "", 0^32)` after a message, byte or time budget and
//! flips the **key phase** bit that travels in the authenticated packet or
//! datagram header. As in Noise, the counter is *not* reset, so counters never
//! repeat within a session and one replay window covers every key. The
//! receiver follows the phase; for datagrams it keeps the previous key for
//! late arrivals and only switches after a record under the new key
//! authenticated. On datagrams, records under a key older than
//! `reject_after_time` are refused; streams have no receive-side age check
//! (records may wait in socket buffers; the strict counter already rules out
//! replays).
//!
//! Known limit: the key phase is one bit. If every datagram sealed under one
//! key generation is lost, the receiver cannot follow two rekeys at once and
//! the session must be replaced by a new handshake. Streams lose nothing, so
//! this cannot happen there (as long as [`Sender::force_rekey`] is not called
//! between a reservation and its seal).

use core::time::Duration;
use zeroize::Zeroizing;

use crate::cipher::CipherSuite;
use crate::error::{CryptoError, Result};
use crate::handshake::Established;
use crate::primitives::{KEY_LEN, MAX_MESSAGE_LEN, TAG_LEN};
use crate::replay::ReplayWindow;

/// Longest plaintext in one record.
pub const MAX_PLAINTEXT: usize = MAX_MESSAGE_LEN - TAG_LEN;

/// Whether records are ordered (stream) or carry their own counter (datagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// TCP, Unix sockets, TLS: strict in-order counters.
    Stream,
    /// UDP: explicit counters and a replay window.
    Datagram,
}

/// When keys are replaced. Defaults follow WireGuard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RekeyPolicy {
    /// Rekey after this many records (default 2^60).
    pub after_messages: u64,
    /// Rekey after this many plaintext bytes (default 2^60; AES-GCM keys
    /// are replaced after 2^38 bytes whatever this says, see
    /// [`crate::CipherSuite::bytes_per_key`]).
    pub after_bytes: u64,
    /// Rekey when the key is this old (default 120 s).
    pub after_time: Duration,
    /// Refuse a key this old (default 180 s).
    pub reject_after_time: Duration,
}

impl Default for RekeyPolicy {
    fn default() -> Self {
        Self {
            after_messages: 1 << 60,
            after_bytes: 1 << 60,
            after_time: Duration::from_mins(2),
            reject_after_time: Duration::from_mins(3),
        }
    }
}

struct Key {
    suite: CipherSuite,
    k: Zeroizing<[u8; KEY_LEN]>,
    /// Records sealed or opened under this key.
    messages: u64,
    bytes: u64,
    phase: bool,
    generation: u64,
    created: Duration,
}

impl Key {
    fn new(suite: CipherSuite, k: Zeroizing<[u8; KEY_LEN]>, created: Duration) -> Self {
        Self {
            suite,
            k,
            messages: 0,
            bytes: 0,
            phase: false,
            generation: 0,
            created,
        }
    }

    /// Noise `REKEY(k)`: the first 32 bytes of encrypting 32 zero bytes under
    /// the reserved nonce 2^64 − 1.
    fn next(&self, now: Duration) -> Self {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        // Sealing 32 bytes cannot fail.
        let _ = self.suite.seal(&self.k, u64::MAX, &[], &mut k[..]);
        Self {
            suite: self.suite,
            k,
            messages: 0,
            bytes: 0,
            phase: !self.phase,
            generation: self.generation + 1,
            created: now,
        }
    }

    fn open(&self, counter: u64, ad: &[u8], record: &mut [u8]) -> Result<usize> {
        let len = record
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(CryptoError::Decrypt)?;
        let (body, tag) = record.split_at_mut(len);
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(tag);
        self.suite.open(&self.k, counter, ad, body, &t)?;
        Ok(len)
    }
}

/// The right to seal exactly one record with one counter and key phase.
/// Not `Clone`: a counter can be used once only.
#[derive(Debug)]
pub struct Reservation {
    counter: u64,
    phase: bool,
    generation: u64,
}

impl Reservation {
    /// The record counter (sent in datagram envelopes).
    pub const fn counter(&self) -> u64 {
        self.counter
    }

    /// The key phase bit to put in the header.
    pub const fn key_phase(&self) -> bool {
        self.phase
    }
}

/// The sending half of a session.
pub struct Sender {
    key: Key,
    n: u64,
    policy: RekeyPolicy,
}

impl Sender {
    /// Reserves the next counter, rekeying first if a budget is used up.
    /// Build the header with [`Reservation::key_phase`] (and, for datagrams,
    /// [`Reservation::counter`]), then call [`Sender::seal`].
    ///
    /// # Errors
    /// [`CryptoError::NonceExhausted`] if the counter space is used up.
    pub fn reserve(&mut self, now: Duration) -> Result<Reservation> {
        let k = &self.key;
        if k.messages >= self.policy.after_messages
            || k.bytes >= self.policy.after_bytes.min(k.suite.bytes_per_key())
            || now.saturating_sub(k.created) >= self.policy.after_time
        {
            self.key = self.key.next(now);
        }
        // 2^64 - 1 is reserved (Noise §5.1).
        if self.n == u64::MAX {
            return Err(CryptoError::NonceExhausted);
        }
        let r = Reservation {
            counter: self.n,
            phase: self.key.phase,
            generation: self.key.generation,
        };
        self.n += 1;
        self.key.messages += 1;
        Ok(r)
    }

    /// Encrypts `buf` in place under `ad` (the header, which must carry the
    /// reservation's key phase) and returns the tag to append.
    ///
    /// # Errors
    /// [`CryptoError::TooLong`] above [`MAX_PLAINTEXT`];
    /// [`CryptoError::OutOfOrder`] if the key changed since the reservation.
    // Taking the reservation by value is the point: it cannot be used twice.
    #[allow(clippy::needless_pass_by_value)]
    pub fn seal(&mut self, r: Reservation, ad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG_LEN]> {
        if buf.len() > MAX_PLAINTEXT {
            return Err(CryptoError::TooLong { len: buf.len() });
        }
        if r.generation != self.key.generation {
            return Err(CryptoError::OutOfOrder(
                "reservation made under an older key",
            ));
        }
        self.key.bytes = self.key.bytes.saturating_add(buf.len() as u64);
        let key = &self.key;
        key.suite.seal(&key.k, r.counter, ad, buf)
    }

    /// The current key phase.
    pub const fn key_phase(&self) -> bool {
        self.key.phase
    }

    /// Rekeys now, whatever the budgets say.
    pub fn force_rekey(&mut self, now: Duration) {
        self.key = self.key.next(now);
    }
}

/// The receiving half of a session.
pub struct Receiver {
    mode: Mode,
    /// Next expected counter (stream mode).
    n: u64,
    current: Key,
    window: ReplayWindow,
    previous: Option<Key>,
    policy: RekeyPolicy,
    failed: bool,
}

impl Receiver {
    /// Decrypts a record in place; returns the plaintext length (the plaintext
    /// is `record[..len]`).
    ///
    /// `counter` is ignored for stream sessions (the counter is implicit) and
    /// is the envelope's counter for datagram sessions. `ad` is the header
    /// the record was sealed with, `phase` its key phase bit.
    ///
    /// # Errors
    /// [`CryptoError::Decrypt`] (stream sessions then refuse everything with
    /// [`CryptoError::SessionFailed`]), [`CryptoError::Replayed`],
    /// [`CryptoError::KeyExpired`], [`CryptoError::TooLong`].
    pub fn open(
        &mut self,
        now: Duration,
        counter: u64,
        phase: bool,
        ad: &[u8],
        record: &mut [u8],
    ) -> Result<usize> {
        if self.failed {
            return Err(CryptoError::SessionFailed);
        }
        if record.len() > MAX_MESSAGE_LEN {
            return Err(CryptoError::TooLong { len: record.len() });
        }
        let result = match self.mode {
            Mode::Stream => self.open_stream(now, phase, ad, record),
            Mode::Datagram => self.open_datagram(now, counter, phase, ad, record),
        };
        if self.mode == Mode::Stream && result.is_err() {
            self.failed = true;
        }
        result
    }

    fn expired(&self, key: &Key, now: Duration) -> bool {
        now.saturating_sub(key.created) >= self.policy.reject_after_time
    }

    fn open_stream(
        &mut self,
        now: Duration,
        phase: bool,
        ad: &[u8],
        record: &mut [u8],
    ) -> Result<usize> {
        // No receive-side age check on streams: records may sit unread in
        // socket buffers for any time, the strict counter already rules out
        // replays, and the sender rekeys on its own clock.
        if phase != self.current.phase {
            self.current = self.current.next(now);
        }
        if self.n == u64::MAX {
            return Err(CryptoError::NonceExhausted);
        }
        let len = self.current.open(self.n, ad, record)?;
        self.n += 1;
        Ok(len)
    }

    fn open_datagram(
        &mut self,
        now: Duration,
        counter: u64,
        phase: bool,
        ad: &[u8],
        record: &mut [u8],
    ) -> Result<usize> {
        // Counters never repeat within a session, whatever the key, so one
        // window covers all keys; check it before spending any work.
        if counter == u64::MAX || !self.window.check(counter) {
            return Err(CryptoError::Replayed(counter));
        }
        let len = if phase == self.current.phase {
            if self.expired(&self.current, now) {
                return Err(CryptoError::KeyExpired);
            }
            self.current.open(counter, ad, record)?
        } else if let Some(len) = self.open_with_previous(now, counter, ad, record)? {
            len
        } else {
            // The first record under the peer's next key: authenticate
            // before switching.
            let next = self.current.next(now);
            let len = next.open(counter, ad, record)?;
            self.previous = Some(core::mem::replace(&mut self.current, next));
            len
        };
        self.window.update(counter);
        Ok(len)
    }

    /// A late record under the previous key. A failed attempt must leave
    /// `record` as it was for the next key to try, and not every backend
    /// guarantees that (ring overwrites the buffer on a bad tag), so the
    /// attempt works on a copy — only records in the other key phase, that
    /// is around a rekey, pay for it.
    fn open_with_previous(
        &self,
        now: Duration,
        counter: u64,
        ad: &[u8],
        record: &mut [u8],
    ) -> Result<Option<usize>> {
        let Some(prev) = self.previous.as_ref() else {
            return Ok(None);
        };
        if self.expired(prev, now) {
            return Ok(None);
        }
        let mut attempt = alloc::vec::Vec::new();
        attempt
            .try_reserve_exact(record.len())
            .map_err(|_| CryptoError::TooLong { len: record.len() })?;
        attempt.extend_from_slice(record);
        Ok(match prev.open(counter, ad, &mut attempt) {
            Ok(len) => {
                record.copy_from_slice(&attempt);
                Some(len)
            }
            Err(_) => None,
        })
    }
}

/// A whole session: both halves, plus what the handshake established.
pub struct Session {
    /// Sending half.
    pub sender: Sender,
    /// Receiving half.
    pub receiver: Receiver,
}

impl Session {
    /// Starts a session from a finished handshake at time `now`.
    pub fn new(established: &Established, mode: Mode, policy: RekeyPolicy, now: Duration) -> Self {
        Self::from_keys(
            established.suite,
            established.send_key.clone(),
            established.recv_key.clone(),
            mode,
            policy,
            now,
        )
    }

    /// Starts a session from raw keys for `suite` (for example from
    /// [`crate::noise::TransportKeys`] of a raw Noise handshake).
    pub fn from_keys(
        suite: CipherSuite,
        send_key: Zeroizing<[u8; KEY_LEN]>,
        recv_key: Zeroizing<[u8; KEY_LEN]>,
        mode: Mode,
        policy: RekeyPolicy,
        now: Duration,
    ) -> Self {
        Self {
            sender: Sender {
                key: Key::new(suite, send_key, now),
                n: 0,
                policy,
            },
            receiver: Receiver {
                mode,
                n: 0,
                current: Key::new(suite, recv_key, now),
                window: ReplayWindow::new(),
                previous: None,
                policy,
                failed: false,
            },
        }
    }

    /// Splits into halves for separate reader and writer tasks.
    pub fn split(self) -> (Sender, Receiver) {
        (self.sender, self.receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An AES-GCM key is replaced after 2^38 bytes even when the policy
    /// allows more; a ChaCha20 key at that point is not.
    #[test]
    fn aes_gcm_keys_are_replaced_within_their_byte_limit() {
        for (suite, rekeys) in [
            (CipherSuite::AesGcm, true),
            (CipherSuite::ChaChaPoly, false),
        ] {
            let key = || Zeroizing::new([7u8; KEY_LEN]);
            let mut s = Session::from_keys(
                suite,
                key(),
                key(),
                Mode::Stream,
                RekeyPolicy::default(),
                Duration::ZERO,
            );
            s.sender.key.bytes = 1 << 38;
            let r = s.sender.reserve(Duration::ZERO).unwrap();
            assert_eq!(r.key_phase(), rekeys, "{suite:?}");
        }
    }
}
