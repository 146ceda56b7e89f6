//! Sessions: stream and datagram records, replay window, rekeying, expiry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
#![allow(clippy::cast_possible_truncation)]

use std::collections::BTreeSet;
use std::time::Duration;

use netproto_crypto::{
    CipherSuite, CryptoError, Mode, RekeyPolicy, ReplayWindow, Session, WINDOW_SIZE,
};
use proptest::prelude::*;
use zeroize::Zeroizing;

/// The session rules (counters, windows, rekeying, expiry) do not depend on
/// the cipher: these tests run on ChaChaPoly, and on AES-GCM when
/// `NP_TEST_CIPHER=aesgcm` (the snow interop test covers AES-GCM records).
fn suite() -> CipherSuite {
    std::env::var("NP_TEST_CIPHER")
        .ok()
        .and_then(|n| CipherSuite::from_config_name(&n))
        .unwrap_or_default()
}

fn pair(mode: Mode, policy: RekeyPolicy) -> (Session, Session) {
    let a = Zeroizing::new([1u8; 32]);
    let b = Zeroizing::new([2u8; 32]);
    (
        Session::from_keys(suite(), a.clone(), b.clone(), mode, policy, Duration::ZERO),
        Session::from_keys(suite(), b, a, mode, policy, Duration::ZERO),
    )
}

/// A sealed record with its header (counter + phase, as a transport would
/// put them) used as associated data.
struct Record {
    counter: u64,
    phase: bool,
    header: [u8; 9],
    body: Vec<u8>,
}

fn seal(s: &mut Session, now: Duration, msg: &[u8]) -> Record {
    let r = s.sender.reserve(now).unwrap();
    let (counter, phase) = (r.counter(), r.key_phase());
    let mut header = [0u8; 9];
    header[..8].copy_from_slice(&counter.to_be_bytes());
    header[8] = u8::from(phase);
    let mut body = msg.to_vec();
    let tag = s.sender.seal(r, &header, &mut body).unwrap();
    body.extend_from_slice(&tag);
    Record {
        counter,
        phase,
        header,
        body,
    }
}

fn open(s: &mut Session, now: Duration, rec: &Record) -> Result<Vec<u8>, CryptoError> {
    let mut body = rec.body.clone();
    let len = s
        .receiver
        .open(now, rec.counter, rec.phase, &rec.header, &mut body)?;
    body.truncate(len);
    Ok(body)
}

#[test]
fn stream_in_order_and_failure_is_final() {
    let (mut a, mut b) = pair(Mode::Stream, RekeyPolicy::default());
    let t = Duration::ZERO;
    let r1 = seal(&mut a, t, b"one");
    let r2 = seal(&mut a, t, b"two");
    // Out of order on a stream: fatal.
    assert_eq!(open(&mut b, t, &r2), Err(CryptoError::Decrypt));
    assert_eq!(open(&mut b, t, &r1), Err(CryptoError::SessionFailed));
    let (mut a, mut b) = pair(Mode::Stream, RekeyPolicy::default());
    let r1 = seal(&mut a, t, b"one");
    assert_eq!(open(&mut b, t, &r1).unwrap(), b"one");
    // Replaying a stream record: fatal too.
    assert_eq!(open(&mut b, t, &r1), Err(CryptoError::Decrypt));
}

#[test]
fn record_size_limit() {
    let (mut a, _) = pair(Mode::Stream, RekeyPolicy::default());
    let r = a.sender.reserve(Duration::ZERO).unwrap();
    let mut big = vec![0u8; 65520];
    assert_eq!(
        a.sender.seal(r, &[], &mut big),
        Err(CryptoError::TooLong { len: 65520 })
    );
}

#[test]
fn stream_rekey_by_message_budget() {
    let mut policy = RekeyPolicy::default();
    policy.after_messages = 3;
    let (mut a, mut b) = pair(Mode::Stream, policy);
    let t = Duration::ZERO;
    let mut phases = Vec::new();
    for i in 0..10u8 {
        let r = seal(&mut a, t, &[i]);
        phases.push(r.phase);
        assert_eq!(open(&mut b, t, &r).unwrap(), [i]);
    }
    assert_eq!(
        phases,
        [false, false, false, true, true, true, false, false, false, true]
    );
}

#[test]
fn time_rekey_and_expiry() {
    let (mut a, mut b) = pair(Mode::Stream, RekeyPolicy::default());
    let r = seal(&mut a, Duration::from_secs(1), b"early");
    open(&mut b, Duration::from_secs(1), &r).unwrap();
    // After 120 s the sender rekeys on its own; the receiver follows.
    let r = seal(&mut a, Duration::from_secs(121), b"later");
    assert!(r.phase);
    assert_eq!(
        open(&mut b, Duration::from_secs(121), &r).unwrap(),
        b"later"
    );
    // A sender that ignores the budget (here: a peer whose key we simulate
    // as 200 s old) is refused.
    let (mut a, mut b) = pair(Mode::Datagram, RekeyPolicy::default());
    let r = seal(&mut a, Duration::ZERO, b"stale");
    assert_eq!(
        open(&mut b, Duration::from_secs(200), &r),
        Err(CryptoError::KeyExpired)
    );
}

#[test]
fn datagram_reorder_replay_and_late_previous_key() {
    let mut policy = RekeyPolicy::default();
    policy.after_messages = 4;
    let (mut a, mut b) = pair(Mode::Datagram, policy);
    let t = Duration::ZERO;
    let recs: Vec<Record> = (0..12u8).map(|i| seal(&mut a, t, &[i])).collect();
    // Deliver keys 1 and 2 generations first, then the late ones.
    let order = [0, 1, 4, 5, 2, 8, 6, 3, 9, 7, 10, 11];
    for &i in &order {
        let got = open(&mut b, t, &recs[i]);
        // Records of generation 0 after generation 2 arrived are two keys
        // back: only one previous key is kept.
        if i == 3 && order.iter().position(|&x| x == 8) < order.iter().position(|&x| x == 3) {
            assert_eq!(got, Err(CryptoError::Decrypt), "record {i}");
        } else {
            assert_eq!(got.unwrap(), [i as u8], "record {i}");
        }
    }
    // Replays are refused, before any decryption work.
    assert_eq!(open(&mut b, t, &recs[5]), Err(CryptoError::Replayed(5)));
}

#[test]
fn datagram_tampering_does_not_advance_window() {
    let (mut a, mut b) = pair(Mode::Datagram, RekeyPolicy::default());
    let t = Duration::ZERO;
    let r = seal(&mut a, t, b"payload");
    let mut forged = Record {
        body: r.body.clone(),
        ..r
    };
    forged.body[0] ^= 1;
    assert_eq!(open(&mut b, t, &forged), Err(CryptoError::Decrypt));
    // The genuine record with the same counter still opens.
    forged.body[0] ^= 1;
    assert_eq!(open(&mut b, t, &forged).unwrap(), b"payload");
    // A forged phase flip costs a failed attempt and changes nothing.
    let r2 = seal(&mut a, t, b"next");
    let mut flipped = Record {
        phase: !r2.phase,
        body: r2.body.clone(),
        ..r2
    };
    assert_eq!(open(&mut b, t, &flipped), Err(CryptoError::Decrypt));
    flipped.phase = !flipped.phase;
    assert_eq!(
        open(&mut b, t, &flipped).unwrap(),
        b"next",
        "the failed attempt changed nothing"
    );
}

proptest! {
    /// The window against a plain set-based model.
    #[test]
    fn replay_window_matches_model(ops in prop::collection::vec(prop_oneof![0u64..200, 0u64..5000, any::<u64>()], 1..400)) {
        let mut w = ReplayWindow::new();
        let mut seen = BTreeSet::new();
        let mut top = 0u64;
        for c in ops {
            let model_ok = !seen.contains(&c) && (c > top || top - c < WINDOW_SIZE);
            prop_assert_eq!(w.check(c), model_ok, "counter {}", c);
            if model_ok {
                w.update(c);
                seen.insert(c);
                top = top.max(c);
            }
        }
    }

    /// Any bit flip in a stream record is detected.
    #[test]
    fn stream_tamper_detected(msg in prop::collection::vec(any::<u8>(), 0..300), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (mut a, mut b) = pair(Mode::Stream, RekeyPolicy::default());
        let mut r = seal(&mut a, Duration::ZERO, &msg);
        let at = pos.index(r.body.len());
        r.body[at] ^= 1 << bit;
        prop_assert_eq!(open(&mut b, Duration::ZERO, &r), Err(CryptoError::Decrypt));
    }

    /// Datagrams delivered in any order, with duplicates, open exactly once.
    #[test]
    fn datagrams_any_order_once(n in 1usize..60, swaps in prop::collection::vec((0usize..60, 0usize..60), 0..80), dups in prop::collection::vec(0usize..60, 0..20)) {
        let (mut a, mut b) = pair(Mode::Datagram, RekeyPolicy::default());
        let recs: Vec<Record> = (0..n).map(|i| seal(&mut a, Duration::ZERO, &i.to_be_bytes())).collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.extend(dups.iter().map(|d| d % n));
        for (x, y) in swaps {
            let len = order.len();
            order.swap(x % len, y % len);
        }
        let mut opened = BTreeSet::new();
        for i in order {
            match open(&mut b, Duration::ZERO, &recs[i]) {
                Ok(pt) => {
                    prop_assert_eq!(pt, i.to_be_bytes().to_vec());
                    prop_assert!(opened.insert(i), "record {} opened twice", i);
                }
                Err(e) => prop_assert_eq!(e, CryptoError::Replayed(i as u64)),
            }
        }
        prop_assert_eq!(opened.len(), n);
    }
}
