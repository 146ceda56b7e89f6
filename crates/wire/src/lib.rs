//! # netproto-wire
//!
//! The byte-level format of netproto, with no I/O: packets, frames, varints,
//! datagram envelopes, fragment reassembly and compression. It is `no_std` +
//! `alloc` (the `std` feature, on by default, adds Zstd and `std::error`
//! integration; `codec` adds a `tokio_util` codec). Time is passed in as a
//! [`core::time::Duration`]; nothing here reads a clock or touches a socket.
//!
//! docs/WIRE.md is the normative spec; its hex test vectors are decoded and
//! re-encoded by the test suite, so the two cannot drift apart.
//!
//! Every decoder checks each length against a limit before it commits memory,
//! rejects bad input with a typed [`WireError`], and never panics.
//!
//! ## Example
//!
//! ```
//! use bytes::BytesMut;
//! use netproto_wire::{
//!     encode_packet, frames, FrameKind, FrameLimits, FrameRef, Message, PacketDecoder, PacketFlags,
//! };
//!
//! // Sender: one DATA frame carrying a Message, in one packet.
//! let payload = Message::Echo("hello".into()).to_vec()?;
//! let mut body = Vec::new();
//! FrameRef::new(FrameKind::Data, 1, &payload).encode(&mut body);
//! let mut wire = BytesMut::new();
//! encode_packet(PacketFlags::default(), &body, &mut wire)?;
//!
//! // Receiver: bytes may arrive in any chunking; the decoder waits for a
//! // whole packet and refuses a bad header before buffering its body.
//! let mut decoder = PacketDecoder::default();
//! let packet = decoder.decode(&mut wire)?.expect("a whole packet arrived");
//! for frame in frames(&packet.body, &FrameLimits::default()) {
//!     let frame = frame?;
//!     assert_eq!(frame.stream_id, 1);
//!     assert_eq!(Message::decode(frame.payload)?, Message::Echo("hello".into()));
//! }
//! # Ok::<(), netproto_wire::WireError>(())
//! ```
#![no_std]
#![cfg_attr(test, allow(clippy::cast_possible_truncation, clippy::cast_sign_loss))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod compression;
mod datagram;
mod error;
mod frame;
mod headers;
mod message;
mod packet;
mod reassembly;
pub mod varint;

#[cfg(feature = "codec")]
mod codec;

#[cfg(feature = "codec")]
pub use codec::PacketCodec;
pub use compression::{
    compress, decompress, Compression, CompressionPolicy, DEFAULT_THRESHOLD, DEFAULT_ZSTD_LEVEL,
};
pub use datagram::{
    crc32, encode_datagram, DatagramHeader, DatagramRef, DatagramType, FragmentInfo, CRC_LEN,
    DEFAULT_MAX_DATAGRAM, ENVELOPE_LEN, FRAGMENT_FIELDS_LEN,
};
pub use error::{Result, WireError};
pub use frame::{frames, ErrorCode, Frame, FrameKind, FrameLimits, FrameRef, Frames};
pub use headers::{HeaderIter, Headers, HeadersBuilder, HeadersRef, MAX_HEADER_FIELD};
pub use message::Message;
pub use packet::{
    encode_packet, Header, Packet, PacketDecoder, PacketFlags, PacketRef, DEFAULT_MAX_BODY,
    HEADER_LEN, MAGIC, VERSION,
};
pub use reassembly::{fragments, Reassembled, Reassembler, ReassemblyLimits, ReassemblyStats};
