//! One established datagram session: sealing and opening records, the
//! items inside them, liveness, and the handshake's last retransmissions.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use netproto_crypto::{Established, Mode, Receiver, RekeyPolicy, Sender, Session, TAG_LEN};
use netproto_wire::{DatagramHeader, DatagramType, Frame, FrameKind, FrameLimits, ENVELOPE_LEN};

use crate::config::UdpConfig;
use crate::endpoint::Delivery;
use crate::error::{DropReason, RecordViolation, Result, UdpError};
use crate::items::{items, Item};
use crate::recv::{Budget, RecvState, Stored};
use crate::send::{SendEvent, SendState};
use crate::SessionInfo;

/// PINGs with longer payloads are not answered (as on streams).
const MAX_PING_PAYLOAD: usize = 64;
/// Longest BYE reason sent (it must fit one datagram with its frame).
const MAX_BYE_REASON: usize = 256;
/// Longest interval between the confirming PINGs of a two-message initiator.
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(4);

/// What a session reports to the application.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The handshake completed (both roles).
    Connected(Arc<SessionInfo>),
    /// A message arrived: one frame, and whether it was sent reliably.
    Message {
        /// The frame.
        frame: Frame,
        /// Whether the sender asked for reliable delivery.
        reliable: bool,
    },
    /// A reliable message was acknowledged in full (for an ordered message:
    /// the peer holds it; it hands it over once the earlier ones arrive).
    Delivered(u64),
    /// A reliable message was given up.
    Failed {
        /// Its id.
        message: u64,
        /// Why.
        error: UdpError,
    },
    /// The session ended (or its handshake failed); no more events follow.
    Closed(UdpError),
}

/// A datagram the handshake resends until the peer proves it got it.
#[derive(Debug)]
pub(crate) struct Resend {
    pub(crate) datagram: Vec<u8>,
    pub(crate) next: Instant,
    pub(crate) rto: Duration,
    pub(crate) max_rto: Duration,
    pub(crate) deadline: Instant,
}

impl Resend {
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.rto = (self.rto * 2).min(self.max_rto);
        self.next = now + self.rto;
        true
    }
}

/// An established session. See the module documentation.
pub(crate) struct UdpSession {
    pub(crate) remote: u32,
    pub(crate) peer: SocketAddr,
    pub(crate) info: Arc<SessionInfo>,
    sender: Sender,
    receiver: Receiver,
    epoch: Instant,
    tx: SendState,
    rx: RecvState,
    last_recv: Instant,
    last_send: Instant,
    keep_alive: Option<Duration>,
    idle: Duration,
    ping_seq: u64,
    limits: FrameLimits,
    max_payload: usize,
    record_room: usize,
    plaintext: Vec<u8>,
    /// Events with the bytes they hold against the endpoint budget.
    pub(crate) events: VecDeque<(Event, usize)>,
    /// Initiator of three messages: the confirmation, until a record arrives.
    pub(crate) confirm: Option<Resend>,
    /// Responder: the response, for duplicate initiations, until a record arrives.
    pub(crate) response: Option<Vec<u8>>,
    /// Responder of three messages: the initiator waits for a record.
    pub(crate) owe_record: bool,
    /// Initiator of two messages: PING until the responder's first record
    /// (the responder announces the session only when a record arrives).
    pub(crate) probe: Option<(Instant, Duration)>,
    /// Whether the application was told ([`Event::Connected`]); a
    /// responder's two-message session is announced by its first record.
    pub(crate) announced: bool,
    /// The initiation this session answered (source, initiator's index).
    pub(crate) init_key: Option<(SocketAddr, u32)>,
    /// An ordered message failed: the session must end.
    order_broken: Option<u64>,
    /// A last datagram (BYE) for the endpoint to send after a close.
    pub(crate) farewell: Option<Vec<u8>>,
    /// A responder's two-message session no record confirmed by then ends
    /// silently.
    pub(crate) unconfirmed_until: Option<Instant>,
    pub(crate) closed: bool,
}

impl std::fmt::Debug for UdpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSession")
            .field("info", &self.info)
            .field("remote", &self.remote)
            .field("peer", &self.peer)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl UdpSession {
    pub(crate) fn new(
        cfg: &UdpConfig,
        established: &Established,
        info: Arc<SessionInfo>,
        remote: u32,
        now: Instant,
    ) -> Self {
        let session = Session::new(
            established,
            Mode::Datagram,
            RekeyPolicy::default(),
            Duration::ZERO,
        );
        let (sender, receiver) = session.split();
        let record_room = cfg.max_datagram - ENVELOPE_LEN - TAG_LEN;
        Self {
            remote,
            peer: info.peer_addr,
            info,
            sender,
            receiver,
            epoch: now,
            tx: SendState::new(cfg, record_room),
            rx: RecvState::new(cfg, now),
            last_recv: now,
            last_send: now,
            keep_alive: cfg.keep_alive,
            idle: cfg.idle_timeout,
            ping_seq: 0,
            limits: FrameLimits::with_max_payload(cfg.max_message),
            // Never send more than the peer said it takes.
            max_payload: cfg.max_message.min(
                usize::try_from(established.peer_capabilities.max_frame).unwrap_or(usize::MAX),
            ),
            record_room,
            plaintext: Vec::with_capacity(record_room),
            events: VecDeque::new(),
            confirm: None,
            response: None,
            owe_record: false,
            probe: None,
            announced: true,
            init_key: None,
            order_broken: None,
            farewell: None,
            unconfirmed_until: None,
            closed: false,
        }
    }

    fn clock(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.epoch)
    }

    /// Seeds the RTT estimator with the handshake's round trip.
    pub(crate) fn rtt_sample(&mut self, rtt: Duration) {
        self.tx.rtt.sample(rtt, Duration::ZERO);
    }

    /// Queues a frame; returns its message id.
    pub(crate) fn send(&mut self, now: Instant, frame: &Frame, delivery: Delivery) -> Result<u64> {
        if self.closed {
            return Err(UdpError::Closed);
        }
        if matches!(frame.kind, FrameKind::Handshake | FrameKind::Ack) || frame.more {
            return Err(UdpError::Wire(netproto_wire::WireError::Unencodable(
                "HANDSHAKE, ACK and continued frames do not travel as datagram messages",
            )));
        }
        if frame.payload.len() > self.max_payload {
            return Err(UdpError::MessageTooLarge {
                len: frame.payload.len(),
                max: self.max_payload,
            });
        }
        let mut buf = BytesMut::with_capacity(frame.encoded_len());
        frame.encode(&mut buf);
        let (reliable, ordered) = match delivery {
            Delivery::Reliable => (true, false),
            Delivery::Ordered => (true, true),
            Delivery::Unreliable => (false, false),
        };
        self.tx.push(now, buf.freeze(), reliable, ordered)
    }

    /// Bytes queued for sending or awaiting acknowledgement.
    pub(crate) const fn queued(&self) -> usize {
        self.tx.queued()
    }

    /// Bytes that may still be queued.
    pub(crate) const fn room(&self) -> usize {
        self.tx.room()
    }

    /// Acknowledges what is unacknowledged without the usual delay.
    pub(crate) fn ack_now(&mut self, now: Instant) {
        self.rx.ack_now(now);
    }

    /// Bytes delivered to the application and not read yet.
    pub(crate) const fn set_backlog(&mut self, bytes: usize) {
        self.rx.backlog = bytes;
    }

    /// Writes the next datagram for the peer into `out`.
    pub(crate) fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        if self.closed {
            return Ok(false);
        }
        if let Some(c) = &mut self.confirm {
            if c.due(now) {
                out.extend_from_slice(&c.datagram);
                return Ok(true);
            }
        }
        if let Some((next, interval)) = self.probe {
            if now >= next {
                self.ping(now);
                self.probe = Some((now + interval, (interval * 2).min(MAX_PROBE_INTERVAL)));
            }
        }
        self.plaintext.clear();
        let sendable = self.tx.has_sendable();
        if let Some(mut ack) = self.rx.take_ack(now, sendable) {
            while ack.ranges.len() > 1 && ack.encoded_len() > self.record_room / 2 {
                ack.ranges.pop();
            }
            ack.encode(&mut self.plaintext);
        }
        let pieces = self.tx.fill(&mut self.plaintext, self.record_room);
        self.drain_send_events();
        if let Some(message) = self.order_broken {
            return Err(UdpError::OrderBroken(message));
        }
        if self.plaintext.is_empty() && self.owe_record {
            self.plaintext.push(0);
        }
        if self.plaintext.is_empty() {
            return Ok(false);
        }
        self.owe_record = false;
        let counter = self.seal_plaintext(now, out)?;
        self.tx.on_sent(now, counter, out.len(), pieces);
        self.last_send = now;
        Ok(true)
    }

    /// Opens and processes a RECORD datagram addressed to this session.
    pub(crate) fn handle_record(
        &mut self,
        now: Instant,
        header: &DatagramHeader,
        envelope: &[u8],
        body: &mut [u8],
        budget: &mut Budget,
    ) -> std::result::Result<(), DropReason> {
        if self.closed {
            return Err(DropReason::UnknownSession);
        }
        let clock = self.clock(now);
        let Ok(len) = self
            .receiver
            .open(clock, header.counter, header.key_phase, envelope, body)
        else {
            return Err(DropReason::Unauthentic);
        };
        self.last_recv = now;
        self.confirm = None;
        self.response = None;
        self.probe = None;
        self.unconfirmed_until = None;
        if !self.announced {
            self.announced = true;
            self.events
                .push_front((Event::Connected(self.info.clone()), 0));
        }
        let mut eliciting = false;
        let mut room = true;
        for item in items(&body[..len]) {
            match item {
                Ok(Item::Ack(ack)) => {
                    let delay = Duration::from_micros(ack.delay_micros);
                    self.tx.on_ack(now, &ack.ranges, delay);
                }
                Ok(Item::Piece(piece)) => {
                    eliciting |= piece.reliable;
                    match self.rx.on_piece(now, &piece, budget) {
                        Ok(Stored::Yes) => {}
                        Ok(Stored::NoRoom) => room = false,
                        Err(v) => return Err(self.violation(UdpError::Record(v), budget)),
                    }
                }
                Err(e) => return Err(self.violation(e, budget)),
            }
        }
        if eliciting && room {
            self.rx.on_ack_eliciting(now, header.counter);
        }
        self.deliver(now, budget)?;
        self.drain_send_events();
        self.end_if_order_broken(now, budget);
        Ok(())
    }

    /// An authenticated peer broke the rules: the session ends.
    fn violation(&mut self, error: UdpError, budget: &mut Budget) -> DropReason {
        self.close_with(error, budget);
        DropReason::BadRecord
    }

    fn deliver(
        &mut self,
        now: Instant,
        budget: &mut Budget,
    ) -> std::result::Result<(), DropReason> {
        while let Some((reliable, bytes)) = self.rx.complete.pop_front() {
            let charged = bytes.len();
            let frame = match Frame::decode(&bytes, &self.limits) {
                Ok((frame, used)) if used == bytes.len() => frame,
                _ => {
                    budget.give(charged);
                    return Err(
                        self.violation(UdpError::Record(RecordViolation::BadMessage(0)), budget)
                    );
                }
            };
            if frame.kind.is_connection_frame() && frame.stream_id != 0 {
                // WIRE.md: connection frames use stream 0.
                budget.give(charged);
                return Err(
                    self.violation(UdpError::Record(RecordViolation::BadMessage(0)), budget)
                );
            }
            match frame.kind {
                FrameKind::Ping => {
                    budget.give(charged);
                    if reliable {
                        self.rx.ack_now(now);
                    }
                    if frame.payload.len() <= MAX_PING_PAYLOAD {
                        let pong = Frame::new(FrameKind::Pong, 0, frame.payload);
                        // A full queue drops the answer, as a lost datagram would.
                        let _ = self.send(now, &pong, Delivery::Unreliable);
                    }
                }
                FrameKind::Pong => budget.give(charged),
                FrameKind::Bye => {
                    budget.give(charged);
                    let reason = (!frame.payload.is_empty())
                        .then(|| String::from_utf8_lossy(&frame.payload).into_owned());
                    self.close_with(UdpError::PeerClosed(reason), budget);
                    return Ok(());
                }
                FrameKind::Handshake | FrameKind::Ack => {
                    budget.give(charged);
                    return Err(
                        self.violation(UdpError::Record(RecordViolation::BadMessage(0)), budget)
                    );
                }
                // Datagram sessions negotiate no extensions yet (they
                // advertise none): WIRE.md says such frames are skipped.
                FrameKind::Extension(code) => {
                    budget.give(charged);
                    metrics::counter!("netproto_extension_frames_skipped_total").increment(1);
                    tracing::trace!(code, "skipping an extension frame not negotiated");
                }
                _ => self
                    .events
                    .push_back((Event::Message { frame, reliable }, charged)),
            }
        }
        Ok(())
    }

    fn drain_send_events(&mut self) {
        while let Some(e) = self.tx.events.pop_front() {
            let event = match e {
                SendEvent::Delivered(id) => Event::Delivered(id),
                SendEvent::Failed(message, error, ordered) => {
                    // Later ordered messages can never be delivered in
                    // order now: the session ends with the first failure.
                    if ordered && self.order_broken.is_none() {
                        self.order_broken = Some(message);
                    }
                    Event::Failed { message, error }
                }
            };
            self.events.push_back((event, 0));
        }
    }

    /// Ends the session: fails what is unsent, frees what is held, reports why.
    pub(crate) fn close_with(&mut self, error: UdpError, budget: &mut Budget) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.tx.abandon(|| UdpError::Closed);
        self.drain_send_events();
        self.rx.release(budget);
        if self.announced {
            self.events.push_back((Event::Closed(error), 0));
        } else {
            // Never announced: the application knows nothing to close.
            for (_, charged) in self.events.drain(..) {
                budget.give(charged);
            }
        }
    }

    /// Seals `self.plaintext` as the next RECORD into `out`; returns its counter.
    fn seal_plaintext(&mut self, now: Instant, out: &mut Vec<u8>) -> Result<u64> {
        let r = self.sender.reserve(self.clock(now))?;
        let header = DatagramHeader {
            kind: DatagramType::Record,
            session: self.remote,
            counter: r.counter(),
            fragment: None,
            key_phase: r.key_phase(),
        };
        header.write(out);
        let tag = self
            .sender
            .seal(r, &out[..ENVELOPE_LEN], &mut self.plaintext)?;
        out.extend_from_slice(&self.plaintext);
        out.extend_from_slice(&tag);
        Ok(header.counter)
    }

    /// A sealed BYE for the peer (best effort: sent once, unacknowledged);
    /// the reason is cut to 256 bytes on a character boundary.
    pub(crate) fn bye(&mut self, now: Instant, reason: &str, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        let mut end = reason.len().min(MAX_BYE_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let frame = Frame::new(
            FrameKind::Bye,
            0,
            Bytes::copy_from_slice(&reason.as_bytes()[..end]),
        );
        let mut msg = BytesMut::new();
        frame.encode(&mut msg);
        self.plaintext.clear();
        crate::items::Piece {
            reliable: false,
            message_id: self.tx.take_id(),
            order: None,
            count: 1,
            index: 0,
            data: &msg,
        }
        .encode(&mut self.plaintext);
        self.seal_plaintext(now, out)?;
        Ok(())
    }

    /// When [`UdpSession::handle_timeout`] has work.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let keep_alive = self
            .keep_alive
            .filter(|_| self.announced)
            .map(|k| self.last_send + k);
        [
            self.tx.next_timeout(),
            self.rx.ack_due(),
            self.rx.next_expiry(),
            Some(self.last_recv + self.idle),
            keep_alive,
            self.confirm.as_ref().map(|c| c.next.min(c.deadline)),
            self.probe.map(|(next, _)| next),
            self.unconfirmed_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the timers due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant, budget: &mut Budget) {
        if self.closed {
            return;
        }
        if now >= self.last_recv + self.idle {
            self.close_with(UdpError::IdleTimeout(self.idle), budget);
            return;
        }
        if let Some(c) = &self.confirm {
            if now >= c.deadline {
                let waited = c.deadline.saturating_duration_since(self.epoch);
                self.close_with(UdpError::HandshakeTimeout(waited), budget);
                return;
            }
        }
        if self.unconfirmed_until.is_some_and(|t| now >= t) {
            // Never announced: ends without an event.
            self.close_with(UdpError::HandshakeTimeout(self.idle), budget);
            return;
        }
        self.tx.on_timeout(now);
        self.drain_send_events();
        if self.end_if_order_broken(now, budget) {
            return;
        }
        self.rx.expire(now, budget);
        // An unconfirmed session sends nothing unasked (its initiator may
        // be spoofed).
        if self.announced && self.keep_alive.is_some_and(|k| now >= self.last_send + k) {
            self.ping(now);
        }
        self.drain_send_events();
    }

    /// Ends the session after a failed ordered message, with a BYE for the
    /// peer; returns whether it did.
    fn end_if_order_broken(&mut self, now: Instant, budget: &mut Budget) -> bool {
        let Some(message) = self.order_broken else {
            return false;
        };
        if self.closed {
            return true;
        }
        let mut out = Vec::new();
        if self
            .bye(now, "ordered message not delivered", &mut out)
            .is_ok()
        {
            self.farewell = Some(out);
        }
        self.close_with(UdpError::OrderBroken(message), budget);
        true
    }

    /// Queues our keep-alive PING (an 8-byte sequence number).
    fn ping(&mut self, now: Instant) {
        self.ping_seq += 1;
        let seq = Bytes::copy_from_slice(&self.ping_seq.to_be_bytes());
        // A full queue skips it, as a lost datagram would.
        let _ = self.send(
            now,
            &Frame::new(FrameKind::Ping, 0, seq),
            Delivery::Unreliable,
        );
        self.last_send = now;
    }

    /// Counters for stats.
    pub(crate) fn stats(&self) -> SessionStats {
        SessionStats {
            srtt: self.tx.rtt.srtt(),
            cwnd: self.tx.cwnd(),
            retransmitted: self.tx.retransmitted,
            duplicates: self.rx.duplicates,
            queued: self.tx.queued(),
        }
    }
}

/// Figures of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Smoothed round-trip time, once measured.
    pub srtt: Option<Duration>,
    /// Congestion window in bytes.
    pub cwnd: usize,
    /// Pieces retransmitted.
    pub retransmitted: u64,
    /// Duplicate pieces received (and dropped).
    pub duplicates: u64,
    /// Bytes queued for sending or awaiting acknowledgement.
    pub queued: usize,
}
