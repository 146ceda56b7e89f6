//! The writer task: drains the send queue, packs queued frames into sealed
//! records (batching small ones, splitting large ones with `MORE`), and
//! writes everything queued in one go.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use netproto_crypto::{codecs, Capabilities, Sender, MAX_PLAINTEXT, TAG_LEN};
use netproto_wire::{
    varint, Compression, CompressionPolicy, Frame, FrameKind, FrameRef, Header, HeadersRef,
    Message, PacketFlags, HEADER_LEN,
};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::connection::IDLE_RELEASE;
use crate::error::{Result, TimeoutKind, TransportError};

/// Stop collecting queued commands once this much is ready to write.
const BATCH_BYTES: usize = 256 * 1024;

/// What handles ask the writer to do.
#[derive(Debug)]
pub(crate) enum Command {
    Frame(Frame),
    Message { stream_id: u64, message: Message },
    Close(oneshot::Sender<Result<()>>),
}

/// State shared between the handles, the reader and the writer task.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    error: OnceLock<TransportError>,
    /// The peer's capabilities: set at the handshake, or for a TLS client
    /// when the server's hello arrives.
    peer_caps: OnceLock<Capabilities>,
}

impl Shared {
    pub(crate) fn set_peer_caps(&self, caps: Capabilities) {
        let _ = self.peer_caps.set(caps);
    }

    pub(crate) fn peer_caps(&self) -> Option<&Capabilities> {
        self.peer_caps.get()
    }

    pub(crate) fn fail(&self, e: TransportError) {
        let _ = self.error.set(e);
    }

    /// The failure, once one happened.
    pub(crate) fn failed(&self) -> Option<TransportError> {
        self.error.get().cloned()
    }

    pub(crate) fn error(&self) -> TransportError {
        self.error
            .get()
            .cloned()
            .unwrap_or(TransportError::ConnectionClosed { clean: true })
    }
}

/// The capability bit of a codec.
pub(crate) fn codec_bit(c: Compression) -> u8 {
    match c {
        Compression::Lz4 => codecs::LZ4,
        Compression::Zstd => codecs::ZSTD,
        Compression::None => 0,
    }
}

pub(crate) struct Writer {
    pub(crate) io: Box<dyn AsyncWrite + Send + Sync + Unpin>,
    /// `None` over TLS without Noise: records go out plain inside TLS.
    pub(crate) sender: Option<Sender>,
    pub(crate) compression: CompressionPolicy,
    /// A codec to switch to once the peer's hello shows it supports it
    /// (TLS clients, which do not wait for the hello).
    pub(crate) pending_codec: Option<Compression>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) write_timeout: Duration,
    pub(crate) epoch: Instant,
    pub(crate) out: Vec<u8>,
    pub(crate) scratch: Vec<u8>,
    pub(crate) msg_buf: Vec<u8>,
    pub(crate) record_start: Option<usize>,
}

impl Writer {
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        if let Err(e) = self.serve(&mut rx).await {
            tracing::debug!(error = %e, "connection writer stopped");
            self.shared.fail(e);
        }
        rx.close();
    }

    async fn serve(&mut self, rx: &mut mpsc::Receiver<Command>) -> Result<()> {
        // A hello waiting in the buffer goes out at once, with whatever is
        // already queued.
        let mut hello_waiting = !self.out.is_empty();
        loop {
            let mut close = None;
            if !std::mem::take(&mut hello_waiting) {
                let Some(first) = self.next_command(rx).await else {
                    // Every handle is gone: say goodbye.
                    self.push(FrameKind::Bye, 0, HeadersRef::EMPTY, &[]).await?;
                    self.write_out().await?;
                    let _ = self.io.shutdown().await;
                    return Ok(());
                };
                close = self.handle(first).await?;
            }
            let mut yielded = false;
            while close.is_none() && self.out.len() < BATCH_BYTES {
                match rx.try_recv() {
                    Ok(cmd) => close = self.handle(cmd).await?,
                    Err(_) if !yielded && !self.out.is_empty() => {
                        // Give a sender that is mid-burst one turn to add to
                        // this batch: fewer, larger writes and fewer wake-ups
                        // (W2 +14 % here; an idle sender costs one re-poll).
                        yielded = true;
                        tokio::task::yield_now().await;
                    }
                    Err(_) => break,
                }
            }
            self.write_out().await?;
            if let Some(ack) = close {
                let result = self.io.shutdown().await.map_err(TransportError::from);
                let _ = ack.send(result);
                return Ok(());
            }
        }
    }

    /// Waits for the next command; buffers that sat unused for
    /// `IDLE_RELEASE` are given back first.
    async fn next_command(&mut self, rx: &mut mpsc::Receiver<Command>) -> Option<Command> {
        if self.out.capacity() + self.scratch.capacity() + self.msg_buf.capacity() > 0 {
            if let Ok(cmd) = tokio::time::timeout(IDLE_RELEASE, rx.recv()).await {
                return cmd;
            }
            self.out = Vec::new();
            self.scratch = Vec::new();
            self.msg_buf = Vec::new();
        }
        rx.recv().await
    }

    async fn handle(&mut self, cmd: Command) -> Result<Option<oneshot::Sender<Result<()>>>> {
        match cmd {
            Command::Frame(f) => {
                self.push(f.kind, f.stream_id, f.headers.as_ref(), &f.payload)
                    .await?;
                Ok(None)
            }
            Command::Message { stream_id, message } => {
                let mut buf = std::mem::take(&mut self.msg_buf);
                buf.clear();
                let encoded = message.encode(&mut buf);
                let pushed = match encoded {
                    Ok(()) => {
                        self.push(FrameKind::Data, stream_id, HeadersRef::EMPTY, &buf)
                            .await
                    }
                    Err(e) => Err(e.into()),
                };
                self.msg_buf = buf;
                pushed.map(|()| None)
            }
            Command::Close(ack) => {
                self.push(FrameKind::Bye, 0, HeadersRef::EMPTY, &[]).await?;
                Ok(Some(ack))
            }
        }
    }

    fn record_len(&self) -> usize {
        self.record_start
            .map_or(0, |s| self.out.len() - s - HEADER_LEN)
    }

    /// Appends a frame, splitting the payload over records with `MORE` when
    /// it does not fit the current one.
    async fn push(
        &mut self,
        kind: FrameKind,
        stream_id: u64,
        headers: HeadersRef<'_>,
        payload: &[u8],
    ) -> Result<()> {
        let mut rest = payload;
        let mut first = true;
        loop {
            if self.record_start.is_none() {
                self.record_start = Some(self.out.len());
                self.out.extend_from_slice(&[0u8; HEADER_LEN]);
            }
            let block = if first { headers } else { HeadersRef::EMPTY };
            let block_len = block.as_bytes().len();
            let fixed = 2
                + varint::encoded_len(stream_id)
                + if block_len > 0 {
                    varint::encoded_len(block_len as u64) + block_len
                } else {
                    0
                }
                + varint::encoded_len(rest.len() as u64);
            let space = MAX_PLAINTEXT - self.record_len();
            if space < fixed + rest.len().min(1) {
                self.seal_record()?;
                continue;
            }
            let take = rest.len().min(space - fixed);
            let more = take < rest.len();
            FrameRef {
                kind,
                more,
                stream_id,
                headers: block,
                payload: &rest[..take],
            }
            .encode(&mut self.out);
            rest = &rest[take..];
            first = false;
            if !more {
                return Ok(());
            }
            self.seal_record()?;
            if self.out.len() >= BATCH_BYTES {
                self.write_out().await?;
            }
        }
    }

    /// Seals the open record in place: optional compression, then AEAD with
    /// the header as associated data.
    fn seal_record(&mut self) -> Result<()> {
        let Some(start) = self.record_start.take() else {
            return Ok(());
        };
        let body_start = start + HEADER_LEN;
        if self.out.len() == body_start {
            self.out.truncate(start);
            return Ok(());
        }
        if let Some(wanted) = self.pending_codec {
            if let Some(peer) = self.shared.peer_caps() {
                if peer.compression & codec_bit(wanted) != 0 {
                    self.compression.codec = wanted;
                }
                self.pending_codec = None;
            }
        }
        let mut codec = Compression::None;
        if self.compression.codec != Compression::None {
            codec = self
                .compression
                .apply(&self.out[body_start..], &mut self.scratch)?;
            if codec != Compression::None {
                self.out.truncate(body_start);
                self.out.extend_from_slice(&self.scratch);
            }
        }
        let Some(sender) = &mut self.sender else {
            let flags = PacketFlags::new(codec, false);
            let header = Header::for_body(flags, self.out.len() - body_start)?.to_bytes();
            self.out[start..body_start].copy_from_slice(&header);
            return Ok(());
        };
        let reservation = sender.reserve(self.epoch.elapsed())?;
        let flags = PacketFlags::new(codec, true).with_key_phase(reservation.key_phase());
        let header = Header::for_body(flags, self.out.len() - body_start + TAG_LEN)?.to_bytes();
        self.out[start..body_start].copy_from_slice(&header);
        let tag = sender.seal(reservation, &header, &mut self.out[body_start..])?;
        self.out.extend_from_slice(&tag);
        Ok(())
    }

    async fn write_out(&mut self) -> Result<()> {
        self.seal_record()?;
        if self.out.is_empty() {
            return Ok(());
        }
        let io = &mut self.io;
        let out = &self.out;
        let write = async move {
            io.write_all(out).await?;
            io.flush().await
        };
        tokio::time::timeout(self.write_timeout, write)
            .await
            .map_err(|_| TransportError::Timeout {
                kind: TimeoutKind::Write,
                after: self.write_timeout,
            })??;
        self.out.clear();
        // A burst does not pin a huge buffer (idle ones are freed entirely).
        if self.out.capacity() > 4 * BATCH_BYTES {
            self.out.shrink_to(BATCH_BYTES);
        }
        Ok(())
    }
}
