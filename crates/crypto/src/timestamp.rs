//! TAI64N timestamps in IK initiations and the per-peer replay guard, as
//! WireGuard uses them: a responder accepts an initiation from a peer only if
//! its timestamp is greater than every one seen from that peer before.

use alloc::collections::{BTreeMap, BTreeSet};
use core::time::Duration;

use crate::error::{CryptoError, Result};
use crate::keys::PublicKey;

/// Length of a TAI64N label.
pub const TAI64N_LEN: usize = 12;
/// TAI64 label of the Unix epoch: 2^62 + 10 (TAI−UTC at 1970).
const TAI64_EPOCH: u64 = 0x4000_0000_0000_000a;

/// Encodes Unix time as TAI64N: 8-byte big-endian seconds label, 4-byte
/// big-endian nanoseconds.
pub fn tai64n(unix: Duration) -> [u8; TAI64N_LEN] {
    let mut out = [0u8; TAI64N_LEN];
    out[..8].copy_from_slice(&TAI64_EPOCH.saturating_add(unix.as_secs()).to_be_bytes());
    out[8..].copy_from_slice(&unix.subsec_nanos().to_be_bytes());
    out
}

/// Checks an IK initiation's timestamp (see [`TimestampGuard`]); the
/// transport implements it for a guard behind a lock, taken only for the
/// check itself, not for the key agreement before it.
pub trait ReplayCheck {
    /// Accepts `stamp` from `peer` if newer than anything seen, and records
    /// it.
    ///
    /// # Errors
    /// As [`TimestampGuard::check_and_update`].
    fn check_and_update(&mut self, peer: &PublicKey, stamp: [u8; TAI64N_LEN]) -> Result<()>;
}

impl ReplayCheck for TimestampGuard {
    fn check_and_update(&mut self, peer: &PublicKey, stamp: [u8; TAI64N_LEN]) -> Result<()> {
        Self::check_and_update(self, peer, stamp)
    }
}

/// Remembers the greatest initiation timestamp per peer, in bounded memory.
///
/// When full, the peer with the oldest timestamp is forgotten and its
/// timestamp becomes a floor that every unknown peer's timestamp must exceed,
/// so forgetting never reopens a replay. Timestamps more than `max_skew`
/// ahead of the guard's clock are refused, so nobody can push the floor (or a
/// peer's entry) into the future and lock honest clients out; set the clock
/// with [`TimestampGuard::set_now`] before each check (a guard whose clock was
/// never set refuses everything).
#[derive(Debug, Clone)]
pub struct TimestampGuard {
    last: BTreeMap<[u8; 32], [u8; TAI64N_LEN]>,
    /// The same entries ordered by timestamp: the oldest is found without
    /// a scan (a full guard of 65,536 peers was scanned whole on every new
    /// peer, under the listener's lock).
    by_stamp: BTreeSet<([u8; TAI64N_LEN], [u8; 32])>,
    capacity: usize,
    floor: [u8; TAI64N_LEN],
    now: Option<Duration>,
    max_skew: Duration,
}

impl Default for TimestampGuard {
    fn default() -> Self {
        Self::new(65_536)
    }
}

impl TimestampGuard {
    /// A guard remembering at most `capacity` peers (at least 1), accepting
    /// clocks up to 30 s ahead of ours.
    pub fn new(capacity: usize) -> Self {
        Self {
            last: BTreeMap::new(),
            by_stamp: BTreeSet::new(),
            capacity: capacity.max(1),
            floor: [0; TAI64N_LEN],
            now: None,
            max_skew: Duration::from_secs(30),
        }
    }

    /// Sets how far ahead of our clock a peer's timestamp may be.
    #[must_use]
    pub fn with_max_skew(mut self, max_skew: Duration) -> Self {
        self.max_skew = max_skew;
        self
    }

    /// Tells the guard the current Unix time.
    pub fn set_now(&mut self, unix_now: Duration) {
        self.now = Some(unix_now);
    }

    /// Accepts `stamp` from `peer` if newer than anything seen and not from
    /// the future, and records it.
    ///
    /// # Errors
    /// [`CryptoError::ReplayedInitiation`] for an old or repeated stamp,
    /// [`CryptoError::TimestampInFuture`] for one beyond the allowed skew or
    /// when the clock was never set.
    pub fn check_and_update(&mut self, peer: &PublicKey, stamp: [u8; TAI64N_LEN]) -> Result<()> {
        let now = self.now.ok_or(CryptoError::TimestampInFuture)?;
        if stamp > tai64n(now.saturating_add(self.max_skew)) {
            return Err(CryptoError::TimestampInFuture);
        }
        let bound = self
            .last
            .get(peer.as_bytes())
            .copied()
            .unwrap_or(self.floor);
        if stamp <= bound {
            return Err(CryptoError::ReplayedInitiation);
        }
        if !self.last.contains_key(peer.as_bytes()) && self.last.len() >= self.capacity {
            if let Some((v, k)) = self.by_stamp.pop_first() {
                self.last.remove(&k);
                self.floor = self.floor.max(v);
            }
        }
        if let Some(old) = self.last.insert(*peer.as_bytes(), stamp) {
            self.by_stamp.remove(&(old, *peer.as_bytes()));
        }
        self.by_stamp.insert((stamp, *peer.as_bytes()));
        Ok(())
    }

    /// Peers remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no peer is remembered.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(b: u8) -> PublicKey {
        PublicKey::from_bytes([b; 32])
    }

    #[test]
    fn tai64n_layout() {
        let t = tai64n(Duration::new(1, 5));
        assert_eq!(t, [0x40, 0, 0, 0, 0, 0, 0, 0x0b, 0, 0, 0, 5]);
    }

    #[test]
    fn future_stamps_refused() {
        let mut g = TimestampGuard::new(2);
        let t = |s| tai64n(Duration::from_secs(s));
        assert_eq!(
            g.check_and_update(&peer(1), t(10)),
            Err(CryptoError::TimestampInFuture)
        );
        g.set_now(Duration::from_secs(100));
        assert_eq!(
            g.check_and_update(&peer(1), t(131)),
            Err(CryptoError::TimestampInFuture)
        );
        g.check_and_update(&peer(1), t(129)).unwrap();
    }

    #[test]
    fn replays_refused_and_memory_bounded() {
        let mut g = TimestampGuard::new(2);
        g.set_now(Duration::from_secs(1000));
        let t = |s| tai64n(Duration::from_secs(s));
        g.check_and_update(&peer(1), t(10)).unwrap();
        assert_eq!(
            g.check_and_update(&peer(1), t(10)),
            Err(CryptoError::ReplayedInitiation)
        );
        assert_eq!(
            g.check_and_update(&peer(1), t(9)),
            Err(CryptoError::ReplayedInitiation)
        );
        g.check_and_update(&peer(1), t(11)).unwrap();
        g.check_and_update(&peer(2), t(20)).unwrap();
        g.check_and_update(&peer(3), t(30)).unwrap(); // evicts peer 1 (11)
        assert_eq!(g.len(), 2);
        // Peer 1 is forgotten but its old initiation is still refused.
        assert_eq!(
            g.check_and_update(&peer(1), t(11)),
            Err(CryptoError::ReplayedInitiation)
        );
        g.check_and_update(&peer(1), t(12)).unwrap();
    }

    #[test]
    fn the_oldest_stamp_is_forgotten_first_after_updates() {
        let mut g = TimestampGuard::new(3);
        g.set_now(Duration::from_secs(1000));
        let t = |s| tai64n(Duration::from_secs(s));
        g.check_and_update(&peer(1), t(10)).unwrap();
        g.check_and_update(&peer(2), t(20)).unwrap();
        g.check_and_update(&peer(3), t(30)).unwrap();
        // Peer 1 moves ahead: peer 2 is now the oldest.
        g.check_and_update(&peer(1), t(40)).unwrap();
        g.check_and_update(&peer(4), t(50)).unwrap();
        assert_eq!(g.len(), 3);
        // Peer 2 forgotten (floor 20); peer 1 still remembered at 40.
        assert_eq!(
            g.check_and_update(&peer(1), t(35)),
            Err(CryptoError::ReplayedInitiation)
        );
        g.check_and_update(&peer(2), t(21)).unwrap();
        // ... which evicted peer 3 (30), the oldest then.
        assert_eq!(
            g.check_and_update(&peer(3), t(30)),
            Err(CryptoError::ReplayedInitiation)
        );
    }
}
