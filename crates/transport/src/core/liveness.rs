//! Every deadline of a connection, in one place: the handshake deadline,
//! the packet deadline (a record that has started must complete), the idle
//! deadline and the keep-alive PING. Time is passed in; nothing here reads
//! a clock.

use std::time::{Duration, Instant};

use crate::error::TimeoutKind;

/// What a deadline that passed asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// The connection is dead: this timeout fired.
    Fail(TimeoutKind, Duration),
    /// Send a keep-alive PING.
    Ping,
}

#[derive(Debug)]
pub(crate) struct Liveness {
    handshake_timeout: Duration,
    handshake_deadline: Option<Instant>,
    packet_timeout: Duration,
    message_timeout: Duration,
    /// When the message being reassembled started.
    message_started: Option<Instant>,
    keep_alive: Option<Duration>,
    idle_timeout: Option<Duration>,
    /// The last time an authenticated record arrived (or reading resumed
    /// after the application held the connection).
    last_rx: Instant,
    /// When the current partial packet started to be waited for.
    packet_started: Option<Instant>,
    /// Since when the application has not been reading (it holds a frame,
    /// has not started, or dropped a read): idle and keep-alive deadlines
    /// are suspended, and that time does not count as silence.
    paused_at: Option<Instant>,
    /// Our outstanding PING: its sequence number and when it was queued.
    ping: Option<(u64, Instant)>,
    next_ping: u64,
    rtt: Option<Duration>,
}

impl Liveness {
    pub(crate) fn new(now: Instant, cfg: &crate::config::ConnectionConfig) -> Self {
        Self {
            handshake_timeout: cfg.handshake_timeout,
            handshake_deadline: now.checked_add(cfg.handshake_timeout),
            packet_timeout: cfg.packet_timeout,
            message_timeout: cfg.message_timeout,
            message_started: None,
            keep_alive: cfg.keep_alive,
            idle_timeout: cfg.idle_timeout,
            last_rx: now,
            packet_started: None,
            paused_at: None,
            ping: None,
            next_ping: 1,
            rtt: None,
        }
    }

    /// The handshake finished: its deadline no longer applies; idle time
    /// counts from here.
    pub(crate) fn established(&mut self, now: Instant) {
        self.handshake_deadline = None;
        self.last_rx = now;
        // Until the application first reads, nobody could answer a PING.
        self.paused_at = Some(now);
    }

    /// We said BYE: no more keep-alive PINGs (the peer's BYE or EOF, or
    /// the idle deadline, ends the connection).
    pub(crate) fn stop_keep_alive(&mut self) {
        self.keep_alive = None;
    }

    /// An authenticated record (or handshake message) arrived.
    pub(crate) fn received(&mut self, now: Instant) {
        self.last_rx = now;
        self.packet_started = None;
    }

    /// Bytes of a record are buffered but the record is incomplete: the
    /// packet deadline starts, if it has not.
    pub(crate) fn in_packet(&mut self, now: Instant) {
        self.packet_started.get_or_insert(now);
    }

    /// Whether a continued message is being reassembled (its deadline runs
    /// from the first piece).
    pub(crate) fn reassembling(&mut self, now: Instant, yes: bool) {
        if !yes {
            self.message_started = None;
        } else if self.message_started.is_none() {
            self.message_started = Some(now);
        }
    }

    /// The application stopped reading (took a frame, or dropped a read).
    pub(crate) fn pause(&mut self, now: Instant) {
        self.paused_at.get_or_insert(now);
    }

    /// The application is reading again: the time it spent away is not
    /// counted as silence (the idle clock moves forward by it, so frequent
    /// pauses never reset it).
    pub(crate) fn resume(&mut self, now: Instant) {
        if let Some(at) = self.paused_at.take() {
            let away = now.saturating_duration_since(at);
            self.last_rx += away;
            // The packet and message deadlines count only time spent
            // waiting for the peer, and are moved, never restarted (a peer
            // cannot reset them by making the application busy).
            if let Some(s) = &mut self.packet_started {
                *s += away;
            }
            if let Some(s) = &mut self.message_started {
                *s += away;
            }
        }
    }

    /// The earliest deadline, if any is armed. While paused only the
    /// handshake deadline runs: the others count time spent waiting for
    /// the peer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.handshake_deadline.is_some() || self.paused_at.is_some() {
            return self.handshake_deadline;
        }
        [
            self.packet_started
                .and_then(|s| s.checked_add(self.packet_timeout)),
            self.message_started
                .and_then(|s| s.checked_add(self.message_timeout)),
            self.idle_timeout.and_then(|t| self.last_rx.checked_add(t)),
            self.keep_alive
                .filter(|_| self.ping.is_none())
                .and_then(|t| self.last_rx.checked_add(t)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// What is due at `now`, most severe first.
    pub(crate) fn due(&self, now: Instant) -> Option<Due> {
        let passed = |t: Option<Instant>| t.is_some_and(|t| now >= t);
        if passed(self.handshake_deadline) {
            return Some(Due::Fail(TimeoutKind::Handshake, self.handshake_timeout));
        }
        if self.handshake_deadline.is_some() || self.paused_at.is_some() {
            return None;
        }
        if passed(
            self.packet_started
                .and_then(|s| s.checked_add(self.packet_timeout)),
        ) {
            return Some(Due::Fail(TimeoutKind::Packet, self.packet_timeout));
        }
        if passed(
            self.message_started
                .and_then(|s| s.checked_add(self.message_timeout)),
        ) {
            return Some(Due::Fail(TimeoutKind::Message, self.message_timeout));
        }
        if let Some(idle) = self.idle_timeout {
            if passed(self.last_rx.checked_add(idle)) {
                return Some(Due::Fail(TimeoutKind::ReadIdle, idle));
            }
        }
        if self.ping.is_none() && passed(self.keep_alive.and_then(|t| self.last_rx.checked_add(t)))
        {
            return Some(Due::Ping);
        }
        None
    }

    /// A PING of ours is about to be queued: its sequence number.
    pub(crate) fn ping_sent(&mut self, now: Instant) -> u64 {
        let seq = self.next_ping;
        self.next_ping += 1;
        self.ping = Some((seq, now));
        seq
    }

    /// A PONG arrived; if it answers our outstanding PING, the round trip
    /// is sampled.
    pub(crate) fn pong(&mut self, now: Instant, payload: &[u8]) -> Option<Duration> {
        let (seq, sent) = self.ping?;
        if payload != seq.to_be_bytes() {
            return None;
        }
        self.ping = None;
        let rtt = now.saturating_duration_since(sent);
        self.rtt = Some(rtt);
        Some(rtt)
    }

    /// The sequence number of the outstanding PING, if any.
    pub(crate) fn outstanding_ping(&self) -> Option<u64> {
        self.ping.map(|(seq, _)| seq)
    }

    /// When the peer was last heard from (or reading last resumed).
    pub(crate) fn last_activity(&self) -> Instant {
        self.last_rx
    }

    /// The latest round-trip sample.
    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// PINGs answered so far (sequence numbers below this are settled).
    pub(crate) fn settled_below(&self) -> u64 {
        self.ping.map_or(self.next_ping, |(seq, _)| seq)
    }
}
