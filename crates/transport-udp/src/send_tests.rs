//! Unit tests of the sending side (`send.rs`).
use super::*;

#[test]
fn a_reliable_message_starts_only_within_the_receivers_id_window() {
    let now = Instant::now();
    let mut tx = SendState::new(&UdpConfig::default(), 1170);
    for _ in 0..DEDUP_WINDOW + 100 {
        tx.push(now, Bytes::from_static(b"abc"), true, false)
            .unwrap();
    }
    // Unreliable ids are counted on their own.
    assert_eq!(
        tx.push(now, Bytes::from_static(b"u"), false, false)
            .unwrap(),
        0
    );
    let mut started = Vec::new();
    let mut pt = Vec::new();
    loop {
        pt.clear();
        let pieces = tx.fill(&mut pt, 1170);
        if pt.is_empty() {
            break;
        }
        started.extend(pieces.into_iter().map(|(id, _)| id));
    }
    // Nothing is acknowledged: message 0 stays open, so ids from
    // 65,536 on must wait.
    assert_eq!(started.len() as u64, DEDUP_WINDOW);
    assert_eq!(started.last(), Some(&(DEDUP_WINDOW - 1)));
    // Message 0 acknowledged (record 0 carried it): the next id may go.
    tx.on_sent(now, 0, 100, vec![(0, 0)]);
    tx.on_ack(now, &[(0, 0)], Duration::ZERO);
    pt.clear();
    let pieces = tx.fill(&mut pt, 1170);
    assert_eq!(pieces.first(), Some(&(DEDUP_WINDOW, 0)));
}

#[test]
fn small_reliable_messages_do_not_overtake_one_that_waits_for_the_window() {
    let now = Instant::now();
    let mut tx = SendState::new(&UdpConfig::default(), 1170);
    // 3.6 MB open, then 1 MiB that does not fit, then small ones.
    for _ in 0..4 {
        tx.push(now, Bytes::from(vec![1u8; 900_000]), true, false)
            .unwrap();
    }
    let mut pt = Vec::new();
    while !tx.fresh.is_empty() {
        pt.clear();
        tx.fill(&mut pt, 1170);
        tx.bytes_in_flight = 0;
    }
    tx.push(now, Bytes::from(vec![2u8; 1 << 20]), true, false)
        .unwrap();
    for _ in 0..10 {
        tx.push(now, Bytes::from(vec![3u8; 100]), true, false)
            .unwrap();
    }
    tx.push(now, Bytes::from_static(b"u"), false, false)
        .unwrap();
    pt.clear();
    let pieces = tx.fill(&mut pt, 1170);
    assert!(
        pieces.is_empty(),
        "no reliable message jumps the queue: {pieces:?}"
    );
    assert!(!pt.is_empty(), "the unreliable one goes ahead");
}
