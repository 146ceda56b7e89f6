//! The sans-IO endpoint: one socket's worth of sessions.
//!
//! Datagrams go in through [`Endpoint::handle_datagram`], with the time and
//! the source address; datagrams to send come out of
//! [`Endpoint::poll_transmit`], application events out of
//! [`Endpoint::poll_event`], and [`Endpoint::poll_timeout`] says when to call
//! [`Endpoint::handle_timeout`]. No socket, clock or runtime inside.
//! Sessions exist only after a completed handshake; each is known by the
//! index this side chose ([`SessionId`]), which the peer puts in every
//! datagram it sends us.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netproto_crypto::cookie::{CookieKeys, MAC_LEN};
use netproto_crypto::{Handshake, HandshakeConfig, TimestampGuard};
use netproto_wire::{DatagramHeader, DatagramRef, DatagramType, Frame};

use crate::config::UdpConfig;
use crate::error::{DropReason, Result, UdpError};
use crate::handshake::{append_macs, handshake_datagram, CookieJar, RateLimiter};
use crate::recv::Budget;
use crate::session::{Event, Resend, SessionStats, UdpSession};
use crate::{EndpointRng, SessionInfo};

mod handshakes;

/// A session, by the index this endpoint chose for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// How a message is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Delivery {
    /// Acknowledged and retransmitted until its deadline; delivered exactly once.
    #[default]
    Reliable,
    /// Sent once; lost if any of its datagrams is lost.
    Unreliable,
    /// Reliable, and delivered in the order sent among the session's
    /// ordered messages (a later one waits for an earlier one). If one
    /// fails, the session ends with [`UdpError::OrderBroken`].
    Ordered,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// The bytes.
    pub contents: Vec<u8>,
}

/// Counters of an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Datagrams handed in.
    pub received: u64,
    /// Datagrams handed out.
    pub sent: u64,
    /// Datagrams dropped, by reason.
    pub dropped: HashMap<DropReason, u64>,
    /// Cookie replies sent.
    pub cookies_sent: u64,
    /// Handshakes completed (both roles).
    pub handshakes: u64,
    /// Bytes held for reassembly and undelivered messages, all sessions.
    pub buffered: usize,
}

impl EndpointStats {
    /// Datagrams dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(&reason).copied().unwrap_or(0)
    }
}

/// The accepting side's handshake state.
struct Responder {
    hs: HandshakeConfig,
    keys: CookieKeys,
    unkeyed: Option<CookieKeys>,
    jar: CookieJar,
    limiter: RateLimiter,
    guard: TimestampGuard,
}

/// An initiation in progress.
struct Initiating {
    hs: Handshake,
    peer: SocketAddr,
    /// Message 0 without MACs.
    bare: Vec<u8>,
    keys: CookieKeys,
    mac1: [u8; MAC_LEN],
    cookie: Option<([u8; MAC_LEN], Instant)>,
    first_sent: Instant,
    retransmitted: bool,
    resend: Resend,
}

/// Who a new session is between.
#[derive(Clone, Copy)]
struct Ends {
    local: u32,
    remote: u32,
    peer: SocketAddr,
    initiator: bool,
}

/// A responder waiting for message 2.
struct Responding {
    hs: Handshake,
    peer: SocketAddr,
    peer_index: u32,
    response: Vec<u8>,
    sent_at: Instant,
    resent: bool,
    deadline: Instant,
    /// Records from the peer that arrived before the handshake's last
    /// message (the initiator sends its first record right behind it, so
    /// any reordering puts it first); handled once the session exists.
    early: Vec<Vec<u8>>,
}

/// Most records held per responding handshake: at the default 64 pending
/// handshakes, 64 × 4 × 1,200 bytes = 300 KiB at most.
const EARLY_RECORDS: usize = 4;

/// The endpoint. See the module documentation.
pub struct Endpoint {
    cfg: UdpConfig,
    responder: Option<Responder>,
    sessions: HashMap<u32, UdpSession>,
    initiating: HashMap<u32, Initiating>,
    responding: HashMap<u32, Responding>,
    /// Duplicate initiations: (source, initiator's index) → our index,
    /// while the handshake is pending and for the session's life.
    by_init: HashMap<(SocketAddr, u32), u32>,
    /// Responder sessions of two-message patterns that no record confirmed
    /// yet: not announced to the application, counted as pending handshakes.
    half_open: HashSet<u32>,
    rng: Box<dyn EndpointRng>,
    epoch: Instant,
    wall_at_epoch: Duration,
    transmits: VecDeque<Transmit>,
    events: VecDeque<(SessionId, Event, usize)>,
    ready: VecDeque<u32>,
    /// Sessions that received records since the last
    /// [`Endpoint::flush_acks`] (at most [`MAX_TOUCHED`]).
    touched: Vec<u32>,
    ready_set: HashSet<u32>,
    budget: Budget,
    stats: EndpointStats,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("sessions", &self.sessions.len())
            .field("initiating", &self.initiating.len())
            .field("responding", &self.responding.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Sessions [`Endpoint::flush_acks`] remembers between two calls; those
/// beyond acknowledge on their usual schedule.
const MAX_TOUCHED: usize = 256;

/// Total bytes all sessions of an endpoint may hold for reassembly and
/// undelivered messages: 64 MiB (16 sessions' full reliable windows).
pub const DEFAULT_ENDPOINT_BUDGET: usize = 64 << 20;

impl Endpoint {
    /// An endpoint. With `accept`, it answers handshakes as the responder
    /// (the transport label is forced to `"udp"`); without, it only
    /// connects. `now` and `wall` (Unix time, for IK timestamps) anchor
    /// its clocks.
    ///
    /// # Errors
    /// [`UdpError::Crypto`] if `accept` lacks a static key.
    pub fn new(
        cfg: UdpConfig,
        accept: Option<HandshakeConfig>,
        mut rng: Box<dyn EndpointRng>,
        now: Instant,
        wall: Duration,
    ) -> Result<Self> {
        let cfg = cfg.normalized();
        let responder = match accept {
            None => None,
            Some(hs) => {
                let hs = advertise(hs, &cfg);
                // Fails early without a static key.
                Handshake::responder(hs.clone())?;
                let public = hs.local_key.as_ref().map(|k| *k.public()).ok_or(
                    netproto_crypto::CryptoError::MissingKey("responder static key"),
                )?;
                let mut secret = [0u8; 32];
                rng.fill_bytes(&mut secret);
                Some(Responder {
                    keys: CookieKeys::for_responder(Some(&public)),
                    unkeyed: cfg
                        .handshake
                        .accept_unkeyed_mac1
                        .then(|| CookieKeys::for_responder(None)),
                    jar: CookieJar::new(secret, now),
                    limiter: RateLimiter::new(
                        cfg.handshake.per_source_rate,
                        cfg.handshake.per_source_burst,
                    ),
                    guard: TimestampGuard::new(cfg.max_sessions.max(1024)),
                    hs,
                })
            }
        };
        Ok(Self {
            cfg,
            responder,
            sessions: HashMap::new(),
            initiating: HashMap::new(),
            responding: HashMap::new(),
            by_init: HashMap::new(),
            half_open: HashSet::new(),
            rng,
            epoch: now,
            wall_at_epoch: wall,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            ready: VecDeque::new(),
            touched: Vec::new(),
            ready_set: HashSet::new(),
            budget: Budget {
                used: 0,
                limit: DEFAULT_ENDPOINT_BUDGET,
            },
            stats: EndpointStats::default(),
            scratch: Vec::new(),
        })
    }

    /// Sets the total bytes all sessions may hold (default
    /// [`DEFAULT_ENDPOINT_BUDGET`]).
    pub fn set_budget(&mut self, bytes: usize) {
        self.budget.limit = bytes;
    }

    /// The configuration in force.
    pub const fn config(&self) -> &UdpConfig {
        &self.cfg
    }

    fn wall(&self, now: Instant) -> Duration {
        self.wall_at_epoch + now.saturating_duration_since(self.epoch)
    }

    fn new_index(&mut self) -> u32 {
        loop {
            let i = self.rng.next_u32();
            if i != 0
                && !self.sessions.contains_key(&i)
                && !self.initiating.contains_key(&i)
                && !self.responding.contains_key(&i)
            {
                return i;
            }
        }
    }

    fn drop(&mut self, reason: DropReason) {
        let total = self.stats.dropped.entry(reason).or_insert(0);
        *total += 1;
        metrics::counter!("netproto_udp_dropped_total", "reason" => reason.label()).increment(1);
        // Rate-limited by count: the 1st, 2nd, 4th, 8th, … drop of each
        // reason is logged, so a flood of a million costs 20 lines.
        if total.is_power_of_two() {
            tracing::info!(reason = reason.label(), total = *total, "datagrams dropped");
        }
    }

    fn table_full(&self) -> bool {
        self.sessions.len() + self.initiating.len() + self.responding.len() >= self.cfg.max_sessions
    }

    /// Starts a handshake with `peer`; the session's events follow under
    /// the returned id ([`Event::Connected`] or [`Event::Closed`]).
    ///
    /// # Errors
    /// [`UdpError::SessionTableFull`], and [`UdpError::Crypto`] for a
    /// configuration the pattern cannot run with.
    pub fn connect(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        cfg: HandshakeConfig,
    ) -> Result<SessionId> {
        if self.table_full() {
            return Err(UdpError::SessionTableFull(self.cfg.max_sessions));
        }
        let cfg = advertise(cfg, &self.cfg);
        let keys = CookieKeys::for_responder(cfg.remote_key.as_ref());
        let mut hs = Handshake::initiator(cfg)?;
        let mut noise = Vec::new();
        let wall = self.wall(now);
        hs.write_message(&mut RngRef(&mut *self.rng), wall, &mut noise)?;
        let local = self.new_index();
        let mut bare = Vec::new();
        handshake_datagram(0, 0, local, &noise, &mut bare);
        let mut datagram = bare.clone();
        let mac1 = append_macs(&mut datagram, &keys, None);
        let limits = self.cfg.handshake;
        self.initiating.insert(
            local,
            Initiating {
                hs,
                peer,
                bare,
                keys,
                mac1,
                cookie: None,
                first_sent: now,
                retransmitted: false,
                resend: Resend {
                    datagram: Vec::new(),
                    next: now + limits.initial_rto,
                    rto: limits.initial_rto,
                    max_rto: limits.max_rto,
                    deadline: now + limits.timeout,
                },
            },
        );
        self.transmits.push_back(Transmit {
            destination: peer,
            contents: datagram,
        });
        Ok(SessionId(local))
    }

    /// Takes one received datagram. Whatever it holds, it is either used or
    /// counted as dropped ([`EndpointStats::dropped`]); it never fails the
    /// endpoint. `datagram` is decrypted in place.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &mut [u8]) {
        self.stats.received += 1;
        if datagram.len() > UdpConfig::MAX_DATAGRAM {
            return self.drop(DropReason::Oversize);
        }
        let (header, envelope_len) = match DatagramRef::parse(datagram) {
            Ok(d) if d.header.fragment.is_none() => (d.header, d.envelope.len()),
            _ => return self.drop(DropReason::Malformed),
        };
        match header.kind {
            DatagramType::Record => self.on_record(now, from, &header, envelope_len, datagram),
            DatagramType::Handshake => match header.counter {
                0 if header.session == 0 => self.on_initiation(now, from, datagram),
                1 => self.on_response(now, from, header.session, &datagram[envelope_len..]),
                2 => self.on_confirm(now, from, header.session, &datagram[envelope_len..]),
                _ => self.drop(DropReason::Malformed),
            },
            DatagramType::Cookie => {
                self.on_cookie(now, from, header.session, &datagram[envelope_len..]);
            }
            _ => self.drop(DropReason::Malformed),
        }
    }

    /// A record datagram whose envelope is `header`.
    fn on_record(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &DatagramHeader,
        envelope_len: usize,
        datagram: &mut [u8],
    ) {
        {
            let Some(session) = self.sessions.get_mut(&header.session) else {
                match self.responding.get_mut(&header.session) {
                    Some(p) if p.peer == from && p.early.len() < EARLY_RECORDS => {
                        p.early.push(datagram.to_vec());
                        return;
                    }
                    _ => return self.drop(DropReason::UnknownSession),
                }
            };
            let (envelope, body) = datagram.split_at_mut(envelope_len);
            match session.handle_record(now, header, envelope, body, &mut self.budget) {
                Ok(()) => {
                    // Authentic: the peer may have moved (NAT rebinding).
                    session.peer = from;
                    if self.touched.len() < MAX_TOUCHED
                        && self.touched.last() != Some(&header.session)
                    {
                        self.touched.push(header.session);
                    }
                }
                Err(reason) => self.drop(reason),
            }
            self.after(header.session);
        }
    }

    /// The end of a burst: the driver has read every datagram waiting on
    /// its socket. Sessions that received records since the last call
    /// acknowledge them now rather than after `max_ack_delay`: delaying an
    /// ACK only pays while more records are about to arrive, and a sender
    /// with a small window would otherwise wait out the delay on every
    /// round trip (measured: 64-byte pipelined echo capped at 13,104 msg/s,
    /// 128 messages per two 5 ms delays; 1 MiB messages at 5 % loss at
    /// 1.26 MB/s).
    pub fn flush_acks(&mut self, now: Instant) {
        for id in std::mem::take(&mut self.touched) {
            if let Some(s) = self.sessions.get_mut(&id) {
                s.ack_now(now);
                self.mark_ready(id);
            }
        }
    }

    fn mark_ready(&mut self, id: u32) {
        if self.ready_set.insert(id) {
            self.ready.push_back(id);
        }
    }

    /// Moves a session's events out and forgets it once closed.
    fn after(&mut self, id: u32) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if let Some(contents) = s.farewell.take() {
            self.transmits.push_back(Transmit {
                destination: s.peer,
                contents,
            });
        }
        while let Some((event, charged)) = s.events.pop_front() {
            self.events.push_back((SessionId(id), event, charged));
        }
        if s.announced {
            self.half_open.remove(&id);
        }
        if s.closed {
            if let Some(key) = s.init_key {
                self.by_init.remove(&key);
            }
            self.half_open.remove(&id);
            self.sessions.remove(&id);
        } else {
            self.mark_ready(id);
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let Some(t) = self.transmits.pop_front() {
            self.stats.sent += 1;
            return Some(t);
        }
        while let Some(id) = self.ready.pop_front() {
            let Some(s) = self.sessions.get_mut(&id) else {
                self.ready_set.remove(&id);
                continue;
            };
            let mut out = std::mem::take(&mut self.scratch);
            let sent = s.poll_transmit(now, &mut out);
            let destination = s.peer;
            match sent {
                Ok(true) => {
                    self.ready.push_back(id);
                    self.after(id);
                    self.stats.sent += 1;
                    // The buffer goes out as is (no copy per datagram).
                    return Some(Transmit {
                        destination,
                        contents: out,
                    });
                }
                Ok(false) => {
                    self.ready_set.remove(&id);
                    self.scratch = out;
                }
                Err(e) => {
                    // Tell the peer (an ordered message failed, or the
                    // keys are used up: then the BYE cannot be sealed).
                    if s.bye(now, "session failed", &mut out).is_ok() {
                        self.transmits.push_back(Transmit {
                            destination,
                            contents: out.clone(),
                        });
                    }
                    self.scratch = out;
                    s.close_with(e, &mut self.budget);
                    self.ready_set.remove(&id);
                    self.after(id);
                }
            }
        }
        None
    }

    /// The next application event.
    pub fn poll_event(&mut self) -> Option<(SessionId, Event)> {
        let (id, event, charged) = self.events.pop_front()?;
        self.budget.used = self.budget.used.saturating_sub(charged);
        Some((id, event))
    }

    /// When to call [`Endpoint::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sessions = self.sessions.values().filter_map(UdpSession::next_timeout);
        let init = self
            .initiating
            .values()
            .map(|i| i.resend.next.min(i.resend.deadline));
        let resp = self.responding.values().map(|p| p.deadline);
        sessions.chain(init).chain(resp).min()
    }

    /// Runs every timer due at `now`: retransmissions, deadlines, keep-alives.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<u32> = self
            .initiating
            .iter()
            .filter(|(_, i)| i.resend.next <= now || i.resend.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(init) = self.initiating.get_mut(&id) else {
                continue;
            };
            if init.resend.deadline <= now {
                let waited = init
                    .resend
                    .deadline
                    .saturating_duration_since(init.first_sent);
                self.initiating.remove(&id);
                self.events.push_back((
                    SessionId(id),
                    Event::Closed(UdpError::HandshakeTimeout(waited)),
                    0,
                ));
                continue;
            }
            if init.resend.due(now) {
                init.retransmitted = true;
                let destination = init.peer;
                let contents = Self::initiation(init, now);
                self.transmits.push_back(Transmit {
                    destination,
                    contents,
                });
            }
        }
        let expired: Vec<u32> = self
            .responding
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(p) = self.responding.remove(&id) {
                self.by_init.remove(&(p.peer, p.peer_index));
            }
        }
        let due: Vec<u32> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.next_timeout().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(s) = self.sessions.get_mut(&id) {
                s.handle_timeout(now, &mut self.budget);
            }
            self.after(id);
        }
    }

    /// Queues a frame on a session; returns its message id. Reliable
    /// messages end in [`Event::Delivered`] or [`Event::Failed`].
    ///
    /// # Errors
    /// [`UdpError::UnknownSession`], [`UdpError::MessageTooLarge`],
    /// [`UdpError::UnreliableTooLarge`], [`UdpError::SendQueueFull`].
    pub fn send(
        &mut self,
        now: Instant,
        id: SessionId,
        frame: &Frame,
        delivery: Delivery,
    ) -> Result<u64> {
        let s = self
            .sessions
            .get_mut(&id.0)
            .ok_or(UdpError::UnknownSession(id.0))?;
        let message = s.send(now, frame, delivery)?;
        self.mark_ready(id.0);
        Ok(message)
    }

    /// Closes a session: a BYE goes to the peer (once, best effort),
    /// unacknowledged messages fail, [`Event::Closed`] follows.
    pub fn close(&mut self, now: Instant, id: SessionId, reason: &str) {
        if self.initiating.remove(&id.0).is_some() {
            self.events
                .push_back((id, Event::Closed(UdpError::Closed), 0));
            return;
        }
        let Some(s) = self.sessions.get_mut(&id.0) else {
            return;
        };
        let mut out = Vec::new();
        if s.bye(now, reason, &mut out).is_ok() {
            self.transmits.push_back(Transmit {
                destination: s.peer,
                contents: out,
            });
        }
        s.close_with(UdpError::Closed, &mut self.budget);
        self.after(id.0);
    }

    /// Facts about an established session.
    pub fn session_info(&self, id: SessionId) -> Option<Arc<SessionInfo>> {
        self.sessions.get(&id.0).map(|s| s.info.clone())
    }

    /// Figures of an established session.
    pub fn session_stats(&self, id: SessionId) -> Option<SessionStats> {
        self.sessions.get(&id.0).map(UdpSession::stats)
    }

    /// Bytes queued on a session (for sending or awaiting acknowledgement).
    pub fn queued(&self, id: SessionId) -> Option<usize> {
        self.sessions.get(&id.0).map(UdpSession::queued)
    }

    /// Tells a session how many bytes of the messages it delivered the
    /// application has not read yet. They count against the session's
    /// reliable hold (4.5 MiB): while they and the pieces held exceed it,
    /// new reliable pieces find no room and go unacknowledged, so the
    /// sender retransmits later — a reader that falls behind slows its
    /// sender, as TCP's window does, instead of growing a queue. A reader
    /// stalled past the sender's delivery deadline ends the session there.
    /// Drivers call it as the figure changes (0 when the reader caught up).
    pub fn set_backlog(&mut self, id: SessionId, bytes: usize) {
        if let Some(s) = self.sessions.get_mut(&id.0) {
            s.set_backlog(bytes);
        }
    }

    /// Bytes a session may still queue before [`UdpError::SendQueueFull`].
    pub fn room(&self, id: SessionId) -> Option<usize> {
        self.sessions.get(&id.0).map(UdpSession::room)
    }

    /// Sessions established.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Handshakes this endpoint answers that are not confirmed yet (waiting
    /// for message 2, or for the first record of a two-message pattern).
    pub fn pending_handshakes(&self) -> usize {
        self.responding.len() + self.half_open.len()
    }

    /// Counters.
    pub fn stats(&self) -> EndpointStats {
        let mut s = self.stats.clone();
        s.buffered = self.budget.used;
        s
    }
}

/// The handshake config as this endpoint runs it: bound to the `udp`
/// transport, offering its own message limit and no compression (datagram
/// sessions do not compress).
fn advertise(hs: HandshakeConfig, cfg: &UdpConfig) -> HandshakeConfig {
    let mut caps = hs.capabilities;
    caps.max_frame = u32::try_from(cfg.max_message).unwrap_or(u32::MAX);
    caps.compression = 0;
    // Datagram sessions speak ChaChaPoly only in this version: a handshake
    // datagram has no field naming another cipher (docs/WIRE.md).
    let chacha = netproto_crypto::CipherSuite::ChaChaPoly;
    hs.with_transport("udp")
        .with_capabilities(caps)
        .with_cipher(chacha)
        .with_accepted_ciphers(netproto_crypto::CipherSet::only(chacha))
}

/// Adapts the boxed RNG to the `RngCore + CryptoRng` the handshake wants.
struct RngRef<'a>(&'a mut dyn EndpointRng);

impl rand::RngCore for RngRef<'_> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> std::result::Result<(), rand::Error> {
        self.0.try_fill_bytes(dest)
    }
}

impl rand::CryptoRng for RngRef<'_> {}
