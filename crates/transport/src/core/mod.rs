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

mod ending;
mod handshake;
mod info;
mod liveness;
mod output;
mod priority;
pub mod record;
mod recv;
mod send;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use netproto_crypto::{codecs, Capabilities, CipherSuite, Handshake, Receiver, Sender};
use netproto_wire::{Compression, FrameKind, HeadersRef};

use crate::config::ConnectionConfig;
use crate::error::{ProtocolViolation, Result, TimeoutKind, TransportError};
use crate::extension::{features, Extensions};
pub use info::{ConnectionInfo, CoreRng, Event, Role, StreamSecurity};
use liveness::{Due, Liveness};
pub(crate) use output::{check_frame, KEEP_PAYLOAD_BUFFER};
pub use priority::Priority;
use record::{RecordFormat, StreamRecords};
use recv::RecvState;
use send::SendState;

/// PINGs with longer payloads are not answered (the spec suggests 8 bytes).
const MAX_PING_PAYLOAD: usize = 64;
/// HANDSHAKE frames of a Noise handshake with ChaChaPoly use stream id 0,
/// with AESGCM 2 (the stream id names the initiator's cipher, outside the
/// Noise message where the responder can read it first); the capability
/// hello exchanged inside TLS without Noise uses 1, so a mismatch of
/// `noise_inside_tls` is reported as such instead of as a bad message.
const NOISE_STREAM: u64 = 0;
const HELLO_STREAM: u64 = 1;

/// The HANDSHAKE stream id of a Noise handshake with `suite`: 0 for
/// ChaChaPoly (the first version's), otherwise the suite's code (AESGCM 2).
fn noise_stream(suite: CipherSuite) -> u64 {
    if suite == CipherSuite::ChaChaPoly {
        NOISE_STREAM
    } else {
        u64::from(suite.code())
    }
}

/// The cipher a Noise HANDSHAKE frame's stream id names.
fn stream_suite(stream_id: u64) -> Option<CipherSuite> {
    match stream_id {
        NOISE_STREAM => Some(CipherSuite::ChaChaPoly),
        HELLO_STREAM => None,
        n => u8::try_from(n).ok().and_then(CipherSuite::from_code),
    }
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
    extensions: Extensions,
    /// Waiting messages interleave by priority (if the peer agrees).
    priorities: bool,
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
        // Never below the protocol's minimum, so an ERR always fits.
        let max_message = cfg
            .max_message_size
            .max(netproto_crypto::MIN_MESSAGE_LIMIT as usize);
        caps.max_frame = u32::try_from(max_message).unwrap_or(u32::MAX);
        // Interleaved pieces are always accepted (the receiver keeps one
        // unfinished message per stream); the extensions are the config's.
        caps.features |= features::INTERLEAVE | cfg.extensions.features();
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
            extensions: cfg.extensions.clone(),
            priorities: cfg.priorities,
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
            info: None,
            tx: SendState::default(),
            rx: RecvState::new(max_message, cfg.reassembly_budget.clone()),
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

    /// A TLS client that has not yet read the server's hello (it sends
    /// without waiting for it): open, but without the peer's capabilities.
    fn hello_pending(&self) -> bool {
        self.is_established() && self.peer_caps.is_none()
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
            // Nothing waiting for its turn follows the end.
            self.tx.abandon();
            self.say_why(&e);
        }
        self.error.get_or_insert(e).clone()
    }

    fn check_alive(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The feature bits both sides advertised (none while a TLS client
    /// awaits the server's hello).
    pub fn negotiated_features(&self) -> u32 {
        self.peer_caps
            .map_or(0, |peer| peer.features & self.cfg_caps.features)
    }

    /// Whether extension frames of `kind` are on for this connection.
    pub fn accepts_extension(&self, kind: u8) -> bool {
        self.extensions.accepts(kind, self.negotiated_features())
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

    /// Bytes queued that a message at `priority` would wait behind: what is
    /// in records, and what waits at its band or a more urgent one (a full
    /// buffer of bulk does not hold back an urgent message).
    pub fn queued_bytes_at(&self, priority: Priority) -> usize {
        self.tx.queued_at(priority)
    }

    /// Bytes held for a message being reassembled.
    pub fn reassembling_bytes(&self) -> usize {
        self.rx.reassembling()
    }

    /// Whether the record being read still holds frames not handed out.
    pub fn has_unread_frames(&self) -> bool {
        self.rx.has_frames()
    }

    /// True (once) when something was queued for transmission since the
    /// last call: the driver should call [`Core::poll_transmit`].
    pub fn take_transmit_signal(&mut self) -> bool {
        std::mem::take(&mut self.transmit_signal)
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
        if !self.is_established() || self.hello_pending() {
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
            if f.kind.is_connection_frame() && f.stream_id != 0 {
                return Err(TransportError::Protocol(
                    ProtocolViolation::ConnectionFrameOnStream {
                        kind: f.kind,
                        stream_id: f.stream_id,
                    },
                ));
            }
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
                    if self.accepts_extension(code) {
                        return Ok(Some(Event::Frame(f)));
                    }
                    // WIRE.md: a receiver skips extension frames it did not
                    // negotiate.
                    metrics::counter!("netproto_extension_frames_skipped_total").increment(1);
                    tracing::trace!(code, "skipping an extension frame not negotiated");
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
}
