//! Drives the reassembler with arbitrary datagrams and clock steps, checking
//! that its memory and count limits hold after every step.
#![no_main]

use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use netproto_wire::{DatagramRef, Reassembled, Reassembler, ReassemblyLimits};

fuzz_target!(|data: &[u8]| {
    let mut limits = ReassemblyLimits::default();
    limits.max_fragments = 64;
    limits.max_message_len = 16 * 1024;
    limits.max_pending = 8;
    limits.max_buffered = 32 * 1024;
    limits.timeout = Duration::from_millis(500);
    let mut r = Reassembler::new(limits);
    let mut now = Duration::ZERO;
    // Records: step_ms u8 | len u8 | datagram bytes.
    let mut rest = data;
    while let [step, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (datagram, next) = tail.split_at(n);
        rest = next;
        now += Duration::from_millis(u64::from(*step) * 4);
        let Ok(d) = DatagramRef::parse(datagram) else { continue };
        let Some(info) = d.header.fragment else { continue };
        if let Ok(Reassembled::Complete(m)) =
            r.push(now, d.header.session, info, Bytes::copy_from_slice(d.body))
        {
            assert!(m.len() <= limits.max_message_len);
        }
        assert!(r.buffered() <= limits.max_buffered);
        assert!(r.pending() <= limits.max_pending);
    }
    r.expire(now + limits.timeout);
    assert_eq!(r.pending(), 0);
    assert_eq!(r.buffered(), 0);
});
