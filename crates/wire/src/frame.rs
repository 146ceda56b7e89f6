//! Inner frames: what a packet body (after decryption and decompression) holds.
//!
//! ```text
//! kind u8 | flags u8 | stream_id varint | [header_block_len varint | block] | payload_len varint | payload
//! ```
//! Frames are self-delimiting, so one body can carry several (batching), and a
//! message larger than one record travels as frames with the `MORE` flag set
//! on every piece but the last (continuation).

use bytes::{BufMut, Bytes};

use crate::error::{Result, WireError};
use crate::headers::{Headers, HeadersRef};
use crate::packet::DEFAULT_MAX_BODY;
use crate::varint;

/// What a frame is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameKind {
    /// Application data (a request, a response or a one-way message).
    Data,
    /// Liveness probe; the peer answers with `Pong` echoing the payload.
    Ping,
    /// Answer to `Ping`.
    Pong,
    /// Graceful close: the sender will send nothing more.
    Bye,
    /// Acknowledges the message with this stream id (datagram reliability).
    Ack,
    /// The request with this stream id failed; payload is an [`ErrorCode`] and a reason.
    Err,
    /// The sender is shutting down: no new requests; payload names the last
    /// stream id it will still answer.
    GoAway,
    /// A handshake message (the payload is opaque to this crate).
    Handshake,
    /// A kind in the extension range `0x80..=0xFF`; receivers that do not know
    /// it skip the frame instead of failing.
    Extension(u8),
}

impl FrameKind {
    /// PING, PONG, BYE and GOAWAY concern the whole connection: WIRE.md
    /// requires stream id 0 for them.
    pub const fn is_connection_frame(self) -> bool {
        matches!(self, Self::Ping | Self::Pong | Self::Bye | Self::GoAway)
    }

    /// DATA, ERR and ACK messages may be continued over several frames
    /// (`MORE`); a receiver ignores `MORE` on other kinds.
    pub const fn can_continue(self) -> bool {
        matches!(self, Self::Data | Self::Err | Self::Ack)
    }

    /// The byte on the wire.
    pub const fn code(self) -> u8 {
        match self {
            Self::Data => 0x01,
            Self::Ping => 0x02,
            Self::Pong => 0x03,
            Self::Bye => 0x04,
            Self::Ack => 0x05,
            Self::Err => 0x06,
            Self::GoAway => 0x07,
            Self::Handshake => 0x08,
            Self::Extension(c) => c,
        }
    }

    /// Parses the byte on the wire.
    ///
    /// # Errors
    /// [`WireError::UnknownFrameKind`] for `0x00`, `0x09..=0x7F`, or an
    /// `Extension` code below `0x80`.
    pub const fn from_code(code: u8) -> Result<Self> {
        Ok(match code {
            0x01 => Self::Data,
            0x02 => Self::Ping,
            0x03 => Self::Pong,
            0x04 => Self::Bye,
            0x05 => Self::Ack,
            0x06 => Self::Err,
            0x07 => Self::GoAway,
            0x08 => Self::Handshake,
            0x80..=0xff => Self::Extension(code),
            _ => return Err(WireError::UnknownFrameKind(code)),
        })
    }

    /// The upper-case name used in logs and in docs/WIRE.md.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Data => "DATA",
            Self::Ping => "PING",
            Self::Pong => "PONG",
            Self::Bye => "BYE",
            Self::Ack => "ACK",
            Self::Err => "ERR",
            Self::GoAway => "GOAWAY",
            Self::Handshake => "HANDSHAKE",
            Self::Extension(_) => "EXT",
        }
    }
}

const FLAG_MORE: u8 = 0b0000_0001;
const FLAG_HEADERS: u8 = 0b0000_0010;
const KNOWN_FLAGS: u8 = FLAG_MORE | FLAG_HEADERS;

/// Decoder limits for frames. Defaults: payload 16 MiB, header block 8 KiB, 64 headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FrameLimits {
    /// Longest payload accepted in one frame.
    pub max_payload: usize,
    /// Longest header block accepted in one frame.
    pub max_header_block: usize,
    /// Most header entries accepted in one frame.
    pub max_headers: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self {
            max_payload: DEFAULT_MAX_BODY as usize,
            max_header_block: 8 * 1024,
            max_headers: 64,
        }
    }
}

impl FrameLimits {
    /// Default limits with a different payload limit.
    pub fn with_max_payload(max_payload: usize) -> Self {
        Self {
            max_payload,
            ..Self::default()
        }
    }
}

/// A frame borrowed from a decoded body: no copy, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// The kind.
    pub kind: FrameKind,
    /// Set on every piece of a continued message except the last.
    pub more: bool,
    /// Request/stream id that pairs a response with its request (0: none).
    pub stream_id: u64,
    /// Key/value headers, possibly empty.
    pub headers: HeadersRef<'a>,
    /// The payload.
    pub payload: &'a [u8],
}

fn take<'a>(src: &'a [u8], pos: &mut usize, len: usize) -> Result<&'a [u8]> {
    let end = pos
        .checked_add(len)
        .ok_or(WireError::Truncated { needed: len })?;
    let out = src.get(*pos..end).ok_or_else(|| WireError::Truncated {
        needed: end.saturating_sub(src.len()),
    })?;
    *pos = end;
    Ok(out)
}

fn take_varint(src: &[u8], pos: &mut usize) -> Result<u64> {
    let (v, n) = varint::decode(src.get(*pos..).unwrap_or_default())?;
    *pos += n;
    Ok(v)
}

impl<'a> FrameRef<'a> {
    /// A frame with no headers and `more` unset.
    pub const fn new(kind: FrameKind, stream_id: u64, payload: &'a [u8]) -> Self {
        Self {
            kind,
            more: false,
            stream_id,
            headers: HeadersRef::EMPTY,
            payload,
        }
    }

    /// Decodes one frame from the front of `src`; returns it and its length.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if `src` ends inside the frame; kind, flag,
    /// varint, header and limit errors as documented in docs/WIRE.md.
    pub fn decode(src: &'a [u8], limits: &FrameLimits) -> Result<(Self, usize)> {
        let mut pos = 0;
        let fixed = take(src, &mut pos, 2)?;
        let kind = FrameKind::from_code(fixed[0])?;
        let flags = fixed[1];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(WireError::UnknownFrameFlags(flags & !KNOWN_FLAGS));
        }
        let stream_id = take_varint(src, &mut pos)?;
        let headers = if flags & FLAG_HEADERS != 0 {
            let len = take_varint(src, &mut pos)?;
            // An empty block must be encoded by clearing the flag, so every
            // frame has exactly one encoding.
            if len == 0 {
                return Err(WireError::MalformedHeaderBlock);
            }
            if len > limits.max_header_block as u64 {
                return Err(WireError::HeaderBlockTooLarge {
                    len,
                    max: limits.max_header_block as u64,
                });
            }
            #[allow(clippy::cast_possible_truncation)] // bounded by max_header_block above
            let block = take(src, &mut pos, len as usize)?;
            HeadersRef::parse(block, limits.max_headers)?
        } else {
            HeadersRef::EMPTY
        };
        let len = take_varint(src, &mut pos)?;
        if len > limits.max_payload as u64 {
            return Err(WireError::PayloadTooLarge {
                len,
                max: limits.max_payload as u64,
            });
        }
        #[allow(clippy::cast_possible_truncation)] // bounded by max_payload above
        let payload = take(src, &mut pos, len as usize)?;
        Ok((
            Self {
                kind,
                more: flags & FLAG_MORE != 0,
                stream_id,
                headers,
                payload,
            },
            pos,
        ))
    }

    fn flags(&self) -> u8 {
        let mut f = 0;
        if self.more {
            f |= FLAG_MORE;
        }
        if !self.headers.is_empty() {
            f |= FLAG_HEADERS;
        }
        f
    }

    /// Exact number of bytes [`FrameRef::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let block = self.headers.as_bytes().len();
        let headers = if block == 0 {
            0
        } else {
            varint::encoded_len(block as u64) + block
        };
        2 + varint::encoded_len(self.stream_id)
            + headers
            + varint::encoded_len(self.payload.len() as u64)
            + self.payload.len()
    }

    /// Appends the frame to `dst` with no intermediate buffer.
    pub fn encode<B: BufMut + ?Sized>(&self, dst: &mut B) {
        dst.put_u8(self.kind.code());
        dst.put_u8(self.flags());
        varint::encode(self.stream_id, dst);
        let block = self.headers.as_bytes();
        if !block.is_empty() {
            varint::encode(block.len() as u64, dst);
            dst.put_slice(block);
        }
        varint::encode(self.payload.len() as u64, dst);
        dst.put_slice(self.payload);
    }

    /// Copies into an owned frame that shares `src` (the buffer `self` was
    /// decoded from) instead of copying, if `self` points into it.
    pub fn to_owned_in(&self, src: &Bytes) -> Frame {
        let share = |s: &[u8]| {
            if s.is_empty() {
                Bytes::new()
            } else if contains(src, s) {
                src.slice_ref(s)
            } else {
                Bytes::copy_from_slice(s)
            }
        };
        Frame {
            kind: self.kind,
            more: self.more,
            stream_id: self.stream_id,
            headers: Headers::from_parts(share(self.headers.as_bytes()), self.headers.len()),
            payload: share(self.payload),
        }
    }

    /// For an `ERR` frame: its error code and reason.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if the payload is shorter than the 2-byte code.
    /// An invalid UTF-8 reason is returned lossily as `None`.
    pub fn error_parts(&self) -> Result<(ErrorCode, Option<&'a str>)> {
        let (code, reason) =
            self.payload
                .split_first_chunk::<2>()
                .ok_or_else(|| WireError::Truncated {
                    needed: 2usize.saturating_sub(self.payload.len()),
                })?;
        Ok((
            ErrorCode(u16::from_be_bytes(*code)),
            core::str::from_utf8(reason).ok(),
        ))
    }
}

impl<'a> FrameRef<'a> {
    /// For a `GOAWAY` frame: the last request id the sender will serve, and
    /// its reason (`None` if empty or not UTF-8).
    ///
    /// # Errors
    /// The varint's errors ([`WireError::Truncated`], non-canonical or
    /// overlong encodings).
    pub fn goaway_parts(&self) -> Result<(u64, Option<&'a str>)> {
        let (last, used) = varint::decode(self.payload)?;
        let reason = &self.payload[used..];
        Ok((
            last,
            core::str::from_utf8(reason).ok().filter(|r| !r.is_empty()),
        ))
    }
}

fn contains(outer: &[u8], inner: &[u8]) -> bool {
    let o = outer.as_ptr_range();
    let i = inner.as_ptr_range();
    o.start <= i.start && i.end <= o.end
}

/// An owned frame whose headers and payload are reference-counted [`Bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The kind.
    pub kind: FrameKind,
    /// Set on every piece of a continued message except the last.
    pub more: bool,
    /// Request/stream id (0: none).
    pub stream_id: u64,
    /// Key/value headers.
    pub headers: Headers,
    /// The payload.
    pub payload: Bytes,
}

impl Frame {
    /// A frame with no headers and `more` unset.
    pub fn new(kind: FrameKind, stream_id: u64, payload: impl Into<Bytes>) -> Self {
        Self {
            kind,
            more: false,
            stream_id,
            headers: Headers::new(),
            payload: payload.into(),
        }
    }

    /// A `DATA` frame.
    pub fn data(stream_id: u64, payload: impl Into<Bytes>) -> Self {
        Self::new(FrameKind::Data, stream_id, payload)
    }

    /// An `ERR` frame answering `stream_id`.
    pub fn error(stream_id: u64, code: ErrorCode, reason: &str) -> Self {
        let mut p = alloc::vec::Vec::with_capacity(2 + reason.len());
        p.extend_from_slice(&code.0.to_be_bytes());
        p.extend_from_slice(reason.as_bytes());
        Self::new(FrameKind::Err, stream_id, p)
    }

    /// A `GOAWAY` frame: requests with ids above `last_stream_id` will not
    /// be served.
    pub fn goaway(last_stream_id: u64, reason: &str) -> Self {
        let mut p = alloc::vec::Vec::with_capacity(10 + reason.len());
        varint::encode(last_stream_id, &mut p);
        p.extend_from_slice(reason.as_bytes());
        Self::new(FrameKind::GoAway, 0, p)
    }

    /// Replaces the headers.
    #[must_use]
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }

    /// Sets the continuation flag.
    #[must_use]
    pub fn with_more(mut self, more: bool) -> Self {
        self.more = more;
        self
    }

    /// Borrowed view.
    pub fn as_ref(&self) -> FrameRef<'_> {
        FrameRef {
            kind: self.kind,
            more: self.more,
            stream_id: self.stream_id,
            headers: self.headers.as_ref(),
            payload: &self.payload,
        }
    }

    /// Decodes one frame from the front of `src`, sharing its memory.
    ///
    /// # Errors
    /// As [`FrameRef::decode`].
    pub fn decode(src: &Bytes, limits: &FrameLimits) -> Result<(Self, usize)> {
        let (f, n) = FrameRef::decode(src, limits)?;
        Ok((f.to_owned_in(src), n))
    }

    /// Takes one frame off the front of `src`, moving the buffer into the
    /// frame instead of sharing it where possible: when the frame is the last
    /// one in `src` and has no headers, no reference count is touched at all.
    ///
    /// # Errors
    /// As [`FrameRef::decode`]; on error `src` is unchanged.
    pub fn take(src: &mut Bytes, limits: &FrameLimits) -> Result<Self> {
        let (f, used) = FrameRef::decode(src, limits)?;
        let (kind, more, stream_id, count) = (f.kind, f.more, f.stream_id, f.headers.len());
        // The payload always ends the frame; a non-empty header block lies
        // inside `src`, so its offset is the distance between the pointers.
        let payload_start = used - f.payload.len();
        let block = f.headers.as_bytes();
        let block_start = (block.as_ptr() as usize).wrapping_sub(src.as_ptr() as usize);
        let block_range = if block.is_empty() {
            0..0
        } else {
            block_start..block_start + block.len()
        };
        let mut whole = if used == src.len() {
            core::mem::take(src)
        } else {
            src.split_to(used)
        };
        let headers = if block_range.is_empty() {
            Headers::new()
        } else {
            Headers::from_parts(whole.slice(block_range), count)
        };
        bytes::Buf::advance(&mut whole, payload_start);
        Ok(Self {
            kind,
            more,
            stream_id,
            headers,
            payload: whole,
        })
    }

    /// Exact number of bytes [`Frame::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        self.as_ref().encoded_len()
    }

    /// Appends the frame to `dst`.
    pub fn encode<B: BufMut + ?Sized>(&self, dst: &mut B) {
        self.as_ref().encode(dst);
    }
}

/// Iterates over the frames of one body. Stops after the first error.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    rest: &'a [u8],
    limits: FrameLimits,
    failed: bool,
}

/// The frames of a body, in order.
pub fn frames<'a>(body: &'a [u8], limits: &FrameLimits) -> Frames<'a> {
    Frames {
        rest: body,
        limits: *limits,
        failed: false,
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<FrameRef<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match FrameRef::decode(self.rest, &self.limits) {
            Ok((f, n)) => {
                self.rest = self.rest.get(n..).unwrap_or_default();
                Some(Ok(f))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The code carried in the first two bytes of an `ERR` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// The peer violated the protocol.
    pub const PROTOCOL: Self = Self(1);
    /// The handler failed or panicked.
    pub const INTERNAL: Self = Self(2);
    /// The server is at `max_connections` or otherwise overloaded.
    pub const BUSY: Self = Self(3);
    /// No handler is registered for the opcode.
    pub const UNKNOWN_OPCODE: Self = Self(4);
    /// The request payload did not decode.
    pub const BAD_REQUEST: Self = Self(5);
    /// The request took longer than allowed.
    pub const TIMEOUT: Self = Self(6);
    /// Something exceeded a size limit.
    pub const TOO_LARGE: Self = Self(7);
    /// The server is shutting down.
    pub const SHUTTING_DOWN: Self = Self(8);

    /// The code's name in docs/WIRE.md (`"UNKNOWN_OPCODE"`, …), `None` for a
    /// code this version does not define.
    #[must_use]
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "PROTOCOL",
            2 => "INTERNAL",
            3 => "BUSY",
            4 => "UNKNOWN_OPCODE",
            5 => "BAD_REQUEST",
            6 => "TIMEOUT",
            7 => "TOO_LARGE",
            8 => "SHUTTING_DOWN",
            _ => return None,
        })
    }
}

/// `UNKNOWN_OPCODE (4)`; an undefined code prints as `code 4242`.
impl core::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "code {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn enc(f: &FrameRef<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        f.encode(&mut v);
        assert_eq!(v.len(), f.encoded_len());
        v
    }

    #[test]
    fn minimal_data_frame() {
        let f = FrameRef::new(FrameKind::Data, 1, b"abc");
        let bytes = enc(&f);
        assert_eq!(bytes, [0x01, 0x00, 0x01, 0x03, b'a', b'b', b'c']);
        assert_eq!(
            FrameRef::decode(&bytes, &FrameLimits::default()),
            Ok((f, 7))
        );
    }

    #[test]
    fn headers_and_more_roundtrip() {
        let h = Headers::builder().insert("a", "b").unwrap().build();
        let f = Frame::data(300, &b"xyz"[..])
            .with_headers(h)
            .with_more(true);
        let mut bytes = Vec::new();
        f.encode(&mut bytes);
        let bytes = Bytes::from(bytes);
        let (back, n) = Frame::decode(&bytes, &FrameLimits::default()).unwrap();
        assert_eq!(n, bytes.len());
        assert_eq!(back, f);
        // The owned decode shares the input buffer.
        assert!(contains(&bytes, &back.payload));
    }

    #[test]
    fn limits_enforced_before_reading_payload() {
        let mut bytes = vec![0x01, 0x00, 0x00];
        varint::encode(1 << 40, &mut bytes);
        assert_eq!(
            FrameRef::decode(&bytes, &FrameLimits::with_max_payload(1024)),
            Err(WireError::PayloadTooLarge {
                len: 1 << 40,
                max: 1024
            })
        );
    }

    #[test]
    fn rejects_unknown_kind_and_flags() {
        assert_eq!(
            FrameRef::decode(&[0x00, 0, 0, 0], &FrameLimits::default()),
            Err(WireError::UnknownFrameKind(0))
        );
        assert_eq!(
            FrameRef::decode(&[0x01, 0x80, 0, 0], &FrameLimits::default()),
            Err(WireError::UnknownFrameFlags(0x80))
        );
        assert_eq!(
            FrameRef::decode(&[0x01, FLAG_HEADERS, 0, 0, 0], &FrameLimits::default()),
            Err(WireError::MalformedHeaderBlock)
        );
        let (ext, _) = FrameRef::decode(&[0x9a, 0, 0, 0], &FrameLimits::default()).unwrap();
        assert_eq!(ext.kind, FrameKind::Extension(0x9a));
    }

    #[test]
    fn take_moves_frames_off_the_buffer() {
        let h = Headers::builder().insert("k", "v").unwrap().build();
        let a = Frame::data(1, &b"first"[..]).with_headers(h);
        let b = Frame::new(FrameKind::Ping, 0, &b"12345678"[..]);
        let mut body = Vec::new();
        a.encode(&mut body);
        b.encode(&mut body);
        let mut src = Bytes::from(body);
        assert_eq!(Frame::take(&mut src, &FrameLimits::default()).unwrap(), a);
        assert_eq!(Frame::take(&mut src, &FrameLimits::default()).unwrap(), b);
        assert!(src.is_empty());
        let mut bad = Bytes::from_static(&[0x01, 0x00, 0x00, 0x05, b'a']);
        assert!(Frame::take(&mut bad, &FrameLimits::default()).is_err());
        assert_eq!(bad.len(), 5);
    }

    #[test]
    fn batch_iteration() {
        let mut body = Vec::new();
        FrameRef::new(FrameKind::Ping, 0, b"12345678").encode(&mut body);
        FrameRef::new(FrameKind::Data, 7, b"hi").encode(&mut body);
        let got: Vec<_> = frames(&body, &FrameLimits::default()).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].as_ref().unwrap().stream_id, 7);
        body.push(0x01);
        let last = frames(&body, &FrameLimits::default()).last().unwrap();
        assert!(matches!(last, Err(WireError::Truncated { .. })));
    }

    #[test]
    fn goaway_frame_parts() {
        let f = Frame::goaway(300, "shutting down");
        assert_eq!(f.kind, FrameKind::GoAway);
        assert_eq!(f.stream_id, 0);
        assert_eq!(&f.payload[..3], &[0xac, 0x02, b's']);
        assert_eq!(
            f.as_ref().goaway_parts().unwrap(),
            (300, Some("shutting down"))
        );
        assert_eq!(
            Frame::goaway(42, "").as_ref().goaway_parts().unwrap(),
            (42, None)
        );
        let truncated = Frame::new(FrameKind::GoAway, 0, Bytes::from_static(&[0x80]));
        assert!(truncated.as_ref().goaway_parts().is_err());
    }

    #[test]
    fn error_frame_parts() {
        let f = Frame::error(9, ErrorCode::UNKNOWN_OPCODE, "no such opcode: FOO");
        let (code, reason) = f.as_ref().error_parts().unwrap();
        assert_eq!(code, ErrorCode::UNKNOWN_OPCODE);
        assert_eq!(reason, Some("no such opcode: FOO"));
    }

    #[test]
    fn error_codes_print_their_names() {
        use alloc::string::ToString;
        assert_eq!(ErrorCode::UNKNOWN_OPCODE.to_string(), "UNKNOWN_OPCODE (4)");
        assert_eq!(ErrorCode::SHUTTING_DOWN.to_string(), "SHUTTING_DOWN (8)");
        assert_eq!(ErrorCode(4242).to_string(), "code 4242");
        assert_eq!(ErrorCode(0).name(), None);
    }
}
