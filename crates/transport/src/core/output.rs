//! The sending side of the core's API: checks, frames, PING, GOAWAY, BYE,
//! and handing sealed bytes to the driver.

use std::time::Instant;

use bytes::Bytes;
use netproto_wire::{Frame, FrameKind, FrameLimits, Headers, HeadersRef};

use super::priority::{piece_len, Priority};
use super::Core;
use crate::core::record::RecordFormat;
use crate::error::{InvalidFrame, Result, TransportError};
use crate::extension::features;
use crate::payload::Payload;

impl<F: RecordFormat> Core<F> {
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

    pub(super) fn push(
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
            false,
        );
        self.transmit_signal = true;
        // A half-written record cannot be taken back: a sealing failure
        // (nonce space exhausted) ends the connection.
        pushed.map_err(|e| self.fail(e))
    }

    /// Whether this connection interleaves waiting messages by priority
    /// (configured, and the peer advertised `INTERLEAVE`).
    pub fn runs_priorities(&self) -> bool {
        self.priorities && self.negotiated_features() & features::INTERLEAVE != 0
    }

    /// Queues a message (DATA, ERR, ACK) at `priority`: into the open
    /// record now, or, when it must wait its turn (see
    /// [`Priority`]), as a slice of `owned` (or a copy of `payload` if
    /// there is none).
    #[allow(clippy::too_many_arguments)]
    fn push_message(
        &mut self,
        now: Instant,
        kind: FrameKind,
        stream_id: u64,
        headers: &Headers,
        payload: &[u8],
        owned: Option<&Bytes>,
        priority: Priority,
    ) -> Result<()> {
        if kind.can_continue() && self.runs_priorities() {
            let piece = piece_len(self.peer_max_message());
            if self
                .tx
                .sched
                .must_wait(stream_id, priority, payload.len(), piece)
            {
                // Cloned only here: a clone of a `Vec`-backed `Bytes`
                // allocates (W2 lost 15 % to cloning every message).
                let data = owned.map_or_else(|| Bytes::copy_from_slice(payload), Bytes::clone);
                self.tx
                    .sched
                    .push(priority, kind, stream_id, headers.clone(), data);
                self.transmit_signal = true;
                return Ok(());
            }
        }
        self.push(now, kind, stream_id, headers.as_ref(), payload)
    }

    /// Queues a frame. Large payloads are split into continuation pieces.
    ///
    /// # Errors
    /// [`TransportError::InvalidFrame`] for HANDSHAKE or BYE frames, frames
    /// with `more` set, header blocks over the wire limits, extension frames
    /// not negotiated with the peer;
    /// [`TransportError::MessageTooLarge`] beyond the peer's limit (nothing
    /// queued, the connection goes on); the connection's error once it has
    /// ended, [`TransportError::ConnectionClosed`] after [`Core::close`].
    pub fn send_frame(&mut self, now: Instant, frame: &Frame) -> Result<()> {
        self.send_frame_at(now, frame, Priority::default())
    }

    /// As [`Core::send_frame`], at `priority` (which orders DATA, ERR and
    /// ACK messages that wait; other frames go at once).
    ///
    /// # Errors
    /// As [`Core::send_frame`].
    pub fn send_frame_at(&mut self, now: Instant, frame: &Frame, priority: Priority) -> Result<()> {
        check_frame(frame)?;
        self.check_send()?;
        if let FrameKind::Extension(kind) = frame.kind {
            if !self.accepts_extension(kind) {
                return Err(TransportError::InvalidFrame(
                    InvalidFrame::ExtensionNotNegotiated { kind },
                ));
            }
        }
        self.check_size(frame.payload.len())?;
        if !frame.kind.can_continue() {
            // Sent whole, in one record: room for the frame's head (kind,
            // flags, stream id, header block and payload lengths, each
            // varint at its longest) and header block.
            let head = 2 + 10 + 4 + 4 + frame.headers.as_ref().as_bytes().len();
            let max = self.format.max_plaintext().saturating_sub(head);
            if frame.payload.len() > max {
                return Err(TransportError::MessageTooLarge {
                    len: frame.payload.len(),
                    max,
                });
            }
        }
        self.push_message(
            now,
            frame.kind,
            frame.stream_id,
            &frame.headers,
            &frame.payload,
            Some(&frame.payload),
            priority,
        )
    }

    /// Queues a DATA frame with `payload`.
    ///
    /// # Errors
    /// As [`Core::send_frame`].
    pub fn send_data(&mut self, now: Instant, stream_id: u64, payload: &[u8]) -> Result<()> {
        self.check_send()?;
        self.check_size(payload.len())?;
        let no_headers = Headers::default();
        self.push_message(
            now,
            FrameKind::Data,
            stream_id,
            &no_headers,
            payload,
            None,
            Priority::default(),
        )
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
        self.send_payload_at(now, stream_id, payload, Priority::default())
    }

    /// As [`Core::send_payload`], at `priority`.
    ///
    /// # Errors
    /// As [`Core::send_payload`].
    pub fn send_payload_at<P: Payload + ?Sized>(
        &mut self,
        now: Instant,
        stream_id: u64,
        payload: &P,
        priority: Priority,
    ) -> Result<()> {
        self.check_send()?;
        let mut buf = std::mem::take(&mut self.tx.payload_buf);
        buf.clear();
        let result = match payload.encode_payload(&mut buf) {
            Ok(()) => self.check_size(buf.len()).and_then(|()| {
                let no_headers = Headers::default();
                // A large message that must wait keeps the encoded buffer
                // itself (no copy); the next payload gets a new one.
                let owned = (self.runs_priorities()
                    && buf.len() > piece_len(self.peer_max_message()))
                .then(|| Bytes::from(std::mem::take(&mut buf)));
                let payload: &[u8] = owned.as_deref().unwrap_or(&buf);
                self.push_message(
                    now,
                    FrameKind::Data,
                    stream_id,
                    &no_headers,
                    payload,
                    owned.as_ref(),
                    priority,
                )
            }),
            Err(e) => Err(TransportError::BadMessage(e)),
        };
        // A large message's scratch copy is not kept: it would double what
        // a connection holds for as long as it lives.
        if buf.capacity() <= KEEP_PAYLOAD_BUFFER {
            self.tx.payload_buf = buf;
        }
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
            if self.tx.sched.is_empty() {
                self.push(now, FrameKind::Bye, 0, HeadersRef::EMPTY, &[])?;
            } else {
                // After the messages still waiting for their turn.
                self.tx.bye_waiting = true;
                self.transmit_signal = true;
            }
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
        let peer_max = self.peer_max_message();
        let sent = self
            .tx
            .transmit(&self.format, &mut self.sender, t, peer_max, dst);
        sent.map_err(|e| self.fail(e))
    }

    /// Gives the send side's buffers back (an idle connection holds none).
    pub fn release_buffers(&mut self) {
        self.tx.release();
    }
}

/// The scratch buffer a payload is encoded into is kept for the next one
/// up to this size (a busy connection of small messages allocates once).
pub(crate) const KEEP_PAYLOAD_BUFFER: usize = 256 * 1024;

/// Refuses frames the core must not send on the application's behalf.
pub(crate) fn check_frame(frame: &Frame) -> Result<()> {
    match frame.kind {
        FrameKind::Handshake => return Err(TransportError::InvalidFrame(InvalidFrame::Handshake)),
        FrameKind::Bye => return Err(TransportError::InvalidFrame(InvalidFrame::Bye)),
        _ => {}
    }
    if frame.more {
        return Err(TransportError::InvalidFrame(InvalidFrame::Continuation));
    }
    if frame.kind.is_connection_frame() && frame.stream_id != 0 {
        return Err(TransportError::InvalidFrame(
            InvalidFrame::ConnectionFrameStream,
        ));
    }
    let limits = FrameLimits::default();
    if frame.headers.len() > limits.max_headers
        || frame.headers.as_ref().as_bytes().len() > limits.max_header_block
    {
        return Err(TransportError::InvalidFrame(InvalidFrame::HeadersTooLarge));
    }
    Ok(())
}
