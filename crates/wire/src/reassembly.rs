//! Splitting messages into datagram-sized fragments and putting them back
//! together, under hard limits.
//!
//! The reassembler is sans-IO: the caller passes `now` (any monotonic clock
//! as a [`Duration`] since an epoch of its choosing). It tolerates duplicate,
//! missing and out-of-order fragments; it never holds more than
//! [`ReassemblyLimits::max_buffered`] bytes or more than
//! [`ReassemblyLimits::max_pending`] partial messages. When a new message needs
//! room, the oldest partial message is evicted, so a flood of bogus first
//! fragments can slow reassembly down but never lock it out (the transport
//! keeps one reassembler per session, so one peer cannot evict another's
//! messages).

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use bytes::Bytes;

use crate::datagram::FragmentInfo;
use crate::error::{Result, WireError};

/// Hard limits of a [`Reassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReassemblyLimits {
    /// Most fragments one message may have. Default 1024.
    pub max_fragments: u16,
    /// Largest reassembled message. Default 1 MiB.
    pub max_message_len: usize,
    /// Most partial messages held at once. Default 64.
    pub max_pending: usize,
    /// Most bytes held across all partial messages (fragment data plus the
    /// per-fragment bookkeeping). Default 4 MiB.
    pub max_buffered: usize,
    /// A partial message not completed within this time is dropped. Default 5 s.
    pub timeout: Duration,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        Self {
            max_fragments: 1024,
            max_message_len: 1 << 20,
            max_pending: 64,
            max_buffered: 4 << 20,
            timeout: Duration::from_secs(5),
        }
    }
}

/// What happened to a pushed fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reassembled {
    /// This fragment completed its message.
    Complete(Bytes),
    /// Stored; the message still misses fragments.
    Incomplete,
    /// This piece was already held; nothing changed.
    Duplicate,
}

/// Counters for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ReassemblyStats {
    /// Messages completed.
    pub completed: u64,
    /// Duplicate fragments ignored.
    pub duplicates: u64,
    /// Partial messages dropped because their time ran out.
    pub expired: u64,
    /// Partial messages evicted to make room.
    pub evicted: u64,
    /// Fragments refused (inconsistent, or over a limit).
    pub rejected: u64,
}

#[derive(Debug)]
struct Partial {
    count: u16,
    received: u16,
    parts: Vec<Option<Bytes>>,
    /// Fragment bytes held plus bookkeeping, as charged to the budget.
    charged: usize,
    data_len: usize,
    deadline: Duration,
    order: u64,
}

/// Puts fragmented messages back together. See the module docs.
#[derive(Debug)]
pub struct Reassembler {
    limits: ReassemblyLimits,
    pending: BTreeMap<(u32, u32), Partial>,
    buffered: usize,
    next_order: u64,
    stats: ReassemblyStats,
}

const SLOT_COST: usize = core::mem::size_of::<Option<Bytes>>();

impl Reassembler {
    /// An empty reassembler.
    pub const fn new(limits: ReassemblyLimits) -> Self {
        Self {
            limits,
            pending: BTreeMap::new(),
            buffered: 0,
            next_order: 0,
            stats: ReassemblyStats {
                completed: 0,
                duplicates: 0,
                expired: 0,
                evicted: 0,
                rejected: 0,
            },
        }
    }

    /// The limits.
    pub const fn limits(&self) -> &ReassemblyLimits {
        &self.limits
    }

    /// Adds one fragment of message `info.message_id` in `session`.
    ///
    /// # Errors
    /// [`WireError::BadFragment`] (invalid fields, or a count that disagrees
    /// with earlier fragments: the partial message is dropped),
    /// [`WireError::TooManyFragments`], [`WireError::ReassemblyBudget`].
    /// An error never affects other partial messages except by the documented
    /// eviction of the oldest.
    pub fn push(
        &mut self,
        now: Duration,
        session: u32,
        info: FragmentInfo,
        data: Bytes,
    ) -> Result<Reassembled> {
        let r = self.push_inner(now, session, info, data);
        if r.is_err() {
            self.stats.rejected += 1;
        }
        r
    }

    fn push_inner(
        &mut self,
        now: Duration,
        session: u32,
        info: FragmentInfo,
        data: Bytes,
    ) -> Result<Reassembled> {
        let info = info.validate()?;
        if info.count > self.limits.max_fragments {
            return Err(WireError::TooManyFragments {
                count: u32::from(info.count),
                max: u32::from(self.limits.max_fragments),
            });
        }
        self.expire(now);
        let key = (session, info.message_id);
        let over_message = |have: usize| WireError::ReassemblyBudget {
            len: (have + data.len()) as u64,
            max: self.limits.max_message_len as u64,
        };
        if let Some(p) = self.pending.get(&key) {
            if p.count != info.count {
                self.drop_partial(key);
                return Err(WireError::BadFragment {
                    index: info.index,
                    count: info.count,
                });
            }
            if p.parts
                .get(usize::from(info.index))
                .is_some_and(Option::is_some)
            {
                self.stats.duplicates += 1;
                return Ok(Reassembled::Duplicate);
            }
            if p.data_len + data.len() > self.limits.max_message_len {
                let err = over_message(p.data_len);
                self.drop_partial(key);
                return Err(err);
            }
        } else {
            if data.len() > self.limits.max_message_len {
                return Err(over_message(0));
            }
            let setup = usize::from(info.count) * SLOT_COST;
            if self.pending.len() >= self.limits.max_pending {
                self.evict_oldest(None);
            }
            self.make_room(setup, None)?;
            self.buffered += setup;
            self.pending.insert(
                key,
                Partial {
                    count: info.count,
                    received: 0,
                    parts: vec![None; usize::from(info.count)],
                    charged: setup,
                    data_len: 0,
                    deadline: now.saturating_add(self.limits.timeout),
                    order: self.next_order,
                },
            );
            self.next_order += 1;
        }
        if let Err(e) = self.make_room(data.len(), Some(key)) {
            self.drop_partial(key);
            return Err(e);
        }
        let Some(p) = self.pending.get_mut(&key) else {
            return Err(WireError::ReassemblyBudget {
                len: data.len() as u64,
                max: self.limits.max_buffered as u64,
            });
        };
        self.buffered += data.len();
        p.charged += data.len();
        p.data_len += data.len();
        p.received += 1;
        if let Some(slot) = p.parts.get_mut(usize::from(info.index)) {
            *slot = Some(data);
        }
        if p.received < p.count {
            return Ok(Reassembled::Incomplete);
        }
        let Some(done) = self.pending.remove(&key) else {
            return Ok(Reassembled::Incomplete);
        };
        self.buffered -= done.charged;
        let mut out = Vec::with_capacity(done.data_len);
        for part in done.parts.into_iter().flatten() {
            out.extend_from_slice(&part);
        }
        self.stats.completed += 1;
        Ok(Reassembled::Complete(Bytes::from(out)))
    }

    /// Evicts oldest partial messages (never `keep`) until `extra` more bytes fit.
    fn make_room(&mut self, extra: usize, keep: Option<(u32, u32)>) -> Result<()> {
        while self.buffered + extra > self.limits.max_buffered {
            if !self.evict_oldest(keep) {
                return Err(WireError::ReassemblyBudget {
                    len: extra as u64,
                    max: self.limits.max_buffered as u64,
                });
            }
        }
        Ok(())
    }

    fn evict_oldest(&mut self, keep: Option<(u32, u32)>) -> bool {
        let oldest = self
            .pending
            .iter()
            .filter(|(k, _)| Some(**k) != keep)
            .min_by_key(|(_, p)| p.order)
            .map(|(k, _)| *k);
        match oldest {
            Some(k) => {
                self.drop_partial(k);
                self.stats.evicted += 1;
                true
            }
            None => false,
        }
    }

    fn drop_partial(&mut self, key: (u32, u32)) {
        if let Some(p) = self.pending.remove(&key) {
            self.buffered -= p.charged;
        }
    }

    /// Drops partial messages whose time has run out; returns how many.
    pub fn expire(&mut self, now: Duration) -> usize {
        let before = self.pending.len();
        let mut freed = 0;
        self.pending.retain(|_, p| {
            let keep = p.deadline > now;
            if !keep {
                freed += p.charged;
            }
            keep
        });
        self.buffered -= freed;
        let n = before - self.pending.len();
        self.stats.expired += n as u64;
        n
    }

    /// Drops everything held for `session` (when it closes).
    pub fn remove_session(&mut self, session: u32) {
        let keys: Vec<_> = self
            .pending
            .range((session, 0)..=(session, u32::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.drop_partial(k);
        }
    }

    /// The earliest time at which [`Reassembler::expire`] has work to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Partial messages held.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Bytes charged against [`ReassemblyLimits::max_buffered`].
    pub const fn buffered(&self) -> usize {
        self.buffered
    }

    /// Counters.
    pub const fn stats(&self) -> ReassemblyStats {
        self.stats
    }
}

/// Splits `message` into pieces of at most `max_piece` bytes.
///
/// Yields `(None, message)` once if it fits in one piece (send it unfragmented);
/// otherwise `(Some(info), piece)` for every piece in order.
///
/// # Errors
/// [`WireError::TooManyFragments`] if more than `max_fragments` pieces would be
/// needed, [`WireError::Unencodable`] if `max_piece` is zero.
pub fn fragments(
    message_id: u32,
    message: &[u8],
    max_piece: usize,
    max_fragments: u16,
) -> Result<impl Iterator<Item = (Option<FragmentInfo>, &[u8])> + '_> {
    if max_piece == 0 {
        return Err(WireError::Unencodable("fragment size of zero"));
    }
    let count = message.len().div_ceil(max_piece).max(1);
    if count > usize::from(max_fragments) {
        return Err(WireError::TooManyFragments {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            max: u32::from(max_fragments),
        });
    }
    let single = count == 1;
    // count <= max_fragments <= u16::MAX, checked above.
    let count16 = u16::try_from(count).unwrap_or(u16::MAX);
    let pieces: core::slice::Chunks<'_, u8> = if message.is_empty() {
        // An empty message is one empty piece.
        [].chunks(1)
    } else {
        message.chunks(max_piece)
    };
    let empty = message.is_empty().then_some((None, message));
    Ok(empty
        .into_iter()
        .chain(pieces.enumerate().map(move |(i, piece)| {
            let info = (!single).then(|| FragmentInfo {
                message_id,
                index: u16::try_from(i).unwrap_or(u16::MAX),
                count: count16,
            });
            (info, piece)
        })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn split(msg: &[u8], piece: usize) -> Vec<(FragmentInfo, Bytes)> {
        fragments(9, msg, piece, 1024)
            .unwrap()
            .map(|(i, p)| (i.unwrap(), Bytes::copy_from_slice(p)))
            .collect()
    }

    #[test]
    fn in_order_and_reverse() {
        let msg: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        for reverse in [false, true] {
            let mut r = Reassembler::new(ReassemblyLimits::default());
            let mut parts = split(&msg, 1000);
            if reverse {
                parts.reverse();
            }
            let n = parts.len();
            for (i, (info, data)) in parts.into_iter().enumerate() {
                let out = r.push(secs(0), 1, info, data).unwrap();
                if i + 1 == n {
                    assert_eq!(out, Reassembled::Complete(Bytes::from(msg.clone())));
                } else {
                    assert_eq!(out, Reassembled::Incomplete);
                }
            }
            assert_eq!(r.buffered(), 0);
            assert_eq!(r.pending(), 0);
        }
    }

    #[test]
    fn duplicates_ignored() {
        let parts = split(&[7u8; 300], 100);
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.push(secs(0), 1, parts[0].0, parts[0].1.clone()).unwrap();
        assert_eq!(
            r.push(secs(0), 1, parts[0].0, parts[0].1.clone()),
            Ok(Reassembled::Duplicate)
        );
        assert_eq!(r.stats().duplicates, 1);
    }

    #[test]
    fn expiry_frees_memory() {
        let parts = split(&[1u8; 300], 100);
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.push(secs(0), 1, parts[0].0, parts[0].1.clone()).unwrap();
        assert!(r.buffered() > 0);
        assert_eq!(r.next_deadline(), Some(secs(5)));
        assert_eq!(r.expire(secs(4)), 0);
        assert_eq!(r.expire(secs(5)), 1);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn flood_of_first_fragments_cannot_lock_out() {
        let limits = ReassemblyLimits {
            max_pending: 8,
            ..ReassemblyLimits::default()
        };
        let mut r = Reassembler::new(limits);
        for id in 0..1000u32 {
            let info = FragmentInfo {
                message_id: id,
                index: 0,
                count: 100,
            };
            r.push(secs(0), 1, info, Bytes::from_static(b"junk"))
                .unwrap();
            assert!(r.pending() <= 8);
        }
        // A legitimate two-piece message still gets through at once.
        let mut last = Reassembled::Incomplete;
        for (info, data) in fragments(5000, b"hello world", 6, 1024).unwrap() {
            last = r
                .push(secs(0), 2, info.unwrap(), Bytes::copy_from_slice(data))
                .unwrap();
        }
        assert_eq!(
            last,
            Reassembled::Complete(Bytes::from_static(b"hello world"))
        );
    }

    #[test]
    fn budget_and_count_limits() {
        let limits = ReassemblyLimits {
            max_message_len: 250,
            max_fragments: 4,
            ..ReassemblyLimits::default()
        };
        let mut r = Reassembler::new(limits);
        let parts = split(&[0u8; 300], 100);
        r.push(secs(0), 1, parts[0].0, parts[0].1.clone()).unwrap();
        r.push(secs(0), 1, parts[1].0, parts[1].1.clone()).unwrap();
        assert!(matches!(
            r.push(secs(0), 1, parts[2].0, parts[2].1.clone()),
            Err(WireError::ReassemblyBudget { .. })
        ));
        assert_eq!(r.pending(), 0);
        assert_eq!(r.buffered(), 0);
        let too_many = FragmentInfo {
            message_id: 1,
            index: 0,
            count: 5,
        };
        assert_eq!(
            r.push(secs(0), 1, too_many, Bytes::new()),
            Err(WireError::TooManyFragments { count: 5, max: 4 })
        );
    }

    #[test]
    fn inconsistent_count_drops_message() {
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let a = FragmentInfo {
            message_id: 1,
            index: 0,
            count: 3,
        };
        let b = FragmentInfo { count: 4, ..a };
        r.push(secs(0), 1, a, Bytes::from_static(b"x")).unwrap();
        assert!(r.push(secs(0), 1, b, Bytes::from_static(b"y")).is_err());
        assert_eq!(r.pending(), 0);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn fragmenter_edges() {
        assert_eq!(fragments(1, b"", 10, 4).unwrap().count(), 1);
        let one: Vec<_> = fragments(1, b"abc", 3, 4).unwrap().collect();
        assert_eq!(one, [(None, &b"abc"[..])]);
        assert!(fragments(1, &[0; 50], 10, 4).is_err());
        assert!(fragments(1, b"a", 0, 4).is_err());
    }
}
