//! The sending side of the core: frames are packed into records as they
//! are queued (many small frames share a record, a large payload is split
//! with `MORE`), a record is sealed as soon as it is full, and the open
//! record is sealed when the driver asks for bytes to transmit.

use std::time::Duration;

use netproto_crypto::Sender;
use netproto_wire::{varint, Compression, CompressionPolicy, FrameKind, FrameRef, HeadersRef};

use crate::core::priority::{Scheduler, FILL};
use crate::core::record::RecordFormat;
use crate::error::Result;

#[derive(Debug, Default)]
pub(crate) struct SendState {
    /// Sealed records, then the open record (header space + plaintext).
    out: Vec<u8>,
    /// Where the open record's header space starts.
    record_start: Option<usize>,
    /// Compression output.
    scratch: Vec<u8>,
    /// Encoded payloads (a payload is sized by encoding it once, here).
    pub(crate) payload_buf: Vec<u8>,
    pub(crate) compression: CompressionPolicy,
    /// A codec to switch to once the peer's hello shows it reads it.
    pub(crate) pending_codec: Option<Compression>,
    /// Messages waiting for their turn (priorities).
    pub(crate) sched: Scheduler,
    /// BYE goes out once the waiting messages have.
    pub(crate) bye_waiting: bool,
}

impl SendState {
    /// Bytes queued for the carrier (sealed or not, or waiting for their
    /// turn).
    pub(crate) fn queued(&self) -> usize {
        self.out.len() + self.sched.bytes()
    }

    /// Bytes a message at `priority` waits behind.
    pub(crate) fn queued_at(&self, priority: crate::core::Priority) -> usize {
        self.out.len() + self.sched.bytes_at_or_above(priority)
    }

    /// Appends raw bytes that need no record (handshake packets, the TLS
    /// hello).
    pub(crate) fn raw(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    fn record_len<F: RecordFormat>(&self, format: &F) -> usize {
        self.record_start
            .map_or(0, |s| self.out.len() - s - format.header_len())
    }

    /// Appends a frame, splitting the payload over records with `MORE`
    /// when it does not fit the open one (and setting `MORE` on the last
    /// piece too when the message `continues` later). Full records are
    /// sealed at once.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push<F: RecordFormat>(
        &mut self,
        format: &F,
        sender: &mut Option<Sender>,
        now: Duration,
        kind: FrameKind,
        stream_id: u64,
        headers: HeadersRef<'_>,
        payload: &[u8],
        continues: bool,
    ) -> Result<()> {
        let max = format.max_plaintext();
        let mut rest = payload;
        let mut first = true;
        loop {
            if self.record_start.is_none() {
                self.record_start = Some(self.out.len());
                self.out.resize(self.out.len() + format.header_len(), 0);
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
            let space = max.saturating_sub(self.record_len(format));
            // Only DATA, ERR and ACK continue: another frame starts a new
            // record rather than be split (the caller checked it fits one).
            let whole = !kind.can_continue() && self.record_len(format) > 0;
            if space < fixed + rest.len().min(1) || (whole && space < fixed + rest.len()) {
                self.seal(format, sender, now)?;
                continue;
            }
            let take = rest.len().min(space - fixed);
            let more = take < rest.len();
            FrameRef {
                kind,
                more: more || continues,
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
            self.seal(format, sender, now)?;
        }
    }

    /// Seals the open record: optional compression, then the format's
    /// header and AEAD.
    pub(crate) fn seal<F: RecordFormat>(
        &mut self,
        format: &F,
        sender: &mut Option<Sender>,
        now: Duration,
    ) -> Result<()> {
        let Some(start) = self.record_start.take() else {
            return Ok(());
        };
        let body_start = start + format.header_len();
        if self.out.len() == body_start {
            self.out.truncate(start);
            return Ok(());
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
        let sealer = sender.as_mut().map(|s| (s, now));
        format.seal(sealer, codec, &mut self.out, start)
    }

    /// Moves pieces of waiting messages into records, up to [`FILL`]
    /// bytes, and BYE once none wait.
    fn fill<F: RecordFormat>(
        &mut self,
        format: &F,
        sender: &mut Option<Sender>,
        now: Duration,
        peer_max: usize,
    ) -> Result<()> {
        // Counted in payload bytes: sealing may compress what is already
        // in `out`, so its length is no measure.
        let mut taken = 0;
        while taken < FILL {
            let Some(p) = self.sched.next(peer_max) else {
                break;
            };
            taken += p.data.len();
            let headers = p.headers.as_ref();
            self.push(
                format,
                sender,
                now,
                p.kind,
                p.stream_id,
                headers,
                &p.data,
                p.continues,
            )?;
        }
        if self.bye_waiting && self.sched.is_empty() {
            self.bye_waiting = false;
            self.push(
                format,
                sender,
                now,
                FrameKind::Bye,
                0,
                HeadersRef::EMPTY,
                &[],
                false,
            )?;
        }
        Ok(())
    }

    /// Seals the open record and moves every queued byte into `dst`
    /// (which the caller passes empty; its allocation is kept for the next
    /// records), after a fill of waiting messages' pieces. Returns false if
    /// there was nothing to send.
    pub(crate) fn transmit<F: RecordFormat>(
        &mut self,
        format: &F,
        sender: &mut Option<Sender>,
        now: Duration,
        peer_max: usize,
        dst: &mut Vec<u8>,
    ) -> Result<bool> {
        self.fill(format, sender, now, peer_max)?;
        self.seal(format, sender, now)?;
        if self.out.is_empty() {
            return Ok(false);
        }
        dst.clear();
        std::mem::swap(&mut self.out, dst);
        Ok(true)
    }

    /// Drops the messages waiting for their turn (the connection ended).
    pub(crate) fn abandon(&mut self) {
        self.sched = Scheduler::default();
        self.bye_waiting = false;
    }

    /// Gives buffers back (an idle connection holds none).
    pub(crate) fn release(&mut self) {
        if self.out.is_empty() && self.record_start.is_none() {
            self.out = Vec::new();
        }
        self.scratch = Vec::new();
        self.payload_buf = Vec::new();
    }
}
