//! Decodes arbitrary bytes as the plaintext of a datagram session record
//! (PIECE and ACK items). Nothing may panic; every valid item must
//! re-encode to the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netproto_transport_udp::items::{items, Item};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    for item in items(data) {
        let Ok(item) = item else { return };
        let mut out = Vec::new();
        match &item {
            Item::Piece(p) => p.encode(&mut out),
            Item::Ack(a) => a.encode(&mut out),
            _ => return,
        }
        assert!(rest.starts_with(&out), "{item:?} re-encodes differently");
        rest = &rest[out.len()..];
    }
});
