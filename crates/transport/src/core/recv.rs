//! The receiving side of the core: the frames of the current record, taken
//! one at a time (slices of the record, no copy), and the reassembly of a
//! message continued over several records.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use netproto_crypto::MAX_PLAINTEXT;
use netproto_wire::{decompress, Compression, Frame, FrameKind, FrameLimits, Headers};

use crate::budget::MemoryBudget;
use crate::error::{ProtocolViolation, Result, TransportError};

/// How many messages a peer may have unfinished at once on one connection
/// (pieces of messages on different streams interleave when the sender
/// runs priorities): one per priority band and room for messages that
/// share a band. WIRE.md, "Interleaved continuation".
pub(crate) const MAX_UNFINISHED: usize = 8;

#[derive(Debug)]
struct Partial {
    kind: FrameKind,
    stream_id: u64,
    headers: Headers,
    /// A `Vec`, grown with `reserve_exact`: its capacity, which is what
    /// the budget is charged, is known before each allocation.
    data: Vec<u8>,
    /// What the budget was charged for it.
    charged: usize,
}

#[derive(Debug)]
pub(crate) struct RecvState {
    /// What is left of the current record's plaintext.
    body: Bytes,
    /// Messages being continued (at most [`MAX_UNFINISHED`], each on its
    /// own stream id).
    partials: Vec<Partial>,
    /// Our message limit (what we advertised).
    pub(crate) max_message: usize,
    /// Shared with other connections: bytes held for messages being
    /// reassembled.
    budget: Option<Arc<MemoryBudget>>,
    /// What this connection holds of it.
    held: usize,
}

impl Drop for RecvState {
    fn drop(&mut self) {
        self.release();
    }
}

impl RecvState {
    pub(crate) fn new(max_message: usize, budget: Option<Arc<MemoryBudget>>) -> Self {
        Self {
            body: Bytes::new(),
            partials: Vec::new(),
            max_message,
            budget,
            held: 0,
        }
    }

    /// Whether a continued message is being reassembled.
    pub(crate) fn is_reassembling(&self) -> bool {
        !self.partials.is_empty()
    }

    /// Takes `n` more bytes from the shared budget for a message being
    /// reassembled.
    fn hold(&mut self, n: usize) -> Result<()> {
        if let Some(budget) = &self.budget {
            if !budget.try_take(n) {
                metrics::counter!("netproto_reassembly_refused_total").increment(1);
                return Err(TransportError::ReassemblyBudget {
                    held: self.held,
                    limit: budget.limit(),
                });
            }
        }
        self.held += n;
        Ok(())
    }

    /// Drops an unfinished message and gives its budget back (the
    /// connection has ended).
    pub(crate) fn abandon(&mut self) {
        self.partials = Vec::new();
        self.release();
    }

    /// Gives back `n` bytes held for a message that completed.
    fn give(&mut self, n: usize) {
        let n = n.min(self.held);
        if let Some(budget) = &self.budget {
            budget.give(n);
        }
        self.held -= n;
    }

    /// Gives back everything held for reassembly.
    fn release(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give(self.held);
        }
        self.held = 0;
    }

    /// Whether the current record still holds frames.
    pub(crate) fn has_frames(&self) -> bool {
        !self.body.is_empty()
    }

    /// Bytes held for a message being reassembled.
    pub(crate) fn reassembling(&self) -> usize {
        self.partials.iter().map(|p| p.data.len()).sum()
    }

    /// Takes an opened record's plaintext, decompressing it (bounded by the
    /// record plaintext limit, so a bomb cannot expand past one record).
    pub(crate) fn set_record(&mut self, codec: Compression, body: BytesMut) -> Result<()> {
        self.body = match codec {
            Compression::None => body.freeze(),
            codec => {
                let mut plain = Vec::new();
                decompress(codec, &body, MAX_PLAINTEXT, &mut plain)?;
                Bytes::from(plain)
            }
        };
        Ok(())
    }

    /// The next frame of the current record, as it is on the wire.
    pub(crate) fn next_raw(&mut self) -> Result<Option<Frame>> {
        if self.body.is_empty() {
            return Ok(None);
        }
        let limits = FrameLimits::with_max_payload(MAX_PLAINTEXT);
        Ok(Some(Frame::take(&mut self.body, &limits)?))
    }

    /// Feeds an application frame through reassembly: a whole message
    /// comes out, a piece is kept (within our message limit, the limits on
    /// unfinished messages, and the shared budget).
    ///
    /// Pieces of messages on different stream ids may interleave (we
    /// advertise `INTERLEAVE`): at most [`MAX_UNFINISHED`] messages are
    /// unfinished at once, together at most twice our message limit.
    pub(crate) fn assemble(&mut self, f: Frame) -> Result<Option<Frame>> {
        let at = self
            .partials
            .iter()
            .position(|p| p.stream_id == f.stream_id);
        let so_far = match at.map(|i| &self.partials[i]) {
            Some(p) if p.kind != f.kind => {
                return Err(TransportError::Protocol(
                    ProtocolViolation::InterleavedContinuation,
                ));
            }
            Some(_) if !f.headers.is_empty() => {
                return Err(TransportError::Protocol(
                    ProtocolViolation::HeadersOnContinuation,
                ));
            }
            Some(p) => p.data.len(),
            None if !f.more => {
                if f.payload.len() > self.max_message {
                    return Err(TransportError::PeerMessageTooLarge {
                        len: f.payload.len(),
                        max: self.max_message,
                    });
                }
                return Ok(Some(f));
            }
            None => 0,
        };
        let len = so_far + f.payload.len();
        if len > self.max_message {
            return Err(TransportError::PeerMessageTooLarge {
                len,
                max: self.max_message,
            });
        }
        let unfinished = self.reassembling() + f.payload.len();
        let messages = self.partials.len() + usize::from(at.is_none());
        if messages > MAX_UNFINISHED || unfinished > 2 * self.max_message {
            return Err(TransportError::Protocol(
                ProtocolViolation::TooMuchUnfinished {
                    messages,
                    bytes: unfinished,
                },
            ));
        }
        let Some(i) = at else {
            // The first piece: room for twice as much again.
            let capacity = (2 * f.payload.len()).min(self.max_message);
            self.hold(capacity)?;
            let mut data = Vec::with_capacity(capacity);
            data.extend_from_slice(&f.payload);
            self.partials.push(Partial {
                kind: f.kind,
                stream_id: f.stream_id,
                headers: f.headers,
                data,
                charged: capacity,
            });
            return Ok(None);
        };
        let (len, capacity) = (self.partials[i].data.len(), self.partials[i].charged);
        if len + f.payload.len() > capacity {
            // Doubling, capped by the message limit; the budget is charged
            // for the new capacity before it is allocated.
            let grown = (2 * capacity)
                .max(len + f.payload.len())
                .min(self.max_message);
            self.hold(grown - capacity)?;
            self.partials[i].charged += grown - capacity;
            self.partials[i].data.reserve_exact(grown - len);
        }
        self.partials[i].data.extend_from_slice(&f.payload);
        if f.more {
            return Ok(None);
        }
        let p = self.partials.swap_remove(i);
        self.give(p.charged);
        Ok(Some(
            Frame::new(p.kind, p.stream_id, Bytes::from(p.data)).with_headers(p.headers),
        ))
    }
}
