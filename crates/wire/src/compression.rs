//! Body compression selected by the packet flags, with bounded decompression.
//!
//! * LZ4 body: `uncompressed_len u32 BE | LZ4 block` (block format, no frame).
//! * Zstd body: one standard Zstandard frame (`std` feature only).
//!
//! Decompression never allocates more than the caller's `max_out`, and never
//! believes a declared size that the input could not possibly expand to.

use alloc::vec::Vec;

use crate::error::{Result, WireError};

/// The codec a packet body is compressed with (packet flag bits 0–1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Compression {
    /// Not compressed.
    #[default]
    None = 0,
    /// LZ4 block with a 4-byte big-endian uncompressed length in front.
    Lz4 = 1,
    /// One Zstandard frame.
    Zstd = 2,
}

impl Compression {
    /// Whether this build can compress and decompress with the codec.
    pub const fn is_available(self) -> bool {
        match self {
            Self::None | Self::Lz4 => true,
            Self::Zstd => cfg!(feature = "std"),
        }
    }
}

/// Default size below which bodies are sent uncompressed: 512 bytes.
pub const DEFAULT_THRESHOLD: usize = 512;
/// Default Zstandard level (fast, as in network-protocol).
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;
/// LZ4 cannot expand input by more than this factor (255 bytes of output per
/// run-length byte, plus a small constant); a larger declared size is a lie.
const LZ4_MAX_RATIO: usize = 255;
/// Upper bound on the Zstandard window a peer may make us allocate: 16 MiB.
#[cfg(feature = "std")]
const ZSTD_WINDOW_LOG_MAX: u32 = 24;
/// Windows up to 2 MiB are always accepted: what streaming encoders at the
/// usual levels choose when they do not know the content size.
#[cfg(feature = "std")]
const ZSTD_WINDOW_LOG_MIN: u32 = 21;

/// When and how to compress outgoing bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompressionPolicy {
    /// The codec to use.
    pub codec: Compression,
    /// Bodies shorter than this are sent as they are.
    pub threshold: usize,
    /// Zstandard level (ignored for LZ4).
    pub zstd_level: i32,
}

impl Default for CompressionPolicy {
    fn default() -> Self {
        Self::new(Compression::None)
    }
}

impl CompressionPolicy {
    /// A policy using `codec` with the default threshold and level.
    pub const fn new(codec: Compression) -> Self {
        Self {
            codec,
            threshold: DEFAULT_THRESHOLD,
            zstd_level: DEFAULT_ZSTD_LEVEL,
        }
    }

    /// Compresses `body` into `dst` (cleared first) if it is at least
    /// `threshold` bytes and compression makes it smaller; returns the codec
    /// actually used. With `Compression::None` returned, `dst` is empty and
    /// the caller sends `body` itself.
    ///
    /// # Errors
    /// [`WireError::CodecUnavailable`] for Zstd without `std`.
    pub fn apply(&self, body: &[u8], dst: &mut Vec<u8>) -> Result<Compression> {
        dst.clear();
        if self.codec == Compression::None || body.len() < self.threshold {
            return Ok(Compression::None);
        }
        compress(self.codec, self.zstd_level, body, dst)?;
        if dst.len() >= body.len() {
            dst.clear();
            return Ok(Compression::None);
        }
        Ok(self.codec)
    }
}

/// Appends `input` compressed with `codec` to `dst`.
///
/// # Errors
/// [`WireError::CodecUnavailable`] if the codec is not compiled in;
/// [`WireError::Unencodable`] for LZ4 input over 4 GiB.
pub fn compress(
    codec: Compression,
    zstd_level: i32,
    input: &[u8],
    dst: &mut Vec<u8>,
) -> Result<()> {
    match codec {
        Compression::None => {
            dst.extend_from_slice(input);
            Ok(())
        }
        Compression::Lz4 => {
            let len = u32::try_from(input.len())
                .map_err(|_| WireError::Unencodable("LZ4 input over 4 GiB"))?;
            let start = dst.len();
            dst.extend_from_slice(&len.to_be_bytes());
            let block_start = dst.len();
            dst.resize(
                block_start + lz4_flex::block::get_maximum_output_size(input.len()),
                0,
            );
            let written = lz4_flex::block::compress_into(input, &mut dst[block_start..])
                .map_err(|_| WireError::Unencodable("LZ4 output buffer too small"));
            match written {
                Ok(n) => {
                    dst.truncate(block_start + n);
                    Ok(())
                }
                Err(e) => {
                    dst.truncate(start);
                    Err(e)
                }
            }
        }
        Compression::Zstd => zstd_compress(zstd_level, input, dst),
    }
}

/// Appends `input` decompressed with `codec` to `dst`, refusing to produce more
/// than `max_out` bytes.
///
/// # Errors
/// [`WireError::DecompressedTooLarge`], [`WireError::CorruptCompressed`],
/// [`WireError::CodecUnavailable`]. On error `dst` is left as it was.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_out: usize,
    dst: &mut Vec<u8>,
) -> Result<()> {
    let start = dst.len();
    let result = match codec {
        Compression::None => {
            if input.len() > max_out {
                Err(WireError::DecompressedTooLarge {
                    max: max_out as u64,
                })
            } else {
                dst.extend_from_slice(input);
                Ok(())
            }
        }
        Compression::Lz4 => lz4_decompress(input, max_out, dst),
        Compression::Zstd => zstd_decompress(input, max_out, dst),
    };
    if result.is_err() {
        dst.truncate(start);
    }
    result
}

fn lz4_decompress(input: &[u8], max_out: usize, dst: &mut Vec<u8>) -> Result<()> {
    let corrupt = WireError::CorruptCompressed {
        codec: Compression::Lz4,
    };
    let (len, block) = input.split_first_chunk::<4>().ok_or(corrupt.clone())?;
    let len = u32::from_be_bytes(*len) as usize;
    if len > max_out {
        return Err(WireError::DecompressedTooLarge {
            max: max_out as u64,
        });
    }
    // Bound the allocation by what this input can really expand to.
    if len > block.len().saturating_mul(LZ4_MAX_RATIO).saturating_add(16) {
        return Err(corrupt);
    }
    let start = dst.len();
    dst.resize(start + len, 0);
    match lz4_flex::block::decompress_into(block, &mut dst[start..]) {
        Ok(n) if n == len => Ok(()),
        _ => Err(corrupt),
    }
}

#[cfg(feature = "std")]
fn zstd_compress(level: i32, input: &[u8], dst: &mut Vec<u8>) -> Result<()> {
    use std::io::Write;
    let fail = |_| WireError::Unencodable("Zstd encoder failed");
    let mut enc = zstd::stream::write::Encoder::new(&mut *dst, level).map_err(fail)?;
    enc.include_contentsize(true).map_err(fail)?;
    enc.set_pledged_src_size(Some(input.len() as u64))
        .map_err(fail)?;
    enc.write_all(input).map_err(fail)?;
    enc.finish().map_err(fail)?;
    Ok(())
}

#[cfg(feature = "std")]
fn zstd_decompress(input: &[u8], max_out: usize, dst: &mut Vec<u8>) -> Result<()> {
    use std::io::Read;
    let corrupt = || WireError::CorruptCompressed {
        codec: Compression::Zstd,
    };
    let mut dec = zstd::stream::read::Decoder::with_buffer(input).map_err(|_| corrupt())?;
    // No window much larger than the output may need, so a frame header cannot
    // make the decoder allocate more than max(2 MiB, 2 × limit) (≤ 16 MiB).
    let needed = usize::BITS - max_out.max(1).saturating_sub(1).leading_zeros() + 1;
    dec.window_log_max(needed.clamp(ZSTD_WINDOW_LOG_MIN, ZSTD_WINDOW_LOG_MAX))
        .map_err(|_| corrupt())?;
    // Read at most one byte past the limit: enough to tell "too large" from
    // "exactly at the limit" without ever holding more.
    let cap = (max_out as u64).saturating_add(1);
    let start = dst.len();
    dec.take(cap).read_to_end(dst).map_err(|_| corrupt())?;
    if dst.len() - start > max_out {
        return Err(WireError::DecompressedTooLarge {
            max: max_out as u64,
        });
    }
    Ok(())
}

#[cfg(not(feature = "std"))]
fn zstd_compress(_level: i32, _input: &[u8], _dst: &mut Vec<u8>) -> Result<()> {
    Err(WireError::CodecUnavailable(Compression::Zstd))
}

#[cfg(not(feature = "std"))]
fn zstd_decompress(_input: &[u8], _max_out: usize, _dst: &mut Vec<u8>) -> Result<()> {
    Err(WireError::CodecUnavailable(Compression::Zstd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..2000 {
            v.extend_from_slice(b"{\"id\":");
            v.extend_from_slice(&[b'0' + (i % 10) as u8]);
            v.extend_from_slice(b",\"name\":\"netproto\",\"ok\":true}");
        }
        v
    }

    #[test]
    fn roundtrip_all_codecs() {
        let input = sample();
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut c = Vec::new();
            compress(codec, DEFAULT_ZSTD_LEVEL, &input, &mut c).unwrap();
            if codec != Compression::None {
                assert!(c.len() < input.len() / 3, "{codec:?} ratio");
            }
            let mut d = Vec::new();
            decompress(codec, &c, input.len(), &mut d).unwrap();
            assert_eq!(d, input);
            // One byte under the real size is refused.
            let mut d = Vec::new();
            assert_eq!(
                decompress(codec, &c, input.len() - 1, &mut d),
                Err(WireError::DecompressedTooLarge {
                    max: input.len() as u64 - 1
                })
            );
            assert!(d.is_empty());
        }
    }

    #[test]
    fn lz4_lying_length_refused_without_allocating() {
        // Claims 16 MiB from a 3-byte block.
        let bomb = [0x01, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00];
        let mut d = Vec::new();
        assert_eq!(
            decompress(Compression::Lz4, &bomb, 32 << 20, &mut d),
            Err(WireError::CorruptCompressed {
                codec: Compression::Lz4
            })
        );
        assert_eq!(d.capacity(), 0);
    }

    #[test]
    fn zstd_bomb_stops_at_limit() {
        let zeros = vec![0u8; 8 << 20];
        let mut c = Vec::new();
        compress(Compression::Zstd, 3, &zeros, &mut c).unwrap();
        assert!(c.len() < 4096);
        let mut d = Vec::new();
        assert_eq!(
            decompress(Compression::Zstd, &c, 1 << 20, &mut d),
            Err(WireError::DecompressedTooLarge { max: 1 << 20 })
        );
    }

    #[test]
    fn corrupt_inputs() {
        let mut d = Vec::new();
        assert!(decompress(Compression::Lz4, &[0, 0], 100, &mut d).is_err());
        assert!(decompress(Compression::Zstd, b"not zstd at all", 100, &mut d).is_err());
        assert!(d.is_empty());
    }

    #[test]
    fn policy_skips_small_and_incompressible() {
        let p = CompressionPolicy::new(Compression::Lz4);
        let mut dst = Vec::new();
        assert_eq!(p.apply(b"tiny", &mut dst), Ok(Compression::None));
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        assert_eq!(p.apply(&noise, &mut dst), Ok(Compression::None));
        assert_eq!(p.apply(&sample(), &mut dst), Ok(Compression::Lz4));
        assert!(!dst.is_empty());
    }
}
