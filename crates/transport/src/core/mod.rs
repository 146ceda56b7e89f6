//! The sans-IO connection core: every protocol rule of a netproto
//! connection, written once, for every carrier.
//!
//! A [`Core`] owns the handshake (Noise, or the capability hello inside
//! TLS), the session keys, record sealing and opening, batching,
//! continuation reassembly, PING/PONG, keep-alive and idle deadlines,
//! rekeying (through the session), GOAWAY and BYE. It never touches a
//! socket, a clock or a runtime: bytes and `now` go in through `handle_*`,
//! bytes come out of [`Core::poll_transmit`], frames out of
//! [`Core::poll_event`], and [`Core::poll_timeout`] says when to call
//! [`Core::handle_timeout`] next — the shape of quinn-proto's `Connection`.
//! A driver (the stream driver in this crate, the datagram driver of the
//! UDP transport) owns the I/O and stays thin.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use bytes::BytesMut;
//! use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair, Pinned};
//! use netproto_transport::core::{Core, Event, Role};
//! use netproto_transport::{ConnectionConfig, StreamSecurity};
//!
//! # fn main() -> Result<(), netproto_transport::TransportError> {
//! let mut rng = rand::rngs::OsRng;
//! let server_key = Keypair::generate(&mut rng);
//! let server_pub = *server_key.public();
//! let now = Instant::now();
//! let wall = Duration::from_secs(1_700_000_000);
//! let server_cfg = ConnectionConfig::new(HandshakeConfig::new(Some(server_key), Arc::new(AnyPeer)));
//! let client_cfg = ConnectionConfig::new(HandshakeConfig::new(
//!     Some(Keypair::generate(&mut rng)),
//!     Arc::new(Pinned(server_pub)),
//! ));
//! let mut client = Core::stream(&client_cfg, StreamSecurity::Plain, Role::Client, now, wall, Box::new(rng))?;
//! let mut server = Core::stream(&server_cfg, StreamSecurity::Plain, Role::Server, now, wall, Box::new(rng))?;
//!
//! // Move bytes between the two until both are established: this loop is
//! // all a driver does, with a socket instead of a buffer.
//! let (mut to_server, mut to_client, mut out) = (BytesMut::new(), BytesMut::new(), Vec::new());
//! while !(client.is_established() && server.is_established()) {
//!     if client.poll_transmit(now, &mut out)? { to_server.extend_from_slice(&out); }
//!     while server.handle_input(now, &mut to_server)? {}
//!     if server.poll_transmit(now, &mut out)? { to_client.extend_from_slice(&out); }
//!     while client.handle_input(now, &mut to_client)? {}
//! }
//! client.send_data(now, 7, b"hello")?;
//! client.poll_transmit(now, &mut out)?;
//! to_server.extend_from_slice(&out);
//! let mut got = None;
//! while got.is_none() {
//!     match server.poll_event(now)? {
//!         Some(Event::Frame(f)) => got = Some(f),
//!         Some(_) => {}
//!         None => { server.handle_input(now, &mut to_server)?; }
//!     }
//! }
//! assert_eq!(&got.unwrap().payload[..], b"hello");
//! # Ok(())
//! # }
//! ```

mod liveness;
pub mod record;
mod recv;
mod send;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use netproto_crypto::{
    codecs, Capabilities, Handshake, Mode, Pattern, PublicKey, Receiver, Sender, Session,
};
use netproto_wire::{Compression, Frame, FrameKind, FrameLimits, HeadersRef};
use rand::{CryptoRng, RngCore};

use crate::config::ConnectionConfig;
use crate::error::{InvalidFrame, ProtocolViolation, Result, TimeoutKind, TransportError};
use crate::payload::Payload;
use liveness::{Due, Liveness};
use record::{RecordFormat, StreamRecords};
use recv::RecvState;
use send::SendState;

/// PINGs with longer payloads are not answered (the spec suggests 8 bytes).
const MAX_PING_PAYLOAD: usize = 64;
/// HANDSHAKE frames of the Noise handshake use stream id 0; the capability
/// hello exchanged inside TLS without Noise uses 1, so a mismatch of
/// `noise_inside_tls` is reported as such instead of as a bad message.
const NOISE_STREAM: u64 = 0;
const HELLO_STREAM: u64 = 1;

/// A source of randomness for the handshake (ephemeral keys).
pub trait CoreRng: RngCore + CryptoRng + Send {}
impl<T: RngCore + CryptoRng + Send> CoreRng for T {}

/// Which side of the connection this core is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that dialled: the handshake initiator.
    Client,
    /// The side that accepted: the handshake responder.
    Server,
}

/// What protects a stream before netproto runs on it, declared by the
/// stream itself ([`crate::IoStream::security`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StreamSecurity {
    /// Nothing: netproto runs its Noise handshake and seals every record.
    #[default]
    Plain,
    /// An authenticated TLS session: the two sides exchange a capability
    /// hello and send plain records inside TLS, unless
    /// [`ConnectionConfig::noise_inside_tls`] asks for Noise as well.
    Tls,
}

/// What the handshake established about a connection. Its `Debug` output
/// leaves the handshake hash out (docs/SECURITY.md: never logged).
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The peer's verified static key (`None` for an anonymous NK client, and
    /// over TLS without Noise, where TLS authenticated the peer).
    pub peer_key: Option<PublicKey>,
    /// The Noise handshake hash (identical on both ends; for channel
    /// binding); `None` over TLS without Noise.
    pub handshake_hash: Option<[u8; 32]>,
    /// Capabilities both sides agreed on.
    pub negotiated: Capabilities,
    /// The Noise handshake pattern; `None` over TLS without Noise.
    pub pattern: Option<Pattern>,
    /// The transport label bound into the handshake (`"tcp"`, `"uds"`,
    /// `"tls"`).
    pub transport: String,
    /// Whether we initiated.
    pub initiator: bool,
    /// The codec we compress outgoing records with (if any).
    ///
    /// A TLS client without Noise does not wait for the server's hello
    /// (saving a round trip): until it arrives, `negotiated` holds the
    /// client's own offer, `compression` is `None`, and sends are checked
    /// against the protocol's default 16 MiB limit; the server's limit and
    /// codecs apply from its hello on.
    pub compression: Compression,
}

impl std::fmt::Debug for ConnectionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionInfo")
            .field("peer_key", &self.peer_key.map(|k| k.fingerprint()))
            .field(
                "handshake_hash",
                &self.handshake_hash.map(|_| "<not shown>"),
            )
            .field("negotiated", &self.negotiated)
            .field("pattern", &self.pattern)
            .field("transport", &self.transport)
            .field("initiator", &self.initiator)
            .field("compression", &self.compression)
            .finish()
    }
}

/// What the core reports to its driver.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The handshake finished; [`Core::info`] says what it established.
    Established,
    /// A frame for the application: DATA (whole messages, continuation
    /// already reassembled), ERR, ACK, GOAWAY, PONG.
    Frame(Frame),
}

/// Where the connection is in its life.
enum Phase {
    /// The Noise handshake is running.
    Noise(Box<Handshake>),
    /// A TLS server waits for the client's capability hello.
    AwaitHello,
    /// Records flow.
    Open,
}

/// The connection core. See the module documentation.
pub struct Core<F: RecordFormat = StreamRecords> {
    format: F,
    role: Role,
    phase: Phase,
    cfg_caps: Capabilities,
    transport: String,
    compression: netproto_wire::CompressionPolicy,
    rekey: netproto_crypto::RekeyPolicy,
    timestamp_guard: Option<Arc<std::sync::Mutex<netproto_crypto::TimestampGuard>>>,
    rng: Box<dyn CoreRng>,
    /// Session time is measured from here.
    epoch: Instant,
    /// Unix time at `epoch` (IK timestamps).
    wall_at_epoch: Duration,
    sender: Option<Sender>,
    receiver: Option<Receiver>,
    /// The peer's capabilities (`None` while a TLS client awaits the
    /// server's hello).
    peer_caps: Option<Capabilities>,
    hello_pending: bool,
    info: Option<Arc<ConnectionInfo>>,
    tx: SendState,
    rx: RecvState,
    live: Liveness,
    events: VecDeque<Event>,
    error: Option<TransportError>,
    /// BYE queued: nothing more is sent.
    closing: bool,
    /// Something new was queued for transmission since the driver last
    /// looked.
    transmit_signal: bool,
    peer_goaway: Option<u64>,
}

impl<F: RecordFormat> std::fmt::Debug for Core<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("role", &self.role)
            .field("info", &self.info)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Core<StreamRecords> {
    /// A core for a byte stream (WIRE.md's stream format).
    ///
    /// `now` starts the handshake deadline; `wall` is the current Unix time
    /// (only an IK initiation and its replay guard read it).
    ///
    /// # Errors
    /// [`TransportError::Crypto`] if the handshake configuration lacks a key
    /// its pattern needs.
    pub fn stream(
        cfg: &ConnectionConfig,
        security: StreamSecurity,
        role: Role,
        now: Instant,
        wall: Duration,
        rng: Box<dyn CoreRng>,
    ) -> Result<Self> {
        Self::with_format(
            StreamRecords::default(),
            cfg,
            security,
            role,
            now,
            wall,
            rng,
        )
    }
}

impl<F: RecordFormat> Core<F> {
    /// A core over any record format.
    ///
    /// # Errors
    /// As [`Core::stream`].
    pub fn with_format(
        format: F,
        cfg: &ConnectionConfig,
        security: StreamSecurity,
        role: Role,
        now: Instant,
        wall: Duration,
        rng: Box<dyn CoreRng>,
    ) -> Result<Self> {
        // Advertise every codec this build can decode, and our message limit.
        let mut caps = cfg.handshake.capabilities;
        caps.compression = codecs::LZ4
            | if Compression::Zstd.is_available() {
                codecs::ZSTD
            } else {
                0
            };
        caps.max_frame = u32::try_from(cfg.max_message_size).unwrap_or(u32::MAX);
        let runs_noise = security == StreamSecurity::Plain || cfg.noise_inside_tls;
        let phase = if runs_noise {
            let mut hs_cfg = cfg.handshake.clone();
            hs_cfg.capabilities = caps;
            Phase::Noise(Box::new(match role {
                Role::Client => Handshake::initiator(hs_cfg)?,
                Role::Server => Handshake::responder(hs_cfg)?,
            }))
        } else {
            Phase::AwaitHello
        };
        let mut core = Self {
            format,
            role,
            phase,
            cfg_caps: caps,
            transport: cfg.handshake.transport.clone(),
            compression: cfg.compression,
            rekey: cfg.rekey,
            timestamp_guard: cfg.timestamp_guard.clone(),
            rng,
            epoch: now,
            wall_at_epoch: wall,
            sender: None,
            receiver: None,
            peer_caps: None,
            hello_pending: false,
            info: None,
            tx: SendState::default(),
            rx: RecvState::new(cfg.max_message_size, cfg.reassembly_budget.clone()),
            live: Liveness::new(now, cfg),
            events: VecDeque::new(),
            error: None,
            closing: false,
            transmit_signal: false,
            peer_goaway: None,
        };
        match (&core.phase, role) {
            (Phase::Noise(_), _) => core.write_handshake(now)?,
            // The client does not wait for the server's hello: it is read as
            // the first packet, so the hello costs no round trip.
            (Phase::AwaitHello, Role::Client) => {
                core.queue_hello()?;
                core.hello_pending = true;
                core.open(now, None, None, caps);
            }
            // The server answers with its hello once the client's arrives.
            (Phase::AwaitHello, Role::Server) | (Phase::Open, _) => {}
        }
        Ok(core)
    }

    fn session_time(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.epoch)
    }

    fn wall(&self, now: Instant) -> Duration {
        self.wall_at_epoch + self.session_time(now)
    }

    /// Whether the handshake has finished.
    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Open)
    }

    /// What the handshake established (`None` before it finished).
    pub fn info(&self) -> Option<&Arc<ConnectionInfo>> {
        self.info.as_ref()
    }

    /// The error that ended the connection, if it has ended.
    pub fn error(&self) -> Option<&TransportError> {
        self.error.as_ref()
    }

    /// Ends the connection with `e` (a driver reports I/O failures here).
    /// The first error wins; later calls return it.
    pub fn fail(&mut self, e: TransportError) -> TransportError {
        if self.error.is_none() {
            // Nothing more will be read: an unfinished message is dropped
            // and its share of the reassembly budget given back now.
            self.rx.abandon();
        }
        self.error.get_or_insert(e).clone()
    }

    fn check_alive(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The peer's message limit (the protocol default until a TLS server's
    /// hello arrives).
    pub fn peer_max_message(&self) -> usize {
        let max = self
            .peer_caps
            .map_or(Capabilities::default().max_frame, |c| c.max_frame);
        usize::try_from(max).unwrap_or(usize::MAX)
    }

    /// The latest round-trip time measured by a PING (keep-alive or
    /// [`Core::ping`]).
    pub fn rtt(&self) -> Option<Duration> {
        self.live.rtt()
    }

    /// The last stream id the peer promised to serve, once it sent GOAWAY.
    pub fn peer_goaway(&self) -> Option<u64> {
        self.peer_goaway
    }

    /// Bytes queued for the carrier and not yet handed to the driver.
    pub fn queued_bytes(&self) -> usize {
        self.tx.queued()
    }

    /// Bytes held for a message being reassembled.
    pub fn reassembling_bytes(&self) -> usize {
        self.rx.reassembling()
    }

    /// True (once) when something was queued for transmission since the
    /// last call: the driver should call [`Core::poll_transmit`].
    pub fn take_transmit_signal(&mut self) -> bool {
        std::mem::take(&mut self.transmit_signal)
    }

    // ----- handshake -----------------------------------------------------

    /// Writes our handshake messages while it is our turn.
    fn write_handshake(&mut self, now: Instant) -> Result<()> {
        let wall = self.wall(now);
        let Phase::Noise(hs) = &mut self.phase else {
            return Ok(());
        };
        let mut msg = Vec::new();
        while hs.is_my_turn() && !hs.is_finished() {
            msg.clear();
            hs.write_message(&mut &mut *self.rng, wall, &mut msg)?;
            self.format
                .handshake_packet(NOISE_STREAM, &msg, self.tx.raw())?;
            self.transmit_signal = true;
        }
        if hs.is_finished() {
            self.finish_noise(now)?;
        }
        Ok(())
    }

    fn finish_noise(&mut self, now: Instant) -> Result<()> {
        let Phase::Noise(hs) = std::mem::replace(&mut self.phase, Phase::Open) else {
            return Ok(());
        };
        let est = hs.finish()?;
        let (sender, receiver) =
            Session::new(&est, Mode::Stream, self.rekey, self.session_time(now)).split();
        let noise = (est.peer, est.handshake_hash, est.pattern);
        self.open(now, Some((sender, receiver)), Some(noise), est.negotiated);
        self.peer_caps = Some(est.peer_capabilities);
        Ok(())
    }

    fn queue_hello(&mut self) -> Result<()> {
        let mut payload = Vec::with_capacity(16);
        self.cfg_caps.encode(&mut payload);
        self.format
            .handshake_packet(HELLO_STREAM, &payload, self.tx.raw())?;
        self.transmit_signal = true;
        Ok(())
    }

    /// Enters the open phase.
    fn open(
        &mut self,
        now: Instant,
        keys: Option<(Sender, Receiver)>,
        noise: Option<(Option<PublicKey>, [u8; 32], Pattern)>,
        negotiated: Capabilities,
    ) {
        self.phase = Phase::Open;
        if let Some((s, r)) = keys {
            self.sender = Some(s);
            self.receiver = Some(r);
        }
        let mut compression = self.compression;
        if self.hello_pending {
            // Until the server's hello shows which codecs it reads.
            self.tx.pending_codec = Some(compression.codec).filter(|c| *c != Compression::None);
            compression.codec = Compression::None;
        } else if negotiated.compression & codec_bit(compression.codec) == 0 {
            compression.codec = Compression::None;
        }
        self.tx.compression = compression;
        let info = ConnectionInfo {
            peer_key: noise.and_then(|(key, _, _)| key),
            handshake_hash: noise.map(|(_, hash, _)| hash),
            negotiated,
            pattern: noise.map(|(_, _, pattern)| pattern),
            transport: self.transport.clone(),
            initiator: self.role == Role::Client,
            compression: compression.codec,
        };
        tracing::debug!(
            peer = info
                .peer_key
                .map(|k| k.fingerprint())
                .as_deref()
                .unwrap_or("anonymous"),
            pattern = info.pattern.map_or("none (TLS)", Pattern::name),
            transport = %info.transport,
            "secure connection established"
        );
        self.info = Some(Arc::new(info));
        self.live.established(now);
        self.events.push_back(Event::Established);
    }

    /// One handshake packet in.
    fn handshake_input(&mut self, now: Instant, input: &mut BytesMut) -> Result<bool> {
        let Some((stream_id, body, range)) = self.format.next_handshake(input)? else {
            return Ok(false);
        };
        self.live.received(now);
        let payload = &body[range];
        match &mut self.phase {
            Phase::Noise(hs) => {
                if stream_id == HELLO_STREAM {
                    // The peer would otherwise see only an EOF: tell it we
                    // expect Noise.
                    self.format
                        .handshake_packet(NOISE_STREAM, &[], self.tx.raw())?;
                    self.transmit_signal = true;
                    return Err(TransportError::Protocol(
                        ProtocolViolation::NoiseInsideTlsMismatch {
                            peer_runs_noise: false,
                        },
                    ));
                }
                match &self.timestamp_guard {
                    Some(guard) => {
                        // Every update of the guard is one insert, so a
                        // poisoned lock still holds a consistent guard.
                        let mut g = guard
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        g.set_now(self.wall_at_epoch + now.saturating_duration_since(self.epoch));
                        hs.read_message(payload, Some(&mut g))?;
                    }
                    None => hs.read_message(payload, None)?,
                }
                self.write_handshake(now)?;
            }
            Phase::AwaitHello | Phase::Open => {
                if stream_id != HELLO_STREAM {
                    if self.role == Role::Server {
                        // Let a client that started Noise report the
                        // mismatch rather than an EOF.
                        self.queue_hello()?;
                    }
                    return Err(TransportError::Protocol(
                        ProtocolViolation::NoiseInsideTlsMismatch {
                            peer_runs_noise: true,
                        },
                    ));
                }
                let peer = Capabilities::decode(payload)?;
                if self.hello_pending {
                    self.hello_pending = false;
                    self.peer_caps = Some(peer);
                    if let Some(wanted) = self.tx.pending_codec.take() {
                        if peer.compression & codec_bit(wanted) != 0 {
                            self.tx.compression.codec = wanted;
                        }
                    }
                } else {
                    self.queue_hello()?;
                    self.peer_caps = Some(peer);
                    let negotiated = self.cfg_caps.intersect(&peer);
                    self.open(now, None, None, negotiated);
                }
            }
        }
        Ok(true)
    }

    // ----- input ---------------------------------------------------------

    /// Takes the next handshake message or record from `input` (bytes the
    /// carrier delivered, in order). Returns true if one was consumed;
    /// false if more bytes are needed, or if the current record still holds
    /// frames ([`Core::poll_event`] first).
    ///
    /// # Errors
    /// Every error here is fatal and is returned again by later calls.
    pub fn handle_input(&mut self, now: Instant, input: &mut BytesMut) -> Result<bool> {
        self.check_alive()?;
        let result = self.input(now, input);
        result.map_err(|e| self.fail(e))
    }

    fn input(&mut self, now: Instant, input: &mut BytesMut) -> Result<bool> {
        if !self.is_established() || self.hello_pending {
            let progressed = self.handshake_input(now, input)?;
            if !progressed && !input.is_empty() {
                self.live.in_packet(now);
            }
            return Ok(progressed);
        }
        if self.rx.has_frames() {
            return Ok(false);
        }
        let opener = self.receiver.as_mut().map(|r| (r, now));
        let opener = opener.map(|(r, now)| (r, now.saturating_duration_since(self.epoch)));
        let Some((codec, body)) = self.format.open_next(opener, input)? else {
            if !input.is_empty() || !self.format.is_idle() {
                self.live.in_packet(now);
            }
            return Ok(false);
        };
        self.live.received(now);
        self.rx.set_record(codec, body)?;
        Ok(true)
    }

    /// Bytes worth reading next, given `buffered` bytes not yet consumed.
    pub fn bytes_needed(&self, buffered: usize) -> usize {
        self.format.bytes_needed(buffered)
    }

    /// True while part of a packet is buffered (`buffered` bytes unconsumed
    /// or a header half read).
    pub fn mid_packet(&self, buffered: usize) -> bool {
        buffered > 0 || !self.format.is_idle()
    }

    /// The next event: the handshake's end, then frames of the records
    /// taken so far. Answers PINGs and notes GOAWAY and PONG on the way.
    ///
    /// # Errors
    /// [`TransportError::ConnectionClosed`] (clean) after the peer's BYE;
    /// format and protocol errors. All are final.
    pub fn poll_event(&mut self, now: Instant) -> Result<Option<Event>> {
        if let Some(ev) = self.events.pop_front() {
            return Ok(Some(ev));
        }
        self.check_alive()?;
        let result = self.next_frame(now);
        result.map_err(|e| self.fail(e))
    }

    fn next_frame(&mut self, now: Instant) -> Result<Option<Event>> {
        while let Some(f) = self.rx.next_raw()? {
            match f.kind {
                FrameKind::Ping => {
                    // The payload is copied (and bounded) so a queued PONG
                    // never pins a whole record.
                    if f.payload.len() <= MAX_PING_PAYLOAD && !self.closing {
                        let echo = f.payload;
                        self.push(now, FrameKind::Pong, 0, HeadersRef::EMPTY, &echo)?;
                    }
                }
                FrameKind::Bye => return Err(TransportError::ConnectionClosed { clean: true }),
                FrameKind::Handshake => {
                    return Err(TransportError::Protocol(
                        ProtocolViolation::HandshakeFrameAfterHandshake,
                    ))
                }
                FrameKind::Extension(code) => {
                    tracing::trace!(code, "skipping unknown extension frame");
                }
                FrameKind::Pong => {
                    if let Some(rtt) = self.live.pong(now, &f.payload) {
                        tracing::trace!(rtt_us = rtt.as_micros(), "keep-alive answered");
                    }
                    return Ok(Some(Event::Frame(f)));
                }
                FrameKind::GoAway => {
                    let (last, _) = f.as_ref().goaway_parts()?;
                    // A later GOAWAY may lower the promise, never raise it.
                    self.peer_goaway = Some(self.peer_goaway.map_or(last, |p| p.min(last)));
                    return Ok(Some(Event::Frame(f)));
                }
                _ => {
                    let whole = self.rx.assemble(f)?;
                    self.live.reassembling(now, self.rx.is_reassembling());
                    if let Some(whole) = whole {
                        return Ok(Some(Event::Frame(whole)));
                    }
                }
            }
        }
        Ok(None)
    }

    // ----- time ----------------------------------------------------------

    /// When [`Core::handle_timeout`] must be called next (`None`: no
    /// deadline armed). Idle and keep-alive deadlines are suspended while
    /// the application holds a frame ([`Core::pause`]).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.error.is_some() {
            return None;
        }
        self.live.next_deadline()
    }

    /// Acts on every deadline that has passed at `now`: a keep-alive PING
    /// is queued, or the connection fails with the timeout that fired.
    ///
    /// # Errors
    /// [`TransportError::Timeout`] (handshake, packet, idle); final.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<()> {
        self.check_alive()?;
        match self.live.due(now) {
            Some(Due::Fail(kind, after)) => {
                if kind == TimeoutKind::ReadIdle {
                    metrics::counter!("netproto_idle_closed_total").increment(1);
                }
                Err(self.fail(TransportError::Timeout { kind, after }))
            }
            Some(Due::Ping) => {
                self.ping(now)?;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The application took a frame (or stopped reading) and may be busy
    /// for a while: the idle and keep-alive deadlines wait until it reads
    /// again, and the time away does not count as the peer's silence. A core
    /// starts paused, until the application first reads.
    pub fn pause(&mut self, now: Instant) {
        self.live.pause(now);
    }

    /// The application reads again (see [`Core::pause`]).
    pub fn resume(&mut self, now: Instant) {
        self.live.resume(now);
    }

    // ----- output --------------------------------------------------------

    fn check_send(&self) -> Result<()> {
        self.check_alive()?;
        if self.closing {
            return Err(TransportError::ConnectionClosed { clean: true });
        }
        if !self.is_established() {
            return Err(TransportError::InvalidFrame(InvalidFrame::NotEstablished));
        }
        Ok(())
    }

    fn check_size(&self, len: usize) -> Result<()> {
        let max = self.peer_max_message();
        if len > max {
            return Err(TransportError::MessageTooLarge { len, max });
        }
        Ok(())
    }

    fn push(
        &mut self,
        now: Instant,
        kind: FrameKind,
        stream_id: u64,
        headers: HeadersRef<'_>,
        payload: &[u8],
    ) -> Result<()> {
        let t = self.session_time(now);
        let pushed = self.tx.push(
            &self.format,
            &mut self.sender,
            t,
            kind,
            stream_id,
            headers,
            payload,
        );
        self.transmit_signal = true;
        // A half-written record cannot be taken back: a sealing failure
        // (nonce space exhausted) ends the connection.
        pushed.map_err(|e| self.fail(e))
    }

    /// Queues a frame. Large payloads are split into continuation pieces.
    ///
    /// # Errors
    /// [`TransportError::InvalidFrame`] for HANDSHAKE or BYE frames, frames
    /// with `more` set, header blocks over the wire limits;
    /// [`TransportError::MessageTooLarge`] beyond the peer's limit (nothing
    /// queued, the connection goes on); the connection's error once it has
    /// ended, [`TransportError::ConnectionClosed`] after [`Core::close`].
    pub fn send_frame(&mut self, now: Instant, frame: &Frame) -> Result<()> {
        check_frame(frame)?;
        self.check_send()?;
        self.check_size(frame.payload.len())?;
        self.push(
            now,
            frame.kind,
            frame.stream_id,
            frame.headers.as_ref(),
            &frame.payload,
        )
    }

    /// Queues a DATA frame with `payload`.
    ///
    /// # Errors
    /// As [`Core::send_frame`].
    pub fn send_data(&mut self, now: Instant, stream_id: u64, payload: &[u8]) -> Result<()> {
        self.check_send()?;
        self.check_size(payload.len())?;
        self.push(now, FrameKind::Data, stream_id, HeadersRef::EMPTY, payload)
    }

    /// Encodes `payload` once and queues it as a DATA frame.
    ///
    /// # Errors
    /// [`TransportError::BadMessage`] if it does not encode; otherwise as
    /// [`Core::send_frame`].
    pub fn send_payload<P: Payload + ?Sized>(
        &mut self,
        now: Instant,
        stream_id: u64,
        payload: &P,
    ) -> Result<()> {
        self.check_send()?;
        let mut buf = std::mem::take(&mut self.tx.payload_buf);
        buf.clear();
        let result = match payload.encode_payload(&mut buf) {
            Ok(()) => self
                .check_size(buf.len())
                .and_then(|()| self.push(now, FrameKind::Data, stream_id, HeadersRef::EMPTY, &buf)),
            Err(e) => Err(TransportError::BadMessage(e)),
        };
        self.tx.payload_buf = buf;
        result
    }

    /// Queues a PING whose PONG will be timed; returns its sequence number
    /// (see [`Core::ping_settled`]).
    ///
    /// # Errors
    /// The connection's error once it has ended.
    pub fn ping(&mut self, now: Instant) -> Result<u64> {
        self.check_send()?;
        if let Some(seq) = self.live.outstanding_ping() {
            return Ok(seq);
        }
        let seq = self.live.ping_sent(now);
        self.push(
            now,
            FrameKind::Ping,
            0,
            HeadersRef::EMPTY,
            &seq.to_be_bytes(),
        )?;
        Ok(seq)
    }

    /// Whether the PING with sequence number `seq` has been answered.
    pub fn ping_settled(&self, seq: u64) -> bool {
        seq < self.live.settled_below()
    }

    /// Queues GOAWAY: requests with ids above `last_stream_id` will not be
    /// served.
    ///
    /// # Errors
    /// The connection's error once it has ended.
    pub fn goaway(&mut self, now: Instant, last_stream_id: u64, reason: &str) -> Result<()> {
        self.check_send()?;
        let frame = Frame::goaway(last_stream_id, reason);
        self.push(now, FrameKind::GoAway, 0, HeadersRef::EMPTY, &frame.payload)
    }

    /// Queues BYE after everything queued before it; nothing can be sent
    /// after it. Closing twice is harmless, and so is closing after the
    /// peer's BYE (ours answers it).
    ///
    /// # Errors
    /// The connection's error if it had already failed.
    pub fn close(&mut self, now: Instant) -> Result<()> {
        // After the peer's BYE we still say ours; after a failure, nothing.
        match &self.error {
            None | Some(TransportError::ConnectionClosed { clean: true }) => {}
            Some(e) => return Err(e.clone()),
        }
        if self.closing {
            return Ok(());
        }
        if self.is_established() {
            self.push(now, FrameKind::Bye, 0, HeadersRef::EMPTY, &[])?;
        }
        self.closing = true;
        self.live.stop_keep_alive();
        Ok(())
    }

    /// Whether BYE has been queued.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Seals what is queued and moves the bytes to transmit into `dst`
    /// (cleared first; its allocation becomes the next send buffer).
    /// Returns false if nothing is queued.
    ///
    /// # Errors
    /// A sealing failure (nonce space exhausted); final.
    pub fn poll_transmit(&mut self, now: Instant, dst: &mut Vec<u8>) -> Result<bool> {
        let t = self.session_time(now);
        let sent = self.tx.transmit(&self.format, &mut self.sender, t, dst);
        sent.map_err(|e| self.fail(e))
    }

    /// Gives the send side's buffers back (an idle connection holds none).
    pub fn release_buffers(&mut self) {
        self.tx.release();
    }
}

/// Refuses frames the core must not send on the application's behalf.
fn check_frame(frame: &Frame) -> Result<()> {
    match frame.kind {
        FrameKind::Handshake => return Err(TransportError::InvalidFrame(InvalidFrame::Handshake)),
        FrameKind::Bye => return Err(TransportError::InvalidFrame(InvalidFrame::Bye)),
        _ => {}
    }
    if frame.more {
        return Err(TransportError::InvalidFrame(InvalidFrame::Continuation));
    }
    let limits = FrameLimits::default();
    if frame.headers.len() > limits.max_headers
        || frame.headers.as_ref().as_bytes().len() > limits.max_header_block
    {
        return Err(TransportError::InvalidFrame(InvalidFrame::HeadersTooLarge));
    }
    Ok(())
}

/// The capability bit of a codec.
fn codec_bit(c: Compression) -> u8 {
    match c {
        Compression::Lz4 => codecs::LZ4,
        Compression::Zstd => codecs::ZSTD,
        Compression::None => 0,
    }
}
