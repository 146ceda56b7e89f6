//! The one error type of this crate.

use crate::compression::Compression;

/// Everything that can go wrong while encoding or decoding netproto wire data.
///
/// Every variant says what was wrong and carries the numbers needed to act on it
/// (log it, answer with an ERR frame, or close the connection). Decoders never
/// panic and never allocate on the strength of a length they have not checked
/// against a limit first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The packet does not start with `NPRO`; the peer does not speak netproto
    /// (or the stream lost synchronisation).
    #[error("bad magic {found:02x?}: not a netproto packet")]
    BadMagic {
        /// The bytes found where the magic was expected (as many as had arrived).
        found: [u8; 4],
    },
    /// The header names a protocol version this implementation does not speak.
    #[error("unsupported protocol version {0} (this implementation speaks version 1)")]
    UnsupportedVersion(u8),
    /// Flag bits that are reserved in this version are set.
    #[error("unknown flag bits {0:#04x} set in packet header")]
    UnknownFlags(u8),
    /// The two compression bits name the reserved codec value 3.
    #[error("reserved compression codec {0} in packet header")]
    UnknownCompression(u8),
    /// A packet body is longer than the configured maximum.
    #[error("packet body of {len} bytes exceeds the limit of {max} bytes")]
    Oversize {
        /// The length the header declared.
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// The input ended before a complete item; `needed` more bytes at least.
    #[error("input truncated: at least {needed} more bytes needed")]
    Truncated {
        /// Minimum number of further bytes needed.
        needed: usize,
    },
    /// A varint has more than 10 bytes or encodes a value above `u64::MAX`.
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    /// A varint is not in its shortest form (trailing zero groups).
    #[error("varint is not minimally encoded")]
    VarintOverlong,
    /// A frame kind byte that is neither defined nor in the extension range.
    #[error("unknown frame kind {0:#04x}")]
    UnknownFrameKind(u8),
    /// Reserved frame flag bits are set.
    #[error("unknown frame flag bits {0:#04x}")]
    UnknownFrameFlags(u8),
    /// A frame payload is longer than the configured maximum.
    #[error("frame payload of {len} bytes exceeds the limit of {max} bytes")]
    PayloadTooLarge {
        /// Declared payload length.
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// A header block is longer than the configured maximum.
    #[error("header block of {len} bytes exceeds the limit of {max} bytes")]
    HeaderBlockTooLarge {
        /// Declared block length.
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// A header block holds more entries than the configured maximum.
    #[error("more than {max} headers in one frame")]
    TooManyHeaders {
        /// The configured limit.
        max: usize,
    },
    /// A header key or value is longer than 255 bytes (encode side).
    #[error("header {what} of {len} bytes is longer than 255 bytes")]
    HeaderTooLong {
        /// `"key"` or `"value"`.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A header key is empty.
    #[error("header key is empty")]
    EmptyHeaderKey,
    /// A header block declared in a frame is not filled exactly by its entries.
    #[error("malformed header block: entries overrun the declared block length")]
    MalformedHeaderBlock,
    /// The CRC-32 trailer of a plain datagram does not match its contents.
    #[error("CRC-32 mismatch: datagram says {expected:#010x}, contents give {actual:#010x}")]
    CrcMismatch {
        /// CRC carried by the datagram.
        expected: u32,
        /// CRC computed over the received bytes.
        actual: u32,
    },
    /// A datagram type byte that this version does not define.
    #[error("unknown datagram type {0:#04x}")]
    UnknownDatagramType(u8),
    /// Reserved datagram flag bits are set.
    #[error("unknown datagram flag bits {0:#04x}")]
    UnknownDatagramFlags(u8),
    /// Fragment fields are inconsistent (index ≥ count, count 0, or the count
    /// differs from earlier fragments of the same message).
    #[error("invalid fragment {index} of {count}")]
    BadFragment {
        /// Fragment index.
        index: u16,
        /// Fragment count.
        count: u16,
    },
    /// A message would need more fragments than allowed.
    #[error("message needs {count} fragments; the limit is {max}")]
    TooManyFragments {
        /// Fragments declared or needed.
        count: u32,
        /// The configured limit.
        max: u32,
    },
    /// Accepting this fragment would break a reassembly memory limit even after
    /// evicting older partial messages.
    #[error("reassembly budget exhausted: {len} more bytes would exceed {max} bytes")]
    ReassemblyBudget {
        /// Bytes this fragment or message would add.
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// Decompression would produce more than the configured maximum (a
    /// decompression bomb, or a limit set too low).
    #[error("decompressed size exceeds the limit of {max} bytes")]
    DecompressedTooLarge {
        /// The configured limit.
        max: u64,
    },
    /// Compressed data is corrupt.
    #[error("corrupt {codec:?} data")]
    CorruptCompressed {
        /// The codec that failed.
        codec: Compression,
    },
    /// The codec named by the packet is not compiled in (Zstd without `std`).
    #[error("{0:?} compression is not available in this build")]
    CodecUnavailable(Compression),
    /// A `Message` could not be encoded (postcard refused it).
    #[error("message does not encode: {0}")]
    MessageEncode(postcard::Error),
    /// A `Message` payload does not decode.
    #[error("message payload does not decode: {0}")]
    MessageDecode(postcard::Error),
    /// A message decoded but bytes were left over after it.
    #[error("{len} trailing bytes after the message")]
    TrailingBytes {
        /// Bytes left over.
        len: usize,
    },
    /// A previous error left a stream decoder out of sync; the connection must be
    /// closed.
    #[error("decoder already failed; the stream is out of sync")]
    Desynchronized,
    /// The byte stream under a codec failed (only produced by the `codec`
    /// adapter, which tokio-util requires to absorb I/O errors).
    #[cfg(feature = "std")]
    #[error("I/O error under the packet codec: {0:?}")]
    Io(std::io::ErrorKind),
    /// An encoder was given a value it cannot represent (for example a body
    /// longer than `u32::MAX`).
    #[error("value too large to encode: {0}")]
    Unencodable(&'static str),
}

/// Shorthand for this crate's results.
pub type Result<T, E = WireError> = core::result::Result<T, E>;
