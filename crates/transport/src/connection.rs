//! [`Connection`]: an authenticated, encrypted, framed message channel over
//! any byte stream, and its two halves.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use netproto_crypto::{
    codecs, Capabilities, Mode, Pattern, PublicKey, Receiver, Sender, Session, MAX_MESSAGE_LEN,
    MAX_PLAINTEXT,
};
use netproto_wire::{
    decompress, Compression, Frame, FrameKind, FrameLimits, Header, Headers, Message, PacketDecoder,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::ConnectionConfig;
use crate::error::{Result, TimeoutKind, TransportError};
use crate::handshake::{self, HANDSHAKE_MAX_BODY};
use crate::writer::{codec_bit, Command, Shared, Writer};

/// PINGs with longer payloads are not answered (the spec suggests 8 bytes).
const MAX_PING_PAYLOAD: usize = 64;
/// A connection idle this long gives its buffers back.
pub(crate) const IDLE_RELEASE: Duration = Duration::from_secs(1);
/// The first read after an idle release goes to the stack, this big.
const WAKE_READ: usize = 256;

/// What the handshake established about a connection.
#[derive(Debug, Clone)]
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
    /// The transport label (`"tcp"`, `"uds"`, `"tls"`).
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

/// A secure connection. Use it whole, or [`Connection::split`] it into a
/// [`SendHalf`] (cloneable) and a [`RecvHalf`] for separate tasks.
pub struct Connection {
    send: SendHalf,
    recv: RecvHalf,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("info", &self.send.info)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Runs the handshake as the initiator over `stream`.
    ///
    /// # Errors
    /// [`TransportError::Timeout`] (handshake), [`TransportError::Crypto`]
    /// (including a refused peer key), [`TransportError::Wire`], I/O errors.
    pub async fn client<S>(stream: S, cfg: ConnectionConfig) -> Result<Self>
    where
        S: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static,
    {
        Self::establish(stream, cfg, true).await
    }

    /// Runs the handshake as the responder over `stream`.
    ///
    /// # Errors
    /// As [`Connection::client`].
    pub async fn server<S>(stream: S, cfg: ConnectionConfig) -> Result<Self>
    where
        S: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static,
    {
        Self::establish(stream, cfg, false).await
    }

    async fn establish<S>(stream: S, mut cfg: ConnectionConfig, initiator: bool) -> Result<Self>
    where
        S: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static,
    {
        // Advertise every codec this build can decode, and our message limit.
        let mut caps = cfg.handshake.capabilities;
        caps.compression = codecs::LZ4
            | if Compression::Zstd.is_available() {
                codecs::ZSTD
            } else {
                0
            };
        caps.max_frame = u32::try_from(cfg.max_message_size).unwrap_or(u32::MAX);
        cfg.handshake.capabilities = caps;

        let (rd, wr) = tokio::io::split(stream);
        let mut rd: Box<dyn AsyncRead + Send + Sync + Unpin> = Box::new(rd);
        let mut wr: Box<dyn AsyncWrite + Send + Sync + Unpin> = Box::new(wr);
        let mut buf = BytesMut::with_capacity(handshake::FIRST_BUFFER);
        let mut decoder = PacketDecoder::new(HANDSHAKE_MAX_BODY);
        let (keys, info, peer_caps) =
            Self::secure(&mut rd, &mut wr, &mut buf, &mut decoder, &cfg, initiator).await?;
        let (sender, receiver) = keys.unzip();
        let shared = Arc::new(Shared::default());
        let hello_pending = peer_caps.is_none();
        if let Some(caps) = peer_caps {
            shared.set_peer_caps(caps);
        }

        let epoch = Instant::now();
        let mut compression = cfg.compression;
        let mut pending_codec = None;
        if hello_pending {
            // Until the server's hello shows which codecs it reads.
            pending_codec = Some(compression.codec).filter(|c| *c != Compression::None);
            compression.codec = Compression::None;
        } else if info.negotiated.compression & codec_bit(compression.codec) == 0 {
            compression.codec = Compression::None;
        }
        let info = Arc::new(ConnectionInfo {
            compression: compression.codec,
            ..info
        });
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

        // Grown on demand and given back when idle (writer.rs).
        let mut out = Vec::new();
        if !cfg.runs_noise() {
            handshake::hello_packet(&cfg.handshake.capabilities, &mut out)?;
        }
        let (tx, rx) = mpsc::channel(cfg.write_queue.max(1));
        let writer = Writer {
            io: wr,
            sender,
            compression,
            pending_codec,
            shared: shared.clone(),
            write_timeout: cfg.write_timeout,
            epoch,
            out,
            scratch: Vec::new(),
            msg_buf: Vec::new(),
            record_start: None,
        };
        tokio::spawn(writer.run(rx));
        decoder.set_max_body(u32::try_from(MAX_MESSAGE_LEN).unwrap_or(u32::MAX));
        Ok(Self {
            send: SendHalf {
                tx: tx.clone(),
                shared: shared.clone(),
                info: info.clone(),
            },
            recv: RecvHalf {
                io: rd,
                buf,
                decoder,
                receiver,
                body: Bytes::new(),
                partial: None,
                control: tx.downgrade(),
                shared: shared.clone(),
                read_idle_timeout: cfg.read_idle_timeout,
                packet_timeout: cfg.packet_timeout,
                packet_started: None,
                max_message: cfg.max_message_size,
                epoch,
                failed: None,
                hello_pending,
                info,
            },
        })
    }

    /// Runs the Noise handshake, or inside TLS without Noise the capability
    /// hello, under the handshake timeout.
    async fn secure(
        rd: &mut Box<dyn AsyncRead + Send + Sync + Unpin>,
        wr: &mut Box<dyn AsyncWrite + Send + Sync + Unpin>,
        buf: &mut BytesMut,
        decoder: &mut PacketDecoder,
        cfg: &ConnectionConfig,
        initiator: bool,
    ) -> Result<(
        Option<(Sender, Receiver)>,
        ConnectionInfo,
        Option<Capabilities>,
    )> {
        let caps = cfg.handshake.capabilities;
        let hs_timeout = || TransportError::Timeout {
            kind: TimeoutKind::Handshake,
            after: cfg.handshake_timeout,
        };
        let (keys, noise, negotiated, peer) = if cfg.runs_noise() {
            // Boxed: the handshake's state is large and short-lived; inline,
            // it would stay part of every connection task's size for good.
            let est = tokio::time::timeout(
                cfg.handshake_timeout,
                Box::pin(handshake::run(rd, wr, buf, decoder, cfg, initiator)),
            )
            .await
            .map_err(|_| hs_timeout())??;
            let keys = Session::new(&est, Mode::Stream, cfg.rekey, Duration::ZERO).split();
            let noise = (est.peer, est.handshake_hash, est.pattern);
            (
                Some(keys),
                Some(noise),
                est.negotiated,
                Some(est.peer_capabilities),
            )
        } else {
            // The server reads the client's hello; the client does not wait
            // for the server's (it is read as the first packet).
            let peer = if initiator {
                None
            } else {
                let read = handshake::read_hello(rd, wr, buf, decoder, &caps);
                Some(
                    tokio::time::timeout(cfg.handshake_timeout, read)
                        .await
                        .map_err(|_| hs_timeout())??,
                )
            };
            (None, None, peer.map_or(caps, |p| caps.intersect(&p)), peer)
        };
        let info = ConnectionInfo {
            peer_key: noise.and_then(|(key, _, _)| key),
            handshake_hash: noise.map(|(_, hash, _)| hash),
            negotiated,
            pattern: noise.map(|(_, _, pattern)| pattern),
            initiator,
            compression: Compression::None,
            transport: cfg.handshake.transport.clone(),
        };
        Ok((keys, info, peer))
    }

    /// What the handshake established.
    pub fn info(&self) -> &ConnectionInfo {
        &self.send.info
    }

    /// Sends a [`Message`] as a one-way DATA frame (stream id 0).
    ///
    /// # Errors
    /// See [`SendHalf::send_message`].
    pub async fn send(&self, message: Message) -> Result<()> {
        self.send.send_message(0, message).await
    }

    /// Sends a frame.
    ///
    /// # Errors
    /// See [`SendHalf::send_frame`].
    pub async fn send_frame(&self, frame: Frame) -> Result<()> {
        self.send.send_frame(frame).await
    }

    /// Receives the next [`Message`].
    ///
    /// # Errors
    /// See [`RecvHalf::recv`].
    pub async fn recv(&mut self) -> Result<Message> {
        self.recv.recv().await
    }

    /// Receives the next frame.
    ///
    /// # Errors
    /// See [`RecvHalf::recv_frame`].
    pub async fn recv_frame(&mut self) -> Result<Frame> {
        self.recv.recv_frame().await
    }

    /// Sends BYE, flushes and closes the write side.
    ///
    /// # Errors
    /// The connection's failure, if it had already failed.
    pub async fn close(self) -> Result<()> {
        self.send.close().await
    }

    /// Splits into a cloneable sending handle and the receiving half.
    pub fn split(self) -> (SendHalf, RecvHalf) {
        (self.send, self.recv)
    }
}

/// Why a command was not queued.
enum Queued {
    Full(Command),
    Closed,
}

/// The sending side: a cheap, cloneable handle onto the connection's writer
/// task. Frames queued while the writer is busy are sent together, packed
/// into as few records and system calls as possible.
#[derive(Clone)]
pub struct SendHalf {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    info: Arc<ConnectionInfo>,
}

impl std::fmt::Debug for SendHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendHalf")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl SendHalf {
    /// The peer's message limit (the protocol default until a TLS server's
    /// hello arrives).
    fn peer_max(&self) -> usize {
        let max = self
            .shared
            .peer_caps()
            .map_or(Capabilities::default().max_frame, |c| c.max_frame);
        usize::try_from(max).unwrap_or(usize::MAX)
    }

    fn check_size(&self, len: usize) -> Result<()> {
        let max = self.peer_max();
        if len > max {
            return Err(TransportError::MessageTooLarge { len, max });
        }
        Ok(())
    }

    fn closed(&self) -> TransportError {
        self.shared.error()
    }

    /// Refuses frames the writer must not send: kinds it manages itself,
    /// `more` (the writer splits messages), and header blocks the peer's
    /// decoder would reject.
    fn check_frame(&self, frame: &Frame) -> Result<()> {
        if let Some(e) = self.shared.failed() {
            return Err(e);
        }
        match frame.kind {
            FrameKind::Handshake => {
                return Err(TransportError::InvalidFrame(
                    "HANDSHAKE frames belong to the handshake",
                ))
            }
            FrameKind::Bye => return Err(TransportError::InvalidFrame("use close() to send BYE")),
            _ => {}
        }
        if frame.more {
            return Err(TransportError::InvalidFrame(
                "continuation is automatic: send the whole message with more = false",
            ));
        }
        let limits = FrameLimits::default();
        if frame.headers.len() > limits.max_headers
            || frame.headers.as_ref().as_bytes().len() > limits.max_header_block
        {
            return Err(TransportError::InvalidFrame(
                "header block exceeds 64 entries or 8 KiB",
            ));
        }
        self.check_size(frame.payload.len())
    }

    /// Queues a [`Message`] as a DATA frame with `stream_id`; waits while the
    /// write queue is full (backpressure).
    ///
    /// # Errors
    /// [`TransportError::MessageTooLarge`] beyond the peer's limit; the
    /// connection's error once it has failed or closed.
    pub async fn send_message(&self, stream_id: u64, message: Message) -> Result<()> {
        if let Some(e) = self.shared.failed() {
            return Err(e);
        }
        self.check_size(message.encoded_len()?)?;
        self.tx
            .send(Command::Message { stream_id, message })
            .await
            .map_err(|_| self.closed())
    }

    /// Queues a [`Message`] as a DATA frame, waiting at most `limit` for
    /// room in the write queue. Only a full queue arms a timer.
    ///
    /// # Errors
    /// [`TransportError::Backpressure`] if the queue stayed full for `limit`
    /// (nothing was queued); otherwise as [`SendHalf::send_message`].
    pub async fn send_message_within(
        &self,
        stream_id: u64,
        message: Message,
        limit: Duration,
    ) -> Result<()> {
        if let Some(e) = self.shared.failed() {
            return Err(e);
        }
        self.check_size(message.encoded_len()?)?;
        match self.try_queue(Command::Message { stream_id, message }) {
            Err(Queued::Full(cmd)) => match tokio::time::timeout(limit, self.tx.send(cmd)).await {
                Ok(sent) => sent.map_err(|_| self.closed()),
                Err(_) => Err(TransportError::Backpressure),
            },
            other => other.map_err(|e| self.queue_error(&e)),
        }
    }

    /// Queues a frame; waits while the write queue is full. Large payloads
    /// are split into continuation frames automatically.
    ///
    /// # Errors
    /// [`TransportError::InvalidFrame`] for HANDSHAKE or BYE frames, frames
    /// with `more` set, or header blocks over the wire limits; otherwise as
    /// [`SendHalf::send_message`].
    pub async fn send_frame(&self, frame: Frame) -> Result<()> {
        self.check_frame(&frame)?;
        self.tx
            .send(Command::Frame(frame))
            .await
            .map_err(|_| self.closed())
    }

    /// Queues a frame without waiting.
    ///
    /// # Errors
    /// [`TransportError::Backpressure`] when the queue is full, otherwise as
    /// [`SendHalf::send_frame`].
    pub fn try_send_frame(&self, frame: Frame) -> Result<()> {
        self.check_frame(&frame)?;
        self.try_queue(Command::Frame(frame))
            .map_err(|e| self.queue_error(&e))
    }

    /// Queues without waiting; a full queue hands the command back.
    fn try_queue(&self, cmd: Command) -> std::result::Result<(), Queued> {
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(cmd) => Queued::Full(cmd),
            mpsc::error::TrySendError::Closed(_) => Queued::Closed,
        })
    }

    fn queue_error(&self, e: &Queued) -> TransportError {
        match e {
            Queued::Full(_) => TransportError::Backpressure,
            Queued::Closed => self.closed(),
        }
    }

    /// Sends BYE after everything queued before it, flushes, and shuts the
    /// write side down. Frames queued by other handles after the close
    /// request are discarded.
    ///
    /// # Errors
    /// The connection's error if it had failed.
    pub async fn close(&self) -> Result<()> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Command::Close(ack))
            .await
            .map_err(|_| self.closed())?;
        done.await.map_err(|_| self.closed())?
    }

    /// What the handshake established.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// A [`Sink`] of frames over this handle.
    pub fn sink(&self) -> impl Sink<Frame, Error = TransportError> + Send + 'static {
        futures_util::sink::unfold(self.clone(), |half, frame: Frame| async move {
            half.send_frame(frame).await?;
            Ok::<_, TransportError>(half)
        })
    }
}

struct Partial {
    kind: FrameKind,
    stream_id: u64,
    headers: Headers,
    data: BytesMut,
}

/// The receiving side: reads, authenticates and decrypts records, answers
/// PINGs, and reassembles continued messages.
pub struct RecvHalf {
    io: Box<dyn AsyncRead + Send + Sync + Unpin>,
    buf: BytesMut,
    decoder: PacketDecoder,
    /// `None` over TLS without Noise: records are plain inside TLS.
    receiver: Option<Receiver>,
    body: Bytes,
    partial: Option<Partial>,
    control: mpsc::WeakSender<Command>,
    shared: Arc<Shared>,
    read_idle_timeout: Option<Duration>,
    packet_timeout: Duration,
    packet_started: Option<Instant>,
    max_message: usize,
    epoch: Instant,
    failed: Option<TransportError>,
    /// A TLS client has yet to read the server's hello.
    hello_pending: bool,
    info: Arc<ConnectionInfo>,
}

impl std::fmt::Debug for RecvHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvHalf")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl RecvHalf {
    fn fail(&mut self, e: TransportError) -> TransportError {
        match &e {
            TransportError::ConnectionClosed { clean: true } => {
                tracing::debug!("peer closed the connection");
            }
            other => {
                tracing::warn!(error = %other, "connection failed");
                // A connection that failed to authenticate, or broke, must
                // not keep accepting sends.
                self.shared.fail(other.clone());
            }
        }
        self.failed = Some(e.clone());
        e
    }

    /// What the handshake established.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Receives the next [`Message`] (DATA frames), skipping PONG, ACK and
    /// GOAWAY frames.
    ///
    /// # Errors
    /// [`TransportError::Remote`] for an ERR frame (the connection goes on);
    /// [`TransportError::BadMessage`] for a DATA payload that is not a
    /// `Message` (goes on too); otherwise as [`RecvHalf::recv_frame`].
    pub async fn recv(&mut self) -> Result<Message> {
        loop {
            let f = self.recv_frame().await?;
            match f.kind {
                FrameKind::Data => {
                    return Message::decode(&f.payload).map_err(TransportError::BadMessage)
                }
                FrameKind::Err => {
                    let (code, reason) = f.as_ref().error_parts()?;
                    return Err(TransportError::Remote {
                        code,
                        reason: reason.unwrap_or("").to_owned(),
                        stream_id: f.stream_id,
                    });
                }
                _ => {}
            }
        }
    }

    /// Receives the next frame: DATA (whole messages, continuation already
    /// reassembled), ERR, ACK, GOAWAY and PONG. PINGs are answered here;
    /// unknown extension frames are skipped.
    ///
    /// # Errors
    /// [`TransportError::ConnectionClosed`] (`clean` after the peer's BYE),
    /// timeouts, and authentication, format and limit errors. All of these end
    /// the connection; later calls return the same error.
    pub async fn recv_frame(&mut self) -> Result<Frame> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            match self.next_buffered() {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(e) => return Err(self.fail(e)),
            }
            if let Err(e) = self.read_record().await {
                return Err(self.fail(e));
            }
        }
    }

    /// The next complete frame from the current record, if any.
    fn next_buffered(&mut self) -> Result<Option<Frame>> {
        let limits = FrameLimits::with_max_payload(MAX_PLAINTEXT);
        while !self.body.is_empty() {
            let f = Frame::take(&mut self.body, &limits)?;
            match f.kind {
                FrameKind::Ping => {
                    // A full queue means we are busy enough; the peer's next
                    // ping will be answered. The payload is copied (and
                    // bounded) so a queued PONG never pins a whole record.
                    if f.payload.len() <= MAX_PING_PAYLOAD {
                        if let Some(tx) = self.control.upgrade() {
                            let echo = Bytes::copy_from_slice(&f.payload);
                            let _ =
                                tx.try_send(Command::Frame(Frame::new(FrameKind::Pong, 0, echo)));
                        }
                    }
                    continue;
                }
                FrameKind::Bye => return Err(TransportError::ConnectionClosed { clean: true }),
                FrameKind::Handshake => {
                    return Err(TransportError::Protocol(
                        "handshake frame after the handshake",
                    ))
                }
                FrameKind::Extension(code) => {
                    tracing::trace!(code, "skipping unknown extension frame");
                    continue;
                }
                _ => {}
            }
            if let Some(p) = &mut self.partial {
                if p.stream_id != f.stream_id || p.kind != f.kind {
                    return Err(TransportError::Protocol(
                        "continuation frames of different messages interleaved",
                    ));
                }
                if p.data.len() + f.payload.len() > self.max_message {
                    return Err(TransportError::PeerMessageTooLarge {
                        len: p.data.len() + f.payload.len(),
                        max: self.max_message,
                    });
                }
                p.data.extend_from_slice(&f.payload);
                if f.more {
                    continue;
                }
                let Some(p) = self.partial.take() else {
                    continue;
                };
                return Ok(Some(
                    Frame::new(p.kind, p.stream_id, p.data.freeze()).with_headers(p.headers),
                ));
            }
            if f.payload.len() > self.max_message {
                return Err(TransportError::PeerMessageTooLarge {
                    len: f.payload.len(),
                    max: self.max_message,
                });
            }
            if f.more {
                let mut data = BytesMut::with_capacity(2 * f.payload.len());
                data.extend_from_slice(&f.payload);
                self.partial = Some(Partial {
                    kind: f.kind,
                    stream_id: f.stream_id,
                    headers: f.headers,
                    data,
                });
                continue;
            }
            return Ok(Some(f));
        }
        Ok(None)
    }

    /// Reads more bytes into the receive buffer. Between packets, a buffer
    /// that sat unused for [`IDLE_RELEASE`] is given back, and the next bytes
    /// are read into a small stack buffer first, so an idle connection holds
    /// no receive buffer at all.
    async fn read_more(&mut self, between_packets: bool) -> std::io::Result<usize> {
        if between_packets && self.buf.is_empty() {
            if self.buf.capacity() > 0 {
                let needed = self.decoder.bytes_needed(0);
                handshake::make_read_room(&mut self.buf, needed);
                let read = self.io.read_buf(&mut self.buf);
                if let Ok(read) = tokio::time::timeout(IDLE_RELEASE, read).await {
                    return read;
                }
                self.buf = BytesMut::new();
            }
            let mut first = [0u8; WAKE_READ];
            let n = self.io.read(&mut first).await?;
            self.buf.extend_from_slice(&first[..n]);
            return Ok(n);
        }
        let needed = self.decoder.bytes_needed(self.buf.len());
        handshake::make_read_room(&mut self.buf, needed);
        self.io.read_buf(&mut self.buf).await
    }

    /// Reads, authenticates and decrypts the next record into `self.body`.
    async fn read_record(&mut self) -> Result<()> {
        // The packet deadline counts only time spent waiting here for the
        // peer, never time the application spent before calling us.
        self.packet_started = None;
        let (flags, mut body) = loop {
            if let Some(p) = self.decoder.decode_mut(&mut self.buf)? {
                break p;
            }
            let in_packet = !self.buf.is_empty() || !self.decoder.is_idle();
            let deadline = if in_packet {
                let started = *self.packet_started.get_or_insert_with(Instant::now);
                Some((
                    started + self.packet_timeout,
                    TimeoutKind::Packet,
                    self.packet_timeout,
                ))
            } else {
                self.read_idle_timeout
                    .map(|t| (Instant::now() + t, TimeoutKind::ReadIdle, t))
            };
            let read = self.read_more(!in_packet);
            let n = match deadline {
                Some((at, kind, after)) => tokio::time::timeout_at(at, read)
                    .await
                    .map_err(|_| TransportError::Timeout { kind, after })??,
                None => read.await?,
            };
            if n == 0 {
                return Err(TransportError::ConnectionClosed { clean: false });
            }
        };
        if self.hello_pending {
            self.hello_pending = false;
            self.shared
                .set_peer_caps(handshake::parse_hello(flags, &body)?);
            return Ok(());
        }
        if let Some(receiver) = &mut self.receiver {
            if !flags.encrypted() {
                return Err(TransportError::Protocol(
                    "plaintext packet after the handshake",
                ));
            }
            let header = Header::for_body(flags, body.len())?.to_bytes();
            let len = receiver.open(
                self.epoch.elapsed(),
                0,
                flags.key_phase(),
                &header,
                &mut body,
            )?;
            body.truncate(len);
        } else if flags.encrypted() {
            return Err(TransportError::Protocol(
                "sealed record on a TLS connection that runs no Noise handshake",
            ));
        }
        self.body = match flags.compression() {
            Compression::None => body.freeze(),
            codec => {
                let mut plain = Vec::new();
                decompress(codec, &body, MAX_PLAINTEXT, &mut plain)?;
                Bytes::from(plain)
            }
        };
        Ok(())
    }

    /// A [`Stream`] of frames; it ends after the peer's BYE and yields any
    /// other error once before ending.
    pub fn into_stream(self) -> impl Stream<Item = Result<Frame>> + Send + 'static {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut half = state?;
            match half.recv_frame().await {
                Ok(f) => Some((Ok(f), Some(half))),
                Err(TransportError::ConnectionClosed { clean: true }) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}
