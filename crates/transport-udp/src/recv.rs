//! The receiving side of a datagram session: which records to acknowledge,
//! reliable messages put back together exactly once, unreliable messages
//! reassembled best-effort, all under byte budgets.
//!
//! A piece of a reliable message is acknowledged (through its record) only
//! once it is stored, and stored pieces are never evicted before the
//! message completes or `reliable_reassembly_timeout` passes, so every
//! acknowledged byte is delivered. Completed reliable message ids are
//! remembered in a window of [`DEDUP_WINDOW`] ids above a floor; a
//! retransmission of a delivered message is dropped (and its record still
//! acknowledged, so the sender stops).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use netproto_wire::{FragmentInfo, Reassembled, Reassembler};

use crate::config::{UdpConfig, DEDUP_WINDOW, MAX_ACK_RANGES, RELIABLE_WINDOW, SLOT_COST};
use crate::error::RecordViolation;
use crate::items::{Ack, Piece};

/// What a receiver holds of open reliable messages: the sender's window
/// plus the per-slot bookkeeping of pieces of at least 256 bytes (1/8).
const RELIABLE_HOLD: usize = RELIABLE_WINDOW + RELIABLE_WINDOW / 8;
/// Ranges of received counters remembered for ACKs.
const MAX_RANGES: usize = MAX_ACK_RANGES + 1;

/// The memory shared by every session of an endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub(crate) used: usize,
    pub(crate) limit: usize,
}

impl Budget {
    fn take(&mut self, n: usize) -> bool {
        if self.used + n > self.limit {
            return false;
        }
        self.used += n;
        true
    }

    pub(crate) fn give(&mut self, n: usize) {
        self.used = self.used.saturating_sub(n);
    }
}

#[derive(Debug)]
struct Partial {
    count: u64,
    order: Option<u64>,
    pieces: Vec<Option<Bytes>>,
    got: u64,
    charged: usize,
    started: Instant,
}

/// The receiving side. See the module documentation.
#[derive(Debug)]
pub(crate) struct RecvState {
    /// Descending ranges of counters of records that asked for an ACK.
    received: VecDeque<(u64, u64)>,
    largest_at: Option<Instant>,
    unacked: u32,
    ack_due: Option<Instant>,
    max_ack_delay: Duration,
    floor: u64,
    /// Delivered reliable ids in `floor .. floor + DEDUP_WINDOW`, one bit
    /// each at `id % DEDUP_WINDOW` (8 KiB, allocated with the first one).
    done: Vec<u64>,
    partial: BTreeMap<u64, Partial>,
    held: usize,
    reliable_timeout: Duration,
    unreliable: Reassembler,
    epoch: Instant,
    /// Ordered messages are delivered in this order; the next one due.
    next_order: u64,
    /// Complete ordered messages waiting for an earlier one, by position
    /// (their bytes count in `held`).
    waiting: BTreeMap<u64, Bytes>,
    /// Completed messages: reliable flag and bytes.
    pub(crate) complete: VecDeque<(bool, Bytes)>,
    /// Bytes the application was given and has not read (the driver
    /// says): they count against the reliable hold, so a reader that
    /// falls behind slows its sender instead of growing a queue.
    pub(crate) backlog: usize,
    pub(crate) duplicates: u64,
}

/// What became of a record's pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    /// Everything stored or known: acknowledge the record.
    Yes,
    /// A reliable piece found no room: do not acknowledge.
    NoRoom,
}

impl RecvState {
    pub(crate) fn new(cfg: &UdpConfig, epoch: Instant) -> Self {
        Self {
            received: VecDeque::new(),
            largest_at: None,
            unacked: 0,
            ack_due: None,
            max_ack_delay: cfg.retransmit.max_ack_delay,
            floor: 0,
            done: Vec::new(),
            partial: BTreeMap::new(),
            held: 0,
            reliable_timeout: cfg.reliable_reassembly_timeout,
            unreliable: Reassembler::new(cfg.reassembly),
            epoch,
            next_order: 0,
            waiting: BTreeMap::new(),
            complete: VecDeque::new(),
            backlog: 0,
            duplicates: 0,
        }
    }

    /// Takes one piece.
    pub(crate) fn on_piece(
        &mut self,
        now: Instant,
        piece: &Piece<'_>,
        budget: &mut Budget,
    ) -> Result<Stored, RecordViolation> {
        if piece.reliable {
            self.reliable_piece(now, piece, budget)
        } else {
            self.unreliable_piece(now, piece, budget);
            Ok(Stored::Yes)
        }
    }

    fn reliable_piece(
        &mut self,
        now: Instant,
        piece: &Piece<'_>,
        budget: &mut Budget,
    ) -> Result<Stored, RecordViolation> {
        let id = piece.message_id;
        if piece.data.is_empty() {
            // No piece of a reliable message is empty (a message is a
            // frame of at least 3 bytes, cut into non-empty pieces).
            return Err(RecordViolation::BadMessage(id));
        }
        if self.already_delivered(id, budget) {
            self.duplicates += 1;
            return Ok(Stored::Yes);
        }
        if let Some(order) = piece.order {
            if order < self.next_order
                || order >= self.next_order.saturating_add(DEDUP_WINDOW)
                || self.waiting.contains_key(&order)
            {
                return Err(RecordViolation::BadMessage(id));
            }
        }
        // The next ordered message finds room beyond the usual hold (one
        // window more: no message is larger), so messages waiting for it
        // can never starve it.
        let head = piece.order == Some(self.next_order);
        let hold = if head {
            2 * RELIABLE_HOLD
        } else {
            RELIABLE_HOLD
        };
        // What the application has not read counts as held.
        let held = self.held.saturating_add(self.backlog);
        if piece.count == 1 {
            if self.partial.contains_key(&id) {
                return Err(RecordViolation::BadMessage(id));
            }
            let limited = piece.order.is_some() || self.backlog > 0;
            if held.saturating_add(piece.data.len()) > hold && limited
                || !budget.take(piece.data.len())
            {
                return Ok(Stored::NoRoom);
            }
            self.mark_done(id);
            self.completed(piece.order, Bytes::copy_from_slice(piece.data), budget);
            return Ok(Stored::Yes);
        }
        let index = usize::try_from(piece.index).map_err(|_| RecordViolation::BadMessage(id))?;
        if !self.partial.contains_key(&id) {
            let slots =
                usize::try_from(piece.count).map_err(|_| RecordViolation::BadMessage(id))?;
            let cost = slots * SLOT_COST;
            if held.saturating_add(cost) > hold || !budget.take(cost) {
                return Ok(Stored::NoRoom);
            }
            self.held += cost;
            self.partial.insert(
                id,
                Partial {
                    count: piece.count,
                    order: piece.order,
                    pieces: vec![None; slots],
                    got: 0,
                    charged: cost,
                    started: now,
                },
            );
        }
        let Some(p) = self.partial.get_mut(&id) else {
            return Ok(Stored::NoRoom);
        };
        if p.count != piece.count || p.order != piece.order {
            let charged = p.charged;
            self.partial.remove(&id);
            self.held -= charged;
            budget.give(charged);
            return Err(RecordViolation::BadMessage(id));
        }
        if p.pieces.get(index).is_some_and(Option::is_some) {
            self.duplicates += 1;
            return Ok(Stored::Yes);
        }
        let len = piece.data.len();
        let held = self.held.saturating_add(self.backlog);
        if held.saturating_add(len) > hold || !budget.take(len) {
            return Ok(Stored::NoRoom);
        }
        self.held += len;
        p.charged += len;
        if let Some(slot) = p.pieces.get_mut(index) {
            *slot = Some(Bytes::copy_from_slice(piece.data));
        }
        p.got += 1;
        if p.got == p.count {
            if let Some(p) = self.partial.remove(&id) {
                self.held -= p.charged;
                let total: usize = p.pieces.iter().flatten().map(Bytes::len).sum();
                let mut out = BytesMut::with_capacity(total);
                for b in p.pieces.into_iter().flatten() {
                    out.extend_from_slice(&b);
                }
                // The slot bookkeeping is freed; the message bytes stay
                // charged until the application takes the message.
                budget.give(p.charged - total);
                self.mark_done(id);
                self.completed(p.order, out.freeze(), budget);
            }
        }
        Ok(Stored::Yes)
    }

    /// A reliable message is whole: deliver it, or hold it until the
    /// ordered messages before it are delivered.
    /// A waiting message also costs its map entry ([`SLOT_COST`]).
    fn completed(&mut self, order: Option<u64>, bytes: Bytes, budget: &mut Budget) {
        match order {
            Some(order) if order != self.next_order => {
                // May overdraw the budget by one slot: the message itself
                // was already admitted.
                budget.used += SLOT_COST;
                self.held += bytes.len() + SLOT_COST;
                self.waiting.insert(order, bytes);
            }
            Some(_) => {
                self.complete.push_back((true, bytes));
                self.next_order += 1;
                while let Some(next) = self.waiting.remove(&self.next_order) {
                    self.held -= next.len() + SLOT_COST;
                    budget.give(SLOT_COST);
                    self.complete.push_back((true, next));
                    self.next_order += 1;
                }
            }
            None => self.complete.push_back((true, bytes)),
        }
    }

    /// Whether reliable message `id` was delivered (or is below the
    /// floor); moves the floor first when `id` is a window above it.
    fn already_delivered(&mut self, id: u64, budget: &mut Budget) -> bool {
        if id < self.floor {
            return true;
        }
        // The floor moves first: ids share bits modulo the window, so an id
        // a whole window above the floor would otherwise read the bit of
        // the id it replaces (the 65,537th message of a session was taken
        // for a duplicate, and the session stalled).
        if id >= self.floor.saturating_add(DEDUP_WINDOW) {
            // The sender starts a reliable id only within DEDUP_WINDOW of
            // its oldest unacknowledged one, so everything below the new
            // floor was delivered or given up by the sender.
            self.advance_floor(id - (DEDUP_WINDOW - 1), budget);
        }
        self.is_done(id)
    }

    fn is_done(&self, id: u64) -> bool {
        let bit = id % DEDUP_WINDOW;
        self.done
            .get(usize::try_from(bit / 64).unwrap_or(usize::MAX))
            .is_some_and(|w| w & (1 << (bit % 64)) != 0)
    }

    fn mark_done(&mut self, id: u64) {
        if self.done.is_empty() {
            self.done = vec![0; usize::try_from(DEDUP_WINDOW / 64).unwrap_or(1024)];
        }
        let bit = id % DEDUP_WINDOW;
        if let Some(w) = self
            .done
            .get_mut(usize::try_from(bit / 64).unwrap_or(usize::MAX))
        {
            *w |= 1 << (bit % 64);
        }
    }

    fn advance_floor(&mut self, floor: u64, budget: &mut Budget) {
        // Ids leaving the window free their bits for the ids entering it.
        if floor - self.floor >= DEDUP_WINDOW {
            self.done.iter_mut().for_each(|w| *w = 0);
        } else {
            for id in self.floor..floor {
                let bit = id % DEDUP_WINDOW;
                if let Some(w) = self
                    .done
                    .get_mut(usize::try_from(bit / 64).unwrap_or(usize::MAX))
                {
                    *w &= !(1 << (bit % 64));
                }
            }
        }
        self.floor = floor;
        let keep = self.partial.split_off(&floor);
        for p in std::mem::replace(&mut self.partial, keep).into_values() {
            self.held -= p.charged;
            budget.give(p.charged);
        }
    }

    fn unreliable_piece(&mut self, now: Instant, piece: &Piece<'_>, budget: &mut Budget) {
        if piece.count == 1 {
            if budget.take(piece.data.len()) {
                self.complete
                    .push_back((false, Bytes::copy_from_slice(piece.data)));
            }
            return;
        }
        let (Ok(index), Ok(count)) = (u16::try_from(piece.index), u16::try_from(piece.count))
        else {
            return;
        };
        let info = FragmentInfo {
            // Ids wrap in the reassembler's 32-bit key; a partial message
            // lives 5 s, far less than 2^32 messages take.
            #[allow(clippy::cast_possible_truncation)]
            message_id: piece.message_id as u32,
            index,
            count,
        };
        let before = self.unreliable.buffered();
        if budget.used + piece.data.len() + usize::from(count) * SLOT_COST > budget.limit {
            return;
        }
        let at = now.saturating_duration_since(self.epoch);
        let result = self
            .unreliable
            .push(at, 0, info, Bytes::copy_from_slice(piece.data));
        let after = self.unreliable.buffered();
        budget.used = (budget.used + after).saturating_sub(before);
        if let Ok(Reassembled::Complete(bytes)) = result {
            budget.used += bytes.len();
            self.complete.push_back((false, bytes));
        }
    }

    /// Notes an authenticated record that carried reliable pieces.
    pub(crate) fn on_ack_eliciting(&mut self, now: Instant, counter: u64) {
        let largest = self.received.front().map(|r| r.1);
        let in_order = largest.is_none_or(|l| counter == l + 1);
        insert_range(&mut self.received, counter);
        if largest.is_none_or(|l| counter > l) {
            self.largest_at = Some(now);
        }
        self.unacked += 1;
        let due = if !in_order || self.unacked >= 2 {
            now
        } else {
            now + self.max_ack_delay
        };
        self.ack_due = Some(self.ack_due.map_or(due, |d| d.min(due)));
    }

    /// Acknowledges what is unacknowledged without the usual delay (a
    /// reliable PING: its ACK times the round trip).
    pub(crate) fn ack_now(&mut self, now: Instant) {
        if self.unacked > 0 {
            self.ack_due = Some(now);
        }
    }

    /// When an ACK is due.
    pub(crate) const fn ack_due(&self) -> Option<Instant> {
        self.ack_due
    }

    /// The ACK to send now, if one is due (or `force`d and anything is
    /// unacknowledged: it rides along with data).
    pub(crate) fn take_ack(&mut self, now: Instant, force: bool) -> Option<Ack> {
        let due = self.ack_due.is_some_and(|d| d <= now) || (force && self.unacked > 0);
        if !due || self.received.is_empty() {
            return None;
        }
        self.ack_due = None;
        self.unacked = 0;
        let delay = self
            .largest_at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        Some(Ack {
            delay_micros: u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
            ranges: self.received.iter().copied().collect(),
        })
    }

    /// Drops partial messages whose time ran out.
    pub(crate) fn expire(&mut self, now: Instant, budget: &mut Budget) {
        let before = self.unreliable.buffered();
        self.unreliable
            .expire(now.saturating_duration_since(self.epoch));
        budget.give(before - self.unreliable.buffered());
        let late: Vec<u64> = self
            .partial
            .iter()
            .filter(|(_, p)| p.started + self.reliable_timeout <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some(p) = self.partial.remove(&id) {
                self.held -= p.charged;
                budget.give(p.charged);
            }
        }
    }

    /// When [`RecvState::expire`] has work.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        let reliable = self
            .partial
            .values()
            .map(|p| p.started + self.reliable_timeout)
            .min();
        let unreliable = self.unreliable.next_deadline().map(|d| self.epoch + d);
        reliable.into_iter().chain(unreliable).min()
    }

    /// Gives everything held back to the budget (the session ends).
    pub(crate) fn release(&mut self, budget: &mut Budget) {
        budget.give(self.held + self.unreliable.buffered());
        budget.give(self.complete.iter().map(|(_, b)| b.len()).sum());
        self.held = 0;
        self.partial.clear();
        self.waiting.clear();
        self.complete.clear();
        self.unreliable.remove_session(0);
    }
}

/// Adds `counter` to descending, merged ranges, keeping the newest
/// [`MAX_RANGES`].
fn insert_range(ranges: &mut VecDeque<(u64, u64)>, counter: u64) {
    // The first range (from the top) that reaches down to `counter + 1`;
    // every range above it starts above `counter + 1`.
    match ranges
        .iter()
        .position(|&(low, _)| low <= counter.saturating_add(1))
    {
        None => ranges.push_back((counter, counter)),
        Some(i) => {
            let (low, high) = ranges[i];
            if (low..=high).contains(&counter) {
                return;
            }
            if counter + 1 == low {
                ranges[i].0 = counter;
                if let Some(&(below_low, below_high)) = ranges.get(i + 1) {
                    if below_high + 1 == counter {
                        ranges[i].0 = below_low;
                        ranges.remove(i + 1);
                    }
                }
            } else if counter == high + 1 {
                ranges[i].1 = counter;
            } else {
                ranges.insert(i, (counter, counter));
            }
        }
    }
    while ranges.len() > MAX_RANGES {
        ranges.pop_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(counters: &[u64]) -> Vec<(u64, u64)> {
        let mut r = VecDeque::new();
        for &c in counters {
            insert_range(&mut r, c);
        }
        r.into_iter().collect()
    }

    #[test]
    fn bogus_pieces_stay_within_budget_and_a_real_message_completes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let now = Instant::now();
        let cfg = UdpConfig::default();
        // Two sessions share the endpoint budget: one hostile peer sends
        // 100,000 bogus pieces (random ids, counts, indexes, sizes, modes),
        // the other a real 64 KiB message in 60 pieces meanwhile.
        let (mut hostile, mut real_rx) = (RecvState::new(&cfg, now), RecvState::new(&cfg, now));
        let mut budget = Budget {
            used: 0,
            limit: 64 << 20,
        };
        let junk = vec![0xaa; 1100];
        let real: Vec<u8> = (0u32..64 << 10).map(|i| (i % 251) as u8).collect();
        let chunks: Vec<&[u8]> = real.chunks(1100).collect();
        let count = chunks.len() as u64;
        let mut peak = 0;
        for i in 0..100_000u64 {
            let c = rng.gen_range(1..=crate::config::MAX_PIECES);
            let reliable = rng.gen_bool(0.5);
            let piece = Piece {
                reliable,
                message_id: rng.gen_range(0..1 << 20),
                order: (reliable && rng.gen_bool(0.3)).then(|| rng.gen_range(0..1000)),
                count: c,
                index: rng.gen_range(0..c),
                data: &junk[..rng.gen_range(0..junk.len())],
            };
            let _ = hostile.on_piece(now, &piece, &mut budget);
            // Completed junk is never taken by the application: it stays charged.
            assert!(
                hostile.held <= RELIABLE_HOLD + RELIABLE_WINDOW,
                "reliable hold {}",
                hostile.held
            );
            assert!(budget.used <= budget.limit);
            peak = peak.max(budget.used);
            if i % 1000 == 0 && i / 1000 < count {
                let index = i / 1000;
                let piece = Piece {
                    reliable: true,
                    message_id: 0,
                    order: None,
                    count,
                    index,
                    data: chunks[index as usize],
                };
                assert_eq!(real_rx.on_piece(now, &piece, &mut budget), Ok(Stored::Yes));
            }
        }
        let Some((true, bytes)) = real_rx.complete.pop_front() else {
            panic!("the real message did not complete");
        };
        assert_eq!(&bytes[..], &real[..]);
        // One session holds at most its reliable hold, the unreliable
        // reassembly limit and what completed and waits to be read.
        assert!(peak < 64 << 20, "{peak}");
        hostile.release(&mut budget);
        budget.give(bytes.len());
        assert_eq!(budget.used, 0, "everything charged is given back");
    }

    #[test]
    fn ranges_merge_in_any_order() {
        assert_eq!(ranges(&[0, 1, 2]), [(0, 2)]);
        assert_eq!(ranges(&[2, 0, 1]), [(0, 2)]);
        assert_eq!(ranges(&[5, 1, 3]), [(5, 5), (3, 3), (1, 1)]);
        assert_eq!(ranges(&[5, 1, 3, 4, 2]), [(1, 5)]);
        assert_eq!(ranges(&[10, 12, 11, 11]), [(10, 12)]);
        assert_eq!(ranges(&[0, 9]), [(9, 9), (0, 0)]);
    }

    #[test]
    fn ranges_are_capped_keeping_the_newest() {
        let counters: Vec<u64> = (0..200).map(|i| i * 2).collect();
        let r = ranges(&counters);
        assert_eq!(r.len(), MAX_RANGES);
        assert_eq!(r[0], (398, 398));
    }

    #[test]
    fn ranges_match_a_model() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..200 {
            let counters: Vec<u64> = (0..30).map(|_| rng.gen_range(0..40)).collect();
            let mut set: Vec<u64> = counters.clone();
            set.sort_unstable();
            set.dedup();
            let mut expect: Vec<(u64, u64)> = Vec::new();
            for c in set {
                match expect.last_mut() {
                    Some(last) if last.1 + 1 == c => last.1 = c,
                    _ => expect.push((c, c)),
                }
            }
            expect.reverse();
            expect.truncate(MAX_RANGES);
            assert_eq!(ranges(&counters), expect, "{counters:?}");
        }
    }
}
