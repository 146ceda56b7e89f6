//! Feeds arbitrary bytes, in chunk sizes taken from the input, to the stream
//! decoder, then decompresses and frames every packet it yields.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use netproto_wire::{decompress, frames, FrameLimits, PacketDecoder};

const MAX_BODY: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else { return };
    let chunk = usize::from(chunk.max(1));
    let mut dec = PacketDecoder::new(MAX_BODY);
    let mut buf = BytesMut::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(p)) => {
                    assert!(p.body.len() <= MAX_BODY as usize);
                    let mut plain = Vec::new();
                    if decompress(p.flags.compression(), &p.body, MAX_BODY as usize, &mut plain).is_ok() {
                        assert!(plain.len() <= MAX_BODY as usize);
                        for f in frames(&plain, &FrameLimits::default()) {
                            if f.is_err() {
                                break;
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
