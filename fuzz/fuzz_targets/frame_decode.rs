//! Decodes arbitrary bytes as a batch of frames and as one message; whatever
//! decodes must re-encode to exactly the bytes it came from.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use netproto_wire::{Frame, FrameLimits, FrameRef, Message};

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits::default();
    let mut rest = data;
    let mut owned = Bytes::copy_from_slice(data);
    while let Ok((f, used)) = FrameRef::decode(rest, &limits) {
        let taken = Frame::take(&mut owned, &limits).expect("take agrees with decode");
        assert_eq!(taken.as_ref(), f);
        let mut again = Vec::with_capacity(used);
        f.encode(&mut again);
        assert_eq!(&again[..], &rest[..used], "frame encoding is not canonical");
        assert_eq!(f.encoded_len(), used);
        for (k, v) in f.headers {
            assert!(!k.is_empty() && k.len() <= 255 && v.len() <= 255);
        }
        rest = &rest[used..];
        assert_eq!(&owned[..], rest);
    }
    if let Ok(m) = Message::decode(data) {
        let _ = m.opcode();
    }
});
