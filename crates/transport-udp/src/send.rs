//! The sending side of a datagram session: message ids, cutting messages
//! into pieces, which pieces ride in which record, acknowledgements, loss
//! detection, retransmission, deadlines and the congestion window.
//!
//! Loss detection follows RFC 9002 §6 with record counters as packet
//! numbers: a record is lost once a record sent 3 later is acknowledged, or
//! 9/8 RTT after a later one was; when nothing is acknowledged for an RTO
//! (RFC 6298) every outstanding record is lost and the RTO doubles. The
//! congestion window is RFC 9002 §7's NewReno: slow start from 10
//! datagrams, halved once per loss episode, 2 datagrams after an RTO.
//! Only reliable pieces count against it; unreliable pieces are sent as
//! they come (they are small by [`crate::UdpConfig::max_unreliable_pieces`]).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::{UdpConfig, DEDUP_WINDOW, MAX_PIECES, RELIABLE_WINDOW};
use crate::error::{Result, UdpError};
use crate::items::{piece_overhead, Piece};
use crate::rtt::RttEstimator;

/// Records acknowledged 3 counters later are lost (RFC 9002 kPacketThreshold).
const PACKET_THRESHOLD: u64 = 3;
/// Initial window in datagrams (RFC 9002 §7.2).
const INITIAL_WINDOW: usize = 10;
/// Bytes a message may take beyond its payload limit (frame fields and
/// the default 8 KiB header-block limit).
pub(crate) const FRAME_ALLOWANCE: usize = 8 << 10 | 64;
/// Minimum window in datagrams.
const MIN_WINDOW: usize = 2;

/// A message being sent.
#[derive(Debug)]
struct Outgoing {
    reliable: bool,
    /// Ordered messages: their position among the ordered ones.
    order: Option<u64>,
    bytes: Bytes,
    count: u64,
    piece_len: usize,
    /// Next piece never sent.
    next_new: u64,
    /// Reliable: pieces acknowledged so far (and how many).
    acked: Vec<bool>,
    acked_count: u64,
    /// Reliable: transmissions per piece.
    sends: Vec<u32>,
    created: Instant,
}

impl Outgoing {
    fn piece(&self, index: u64) -> Bytes {
        let start = usize::try_from(index)
            .unwrap_or(usize::MAX)
            .saturating_mul(self.piece_len);
        let end = start.saturating_add(self.piece_len).min(self.bytes.len());
        self.bytes.slice(start.min(end)..end)
    }
}

/// A sealed record that holds reliable pieces.
#[derive(Debug)]
struct SentRecord {
    at: Instant,
    size: usize,
    pieces: Vec<(u64, u64)>,
}

/// What the sender reports.
#[derive(Debug)]
pub(crate) enum SendEvent {
    Delivered(u64),
    /// A reliable message given up; `true` if it was ordered.
    Failed(u64, UdpError, bool),
}

/// The sending side. See the module documentation.
#[derive(Debug)]
pub(crate) struct SendState {
    max_record_plaintext: usize,
    max_datagram: usize,
    max_message: usize,
    max_unreliable_pieces: usize,
    max_queue: usize,
    deadline: Duration,
    max_attempts: u32,
    /// Reliable and unreliable messages are numbered separately, so a
    /// receiver's window of reliable ids only ever sees reliable ones.
    next_reliable: u64,
    next_unreliable: u64,
    next_order: u64,
    /// Reliable messages until wholly acknowledged, by id.
    messages: BTreeMap<u64, Outgoing>,
    /// Unreliable messages until wholly sent, by id.
    unreliable: BTreeMap<u64, Outgoing>,
    /// Messages with pieces never sent, in order: (reliable, id).
    fresh: VecDeque<(bool, u64)>,
    retransmit: VecDeque<(u64, u64)>,
    in_flight: BTreeMap<u64, SentRecord>,
    bytes_in_flight: usize,
    /// Bytes of all messages held.
    queued: usize,
    /// Bytes of reliable messages whose transmission began.
    open_reliable: usize,
    largest_acked: Option<u64>,
    cwnd: usize,
    ssthresh: usize,
    recovery_start: Option<Instant>,
    pub(crate) rtt: RttEstimator,
    pub(crate) events: VecDeque<SendEvent>,
    /// Retransmissions made (pieces).
    pub(crate) retransmitted: u64,
}

impl SendState {
    pub(crate) fn new(cfg: &UdpConfig, max_record_plaintext: usize) -> Self {
        Self {
            max_record_plaintext,
            max_datagram: cfg.max_datagram,
            // The frame around the payload: kind, flags, ids, lengths and
            // a header block (at most 8 KiB by default).
            max_message: cfg.max_message + FRAME_ALLOWANCE,
            max_unreliable_pieces: cfg.max_unreliable_pieces,
            max_queue: cfg.max_send_queue,
            deadline: cfg.retransmit.deadline,
            max_attempts: cfg.retransmit.max_attempts.max(1),
            next_reliable: 0,
            next_unreliable: 0,
            next_order: 0,
            messages: BTreeMap::new(),
            unreliable: BTreeMap::new(),
            fresh: VecDeque::new(),
            retransmit: VecDeque::new(),
            in_flight: BTreeMap::new(),
            bytes_in_flight: 0,
            queued: 0,
            open_reliable: 0,
            largest_acked: None,
            cwnd: INITIAL_WINDOW * cfg.max_datagram,
            ssthresh: usize::MAX,
            recovery_start: None,
            rtt: RttEstimator::new(cfg.retransmit),
            events: VecDeque::new(),
            retransmitted: 0,
        }
    }

    /// Data bytes per piece for a message with this id (the item header
    /// never exceeds [`piece_overhead`] with the largest count).
    fn piece_room(&self, id: u64, order: Option<u64>) -> usize {
        self.max_record_plaintext
            .saturating_sub(piece_overhead(id, order, MAX_PIECES))
            .max(1)
    }

    /// Queues one encoded frame; returns its message id.
    /// `ordered` messages are reliable and delivered in the order pushed.
    pub(crate) fn push(
        &mut self,
        now: Instant,
        bytes: Bytes,
        reliable: bool,
        ordered: bool,
    ) -> Result<u64> {
        let reliable = reliable || ordered;
        if bytes.len() > self.max_message {
            return Err(UdpError::MessageTooLarge {
                len: bytes.len(),
                max: self.max_message,
            });
        }
        if self.queued + bytes.len() > self.max_queue {
            return Err(UdpError::SendQueueFull {
                queued: self.queued,
                limit: self.max_queue,
            });
        }
        let id = if reliable {
            self.next_reliable
        } else {
            self.next_unreliable
        };
        let order = ordered.then_some(self.next_order);
        let piece_len = self.piece_room(id, order);
        let count = bytes.len().div_ceil(piece_len).max(1) as u64;
        if !reliable && count > self.max_unreliable_pieces as u64 {
            return Err(UdpError::UnreliableTooLarge {
                pieces: usize::try_from(count).unwrap_or(usize::MAX),
                max: self.max_unreliable_pieces,
            });
        }
        if count > MAX_PIECES {
            return Err(UdpError::MessageTooLarge {
                len: bytes.len(),
                max: usize::try_from(MAX_PIECES).unwrap_or(usize::MAX) * piece_len,
            });
        }
        let slots = if reliable {
            usize::try_from(count).unwrap_or(0)
        } else {
            0
        };
        if ordered {
            self.next_order += 1;
        }
        if reliable {
            self.next_reliable += 1;
        } else {
            self.next_unreliable += 1;
        }
        self.queued += bytes.len();
        let map = if reliable {
            &mut self.messages
        } else {
            &mut self.unreliable
        };
        map.insert(
            id,
            Outgoing {
                reliable,
                order,
                bytes,
                count,
                piece_len,
                next_new: 0,
                acked: vec![false; slots],
                acked_count: 0,
                sends: vec![0; slots],
                created: now,
            },
        );
        self.fresh.push_back((reliable, id));
        Ok(id)
    }

    /// Takes an unreliable message id for a message sent outside the
    /// queues (BYE).
    pub(crate) const fn take_id(&mut self) -> u64 {
        self.next_unreliable += 1;
        self.next_unreliable - 1
    }

    /// Bytes held for sending or awaiting acknowledgement.
    pub(crate) const fn queued(&self) -> usize {
        self.queued
    }

    /// Bytes that may still be queued.
    pub(crate) const fn room(&self) -> usize {
        self.max_queue.saturating_sub(self.queued)
    }

    /// Whether anything could be sent now.
    pub(crate) fn has_sendable(&self) -> bool {
        !self.retransmit.is_empty() || !self.fresh.is_empty()
    }

    /// Whether the congestion window has room for one more datagram.
    fn window_open(&self) -> bool {
        self.bytes_in_flight + self.max_datagram <= self.cwnd
    }

    /// Appends pieces to `plaintext` while they fit in `limit` bytes;
    /// returns the reliable pieces added.
    pub(crate) fn fill(&mut self, plaintext: &mut Vec<u8>, limit: usize) -> Vec<(u64, u64)> {
        let mut reliable = Vec::new();
        let window = self.window_open();
        // Retransmissions first: they are the oldest data.
        while let (true, Some(&(id, index))) = (window, self.retransmit.front()) {
            let Some(m) = self.messages.get(&id) else {
                self.retransmit.pop_front();
                continue;
            };
            if m.acked.get(usize::try_from(index).unwrap_or(usize::MAX)) != Some(&false) {
                self.retransmit.pop_front();
                continue;
            }
            let data = m.piece(index);
            let piece = Piece {
                reliable: true,
                message_id: id,
                order: m.order,
                count: m.count,
                index,
                data: &data,
            };
            if plaintext.len() + piece.encoded_len() > limit {
                break;
            }
            let attempts = self.count_send(id, index);
            if attempts > self.max_attempts {
                self.retransmit.pop_front();
                self.fail(
                    id,
                    UdpError::TooManyAttempts {
                        message: id,
                        attempts: attempts - 1,
                    },
                );
                continue;
            }
            piece.encode(plaintext);
            self.retransmit.pop_front();
            self.retransmitted += 1;
            reliable.push((id, index));
        }
        self.fill_fresh(window, plaintext, limit, &mut reliable);
        reliable
    }

    /// New pieces, in message order. A reliable message waits while the
    /// window is closed or the receiver's byte or id window is full;
    /// unreliable messages behind it go ahead.
    fn fill_fresh(
        &mut self,
        window: bool,
        plaintext: &mut Vec<u8>,
        limit: usize,
        reliable: &mut Vec<(u64, u64)>,
    ) {
        let oldest_reliable = self.messages.keys().next().copied();
        // Once one reliable message must wait, later ones wait too (in
        // order), or a stream of small messages could starve a large one.
        let mut reliable_waits = !window;
        let mut i = 0;
        while let Some(&(is_reliable, id)) = self.fresh.get(i) {
            let map = if is_reliable {
                &mut self.messages
            } else {
                &mut self.unreliable
            };
            let Some(mut m) = map.remove(&id) else {
                self.fresh.remove(i);
                continue;
            };
            if m.reliable && m.next_new == 0 {
                // A reliable message starts only within the congestion
                // window, the receiver's byte window and its id window.
                let too_new = oldest_reliable.is_some_and(|o| id >= o + DEDUP_WINDOW);
                if reliable_waits || too_new || self.open_reliable + m.bytes.len() > RELIABLE_WINDOW
                {
                    reliable_waits = true;
                    self.messages.insert(id, m);
                    i += 1;
                    continue;
                }
            } else if m.reliable && !window {
                self.messages.insert(id, m);
                i += 1;
                continue;
            }
            while m.next_new < m.count {
                let data = m.piece(m.next_new);
                let piece = Piece {
                    reliable: m.reliable,
                    message_id: id,
                    order: m.order,
                    count: m.count,
                    index: m.next_new,
                    data: &data,
                };
                if plaintext.len() + piece.encoded_len() > limit {
                    break;
                }
                piece.encode(plaintext);
                if m.next_new == 0 && m.reliable {
                    self.open_reliable += m.bytes.len();
                }
                if m.reliable {
                    reliable.push((id, m.next_new));
                    if let Some(s) = m
                        .sends
                        .get_mut(usize::try_from(m.next_new).unwrap_or(usize::MAX))
                    {
                        *s += 1;
                    }
                }
                m.next_new += 1;
            }
            let done = m.next_new == m.count;
            if done {
                self.fresh.remove(i);
            }
            if m.reliable {
                self.messages.insert(id, m);
            } else if done {
                self.queued -= m.bytes.len();
            } else {
                self.unreliable.insert(id, m);
            }
            if !done {
                // The record is full.
                break;
            }
        }
    }

    fn count_send(&mut self, id: u64, index: u64) -> u32 {
        let Some(m) = self.messages.get_mut(&id) else {
            return 0;
        };
        match m
            .sends
            .get_mut(usize::try_from(index).unwrap_or(usize::MAX))
        {
            Some(s) => {
                *s += 1;
                *s
            }
            None => 0,
        }
    }

    /// Records that the record `counter` of `size` bytes carried `pieces`.
    pub(crate) fn on_sent(
        &mut self,
        now: Instant,
        counter: u64,
        size: usize,
        pieces: Vec<(u64, u64)>,
    ) {
        if pieces.is_empty() {
            return;
        }
        self.bytes_in_flight += size;
        self.in_flight.insert(
            counter,
            SentRecord {
                at: now,
                size,
                pieces,
            },
        );
    }

    /// Processes an acknowledgement of record counters.
    pub(crate) fn on_ack(&mut self, now: Instant, ranges: &[(u64, u64)], ack_delay: Duration) {
        let Some(&(_, largest)) = ranges.first() else {
            return;
        };
        let mut newly = false;
        for &(low, high) in ranges {
            let hit: Vec<u64> = self.in_flight.range(low..=high).map(|(c, _)| *c).collect();
            for counter in hit {
                let Some(rec) = self.in_flight.remove(&counter) else {
                    continue;
                };
                if counter == largest {
                    self.rtt
                        .sample(now.saturating_duration_since(rec.at), ack_delay);
                }
                newly = true;
                self.bytes_in_flight -= rec.size;
                self.grow_window(rec.size, rec.at);
                for (id, index) in rec.pieces {
                    self.piece_acked(id, index);
                }
            }
        }
        if newly {
            self.rtt.reset_backoff();
            self.largest_acked = Some(self.largest_acked.map_or(largest, |l| l.max(largest)));
        }
        self.detect_lost(now);
    }

    fn grow_window(&mut self, size: usize, sent_at: Instant) {
        if self.recovery_start.is_some_and(|r| sent_at <= r) {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd += size;
        } else {
            self.cwnd += (self.max_datagram * size / self.cwnd).max(1);
        }
    }

    fn piece_acked(&mut self, id: u64, index: u64) {
        let Some(m) = self.messages.get_mut(&id) else {
            return;
        };
        let Some(slot) = m
            .acked
            .get_mut(usize::try_from(index).unwrap_or(usize::MAX))
        else {
            return;
        };
        if *slot {
            return;
        }
        *slot = true;
        m.acked_count += 1;
        if m.acked_count == m.count {
            let len = m.bytes.len();
            self.messages.remove(&id);
            self.queued -= len;
            self.open_reliable -= len;
            self.events.push_back(SendEvent::Delivered(id));
        }
    }

    fn loss_delay(&self) -> Duration {
        let rtt = self.rtt.srtt().unwrap_or_default().max(self.rtt.latest());
        (rtt * 9 / 8).max(Duration::from_millis(1))
    }

    /// Declares records lost by the packet and time thresholds.
    fn detect_lost(&mut self, now: Instant) {
        let Some(largest) = self.largest_acked else {
            return;
        };
        let delay = self.loss_delay();
        let lost: Vec<u64> = self
            .in_flight
            .range(..largest)
            // Both tests hold for a prefix (counters and send times grow
            // together), so the scan stops at the first survivor.
            .take_while(|(c, r)| *c + PACKET_THRESHOLD <= largest || r.at + delay <= now)
            .map(|(c, _)| *c)
            .collect();
        if !lost.is_empty() {
            self.lose(now, &lost, false);
        }
    }

    fn lose(&mut self, now: Instant, counters: &[u64], timeout: bool) {
        let mut newest = None;
        for c in counters {
            let Some(rec) = self.in_flight.remove(c) else {
                continue;
            };
            self.bytes_in_flight -= rec.size;
            newest = newest.max(Some(rec.at));
            for piece in rec.pieces {
                if self.messages.contains_key(&piece.0) {
                    self.retransmit.push_back(piece);
                }
            }
        }
        let Some(sent_at) = newest else {
            return;
        };
        if timeout {
            self.ssthresh = (self.cwnd / 2).max(MIN_WINDOW * self.max_datagram);
            self.cwnd = MIN_WINDOW * self.max_datagram;
            self.recovery_start = Some(now);
        } else if self.recovery_start.is_none_or(|r| sent_at > r) {
            self.cwnd = (self.cwnd / 2).max(MIN_WINDOW * self.max_datagram);
            self.ssthresh = self.cwnd;
            self.recovery_start = Some(now);
        }
    }

    fn fail(&mut self, id: u64, error: UdpError) {
        if let Some(m) = self.messages.remove(&id) {
            self.queued -= m.bytes.len();
            if m.reliable && m.next_new > 0 {
                self.open_reliable -= m.bytes.len();
            }
            self.fresh.retain(|f| *f != (true, id));
            self.events
                .push_back(SendEvent::Failed(id, error, m.order.is_some()));
        }
    }

    /// When [`SendState::on_timeout`] has work: the earliest of the loss
    /// timer, the retransmission timer and a message deadline.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        // Counters and message ids grow with time, so the oldest record and
        // the oldest message are the first entries: O(log n), not a scan
        // (this runs on every wake-up of the driver).
        let oldest = self.in_flight.values().next().map(|r| r.at);
        let rto = oldest.map(|at| at + self.rtt.rto());
        let loss = self
            .largest_acked
            .filter(|&largest| self.in_flight.keys().next().is_some_and(|&c| c < largest))
            .and(oldest)
            .map(|at| at + self.loss_delay());
        let deadline = self
            .messages
            .values()
            .next()
            .map(|m| m.created + self.deadline);
        [rto, loss, deadline].into_iter().flatten().min()
    }

    /// Runs the timers due at `now`.
    pub(crate) fn on_timeout(&mut self, now: Instant) {
        self.detect_lost(now);
        let rto = self.rtt.rto();
        let expired = self
            .in_flight
            .values()
            .next()
            .map(|r| r.at)
            .is_some_and(|at| at + rto <= now);
        if expired {
            let all: Vec<u64> = self.in_flight.keys().copied().collect();
            self.lose(now, &all, true);
            self.rtt.on_timeout();
        }
        let late: Vec<u64> = self
            .messages
            .iter()
            .take_while(|(_, m)| m.created + self.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.fail(
                id,
                UdpError::DeliveryTimeout {
                    message: id,
                    after: self.deadline,
                },
            );
        }
    }

    /// Fails every message (the session ends).
    pub(crate) fn abandon(&mut self, why: impl Fn() -> UdpError) {
        let ids: Vec<u64> = self
            .messages
            .iter()
            .filter(|(_, m)| m.reliable)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.fail(id, why());
        }
        self.messages.clear();
        self.unreliable.clear();
        self.fresh.clear();
        self.retransmit.clear();
        self.in_flight.clear();
        self.queued = 0;
    }

    /// The congestion window in bytes.
    pub(crate) const fn cwnd(&self) -> usize {
        self.cwnd
    }
}

#[cfg(test)]
#[path = "send_tests.rs"]
mod tests;
