//! Priorities on the sending side: which message's next piece goes into
//! the next record.
//!
//! Small messages are encoded into the open record when they are queued,
//! as before (the pipelined path pays nothing). A message waits here
//! instead when it is larger than a piece, when a message on its stream
//! already waits (a stream's messages leave in order), or when a message of
//! its band or a more urgent one waits. The driver's
//! [`super::Core::poll_transmit`] then takes pieces of about [`PIECE`]
//! bytes from here, from the most urgent band that can go, so an urgent
//! message queued while a 64 MiB one is on its way leaves after at most one
//! fill (128 KiB) of it. Control frames (PING, PONG, GOAWAY) never wait;
//! BYE waits for everything queued before it.
//!
//! Within a band messages leave in the order they were queued, one after
//! the other. (A first version took turns within a band, piece by piece:
//! a small message then finished before a large one queued earlier at the
//! same priority, which broke the order the transport's exchange tests and
//! the service's GOAWAY split rely on.) Only a more urgent band overtakes.
//!
//! Interleaving pieces of different messages needs the peer's
//! `INTERLEAVE` feature bit; without it nothing waits here and messages
//! leave in the order they were queued.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use netproto_wire::{FrameKind, Headers};

use super::recv::MAX_UNFINISHED;

/// How urgent a message is, from 0 (bulk) to 255 (most urgent); the
/// default is [`Priority::NORMAL`] (128).
///
/// Priorities map onto four bands (0–63, 64–127, 128–191, 192–255): a
/// waiting message of a more urgent band always goes first, piece by piece
/// overtaking a less urgent one mid-flight; messages of one band leave in
/// the order they were queued. Within a band the exact value does not
/// matter. Nothing of it is on the wire: it orders what one side
/// sends, and the peer sees pieces of different streams interleaved.
///
/// ```
/// use netproto_transport::Priority;
/// assert!(Priority::URGENT > Priority::default());
/// assert_eq!(Priority::default(), Priority::NORMAL);
/// assert_eq!(Priority::BULK.band(), 0);
/// assert_eq!(Priority(200).band(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub u8);

impl Priority {
    /// Large transfers that may wait for everything else (0).
    pub const BULK: Self = Self(0);
    /// Below the default (64).
    pub const LOW: Self = Self(64);
    /// The default (128).
    pub const NORMAL: Self = Self(128);
    /// Overtakes everything else (255).
    pub const URGENT: Self = Self(255);

    /// Its band, 0 (bulk) to 3 (most urgent).
    pub const fn band(self) -> usize {
        (self.0 >> 6) as usize
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::NORMAL
    }
}

/// Bands, from 0 (bulk) to 3 (most urgent).
const BANDS: usize = 4;
/// The size of the pieces waiting messages are sent in: an urgent message
/// waits for at most one piece per waiting message of its band.
pub(crate) const PIECE: usize = 16 * 1024;
/// Bytes of pieces one [`super::Core::poll_transmit`] takes: the latency
/// an urgent message queued meanwhile pays (128 KiB at ~1 GB/s of sealing
/// is ~130 µs), against one write per fill for a bulk transfer.
pub(crate) const FILL: usize = 128 * 1024;
/// Messages with pieces sent and pieces waiting, at most: one fewer than
/// a receiver keeps (the last is for a small message that the record
/// boundary splits).
const MAX_STARTED: usize = MAX_UNFINISHED - 1;

/// The largest piece (and the largest message that never waits) for a
/// peer whose message limit is `peer_max`: at most half of it, so that
/// what the peer holds unfinished stays within twice its limit.
pub(crate) fn piece_len(peer_max: usize) -> usize {
    PIECE.min(peer_max / 2).max(1)
}

#[derive(Debug)]
struct Queued {
    /// Order of queueing (a stream's messages leave in this order).
    seq: u64,
    kind: FrameKind,
    stream_id: u64,
    /// Sent with the first piece.
    headers: Headers,
    data: Bytes,
    /// Bytes of `data` sent.
    sent: usize,
    /// An earlier message of its stream still waits.
    blocked: bool,
}

/// One piece to encode: its message continues when `continues`.
pub(crate) struct Piece {
    pub(crate) kind: FrameKind,
    pub(crate) stream_id: u64,
    pub(crate) headers: Headers,
    pub(crate) data: Bytes,
    pub(crate) continues: bool,
}

/// Waiting messages by band. See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Scheduler {
    bands: [VecDeque<Queued>; BANDS],
    /// Waiting messages per stream id.
    streams: HashMap<u64, u32>,
    next_seq: u64,
    /// Payload bytes not yet sent, per band.
    band_bytes: [usize; BANDS],
    /// Messages with some pieces sent, and their whole lengths.
    started: usize,
    started_len: usize,
}

impl Scheduler {
    pub(crate) fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Payload bytes waiting.
    pub(crate) fn bytes(&self) -> usize {
        self.band_bytes.iter().sum()
    }

    /// Payload bytes waiting at `priority`'s band or a more urgent one.
    pub(crate) fn bytes_at_or_above(&self, priority: Priority) -> usize {
        self.band_bytes[priority.band()..].iter().sum()
    }

    /// Whether a message must wait here rather than go into the open
    /// record now.
    pub(crate) fn must_wait(
        &self,
        stream_id: u64,
        priority: Priority,
        len: usize,
        piece: usize,
    ) -> bool {
        len > piece
            || (!self.is_empty()
                && (self.streams.contains_key(&stream_id)
                    || self.bands[priority.band()..].iter().any(|b| !b.is_empty())))
    }

    pub(crate) fn push(
        &mut self,
        priority: Priority,
        kind: FrameKind,
        stream_id: u64,
        headers: Headers,
        data: Bytes,
    ) {
        let waiting = self.streams.entry(stream_id).or_insert(0);
        let blocked = *waiting > 0;
        *waiting += 1;
        self.band_bytes[priority.band()] += data.len();
        self.bands[priority.band()].push_back(Queued {
            seq: self.next_seq,
            kind,
            stream_id,
            headers,
            data,
            sent: 0,
            blocked,
        });
        self.next_seq += 1;
    }

    /// Whether `q` may send its next piece now.
    fn eligible(&self, q: &Queued, peer_max: usize, piece: usize) -> bool {
        if q.blocked {
            return false;
        }
        if q.sent > 0 || q.data.len() <= piece {
            return true;
        }
        // A message that will be unfinished at the peer for a while.
        self.started < MAX_STARTED
            && (self.started == 0 || self.started_len + q.data.len() <= peer_max + peer_max / 2)
    }

    /// The next piece: of the first message of the most urgent band whose
    /// first message may go.
    pub(crate) fn next(&mut self, peer_max: usize) -> Option<Piece> {
        let piece = piece_len(peer_max);
        let band = (0..BANDS).rev().find(|&b| {
            self.bands[b]
                .front()
                .is_some_and(|q| self.eligible(q, peer_max, piece))
        })?;
        self.take_piece(band, piece)
    }

    fn take_piece(&mut self, band: usize, piece: usize) -> Option<Piece> {
        let q = self.bands[band].front_mut()?;
        let first = q.sent == 0;
        let len = (q.data.len() - q.sent).min(piece);
        let data = q.data.slice(q.sent..q.sent + len);
        q.sent += len;
        let continues = q.sent < q.data.len();
        let headers = if first {
            std::mem::take(&mut q.headers)
        } else {
            Headers::default()
        };
        let (kind, stream_id, total) = (q.kind, q.stream_id, q.data.len());
        self.band_bytes[band] -= len;
        if first && continues {
            self.started += 1;
            self.started_len += total;
        }
        if !continues {
            if !first {
                self.started -= 1;
                self.started_len -= total;
            }
            self.bands[band].pop_front();
            self.finished(stream_id);
        }
        Some(Piece {
            kind,
            stream_id,
            headers,
            data,
            continues,
        })
    }

    /// A message of `stream_id` left: the stream's next one may go.
    fn finished(&mut self, stream_id: u64) {
        let Some(waiting) = self.streams.get_mut(&stream_id) else {
            return;
        };
        *waiting -= 1;
        if *waiting == 0 {
            self.streams.remove(&stream_id);
            return;
        }
        let next = self
            .bands
            .iter_mut()
            .flat_map(|b| b.iter_mut())
            .filter(|q| q.stream_id == stream_id)
            .min_by_key(|q| q.seq);
        if let Some(q) = next {
            q.blocked = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(s: &mut Scheduler, priority: Priority, stream_id: u64, len: usize) {
        let data = Bytes::from(vec![0; len]);
        s.push(
            priority,
            FrameKind::Data,
            stream_id,
            Headers::default(),
            data,
        );
    }

    fn drain(s: &mut Scheduler, peer_max: usize) -> Vec<(u64, usize, bool)> {
        std::iter::from_fn(|| s.next(peer_max))
            .map(|p| (p.stream_id, p.data.len(), p.continues))
            .collect()
    }

    #[test]
    fn an_urgent_message_goes_before_the_rest_of_a_bulk_one() {
        let mut s = Scheduler::default();
        push(&mut s, Priority::BULK, 1, 3 * PIECE);
        let first = s.next(1 << 24).map(|p| (p.stream_id, p.continues));
        assert_eq!(first, Some((1, true)));
        // A small message of a more urgent band need not wait; one of the
        // waiting one's band, or one on the waiting stream, must.
        assert!(!s.must_wait(3, Priority::NORMAL, 10, PIECE));
        assert!(s.must_wait(3, Priority::BULK, 10, PIECE));
        assert!(s.must_wait(1, Priority::URGENT, 10, PIECE));
        assert!(s.must_wait(3, Priority::URGENT, PIECE + 1, PIECE));
        push(&mut s, Priority::URGENT, 3, 2 * PIECE);
        assert_eq!(
            drain(&mut s, 1 << 24),
            vec![
                (3, PIECE, true),
                (3, PIECE, false),
                (1, PIECE, true),
                (1, PIECE, false)
            ]
        );
        assert!(s.is_empty());
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn messages_of_one_band_leave_in_order() {
        let mut s = Scheduler::default();
        for (stream, pieces) in [(1, 2), (2, 2), (1, 1)] {
            push(&mut s, Priority::NORMAL, stream, pieces * PIECE);
        }
        assert_eq!(
            drain(&mut s, 1 << 24),
            vec![
                (1, PIECE, true),
                (1, PIECE, false),
                (2, PIECE, true),
                (2, PIECE, false),
                (1, PIECE, false)
            ]
        );
    }

    /// The most messages unfinished at once while `s` drains, counting
    /// `started` as unfinished to begin with.
    fn most_unfinished(s: &mut Scheduler, peer_max: usize, started: &[u64]) -> usize {
        let mut unfinished: std::collections::HashSet<u64> = started.iter().copied().collect();
        let mut most = 0;
        while let Some(p) = s.next(peer_max) {
            assert!(p.data.len() <= piece_len(peer_max));
            if p.continues {
                unfinished.insert(p.stream_id);
            } else {
                unfinished.remove(&p.stream_id);
            }
            most = most.max(unfinished.len());
        }
        assert!(unfinished.is_empty());
        most
    }

    #[test]
    fn what_a_peer_holds_unfinished_stays_within_its_limits() {
        let peer_max = 64 * 1024;
        // A whole peer limit in bulk has started; an urgent message of the
        // same size would take the peer past 1.5 × its limit, so it waits
        // for the bulk one to finish instead of overtaking it.
        let mut s = Scheduler::default();
        push(&mut s, Priority::BULK, 1, peer_max);
        assert!(s
            .next(peer_max)
            .is_some_and(|p| p.continues && p.data.len() <= peer_max / 2));
        push(&mut s, Priority::URGENT, 2, peer_max);
        assert_eq!(most_unfinished(&mut s, peer_max, &[1]), 1);
        // A smaller urgent one does overtake: two unfinished at once.
        push(&mut s, Priority::BULK, 3, peer_max);
        assert!(s.next(peer_max).is_some());
        push(&mut s, Priority::URGENT, 4, 20 * 1024);
        assert_eq!(most_unfinished(&mut s, peer_max, &[3]), 2);
    }
}
