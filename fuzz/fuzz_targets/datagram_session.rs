//! Drives a datagram-mode session receiver with arbitrary records (counter,
//! key phase, bytes), interleaved with genuine ones, and checks that every
//! genuine record opens exactly once and nothing panics.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use netproto_crypto::{CipherSuite, Mode, RekeyPolicy, Session};
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let mut policy = RekeyPolicy::default();
    policy.after_messages = 5;
    let a = Zeroizing::new([1u8; 32]);
    let b = Zeroizing::new([2u8; 32]);
    // The session rules are the same for both ciphers; the top bit of the
    // first byte picks one (the byte is still read as input below).
    let suite = if data.first().is_some_and(|b| b & 0x80 != 0) {
        CipherSuite::AesGcm
    } else {
        CipherSuite::ChaChaPoly
    };
    let mut tx = Session::from_keys(suite, a.clone(), b.clone(), Mode::Datagram, policy, Duration::ZERO);
    let mut rx = Session::from_keys(suite, b, a, Mode::Datagram, policy, Duration::ZERO);
    let mut genuine_opened = 0u32;
    let mut genuine_sent = 0u32;
    // Records: op u8 | counter u8 | len u8 | bytes
    let mut rest = data;
    while let [op, counter, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        rest = next;
        if op % 3 == 0 {
            // A genuine record.
            let Ok(r) = tx.sender.reserve(Duration::ZERO) else { return };
            let (c, phase) = (r.counter(), r.key_phase());
            let ad = c.to_be_bytes();
            let mut body = bytes.to_vec();
            let Ok(tag) = tx.sender.seal(r, &ad, &mut body) else { return };
            body.extend_from_slice(&tag);
            genuine_sent += 1;
            if rx.receiver.open(Duration::ZERO, c, phase, &ad, &mut body).is_ok() {
                genuine_opened += 1;
                // Opening the same record again must fail.
                let mut again = body.clone();
                assert!(rx.receiver.open(Duration::ZERO, c, phase, &ad, &mut again).is_err());
            }
        } else {
            let c = u64::from(*counter);
            let mut body = bytes.to_vec();
            let _ = rx.receiver.open(Duration::ZERO, c, op % 2 == 0, &c.to_be_bytes(), &mut body);
        }
    }
    // Forged records may burn counters the genuine ones later need (they fail
    // authentication and do not), so every genuine in-order record opens.
    assert_eq!(genuine_opened, genuine_sent);
});
