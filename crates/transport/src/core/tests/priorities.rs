//! Priorities, from the receiver's view: which message arrives whole first.

use super::*;
use crate::core::Priority;

fn data(stream_id: u64, len: usize) -> Frame {
    let payload: Vec<u8> = (0..len)
        .map(|i| u8::try_from(i % 251).unwrap_or(0))
        .collect();
    Frame::new(FrameKind::Data, stream_id, Bytes::from(payload))
}

/// The stream ids of the messages the server receives, in order, checking
/// each payload against what `data` made.
fn arrivals(p: &mut Pair) -> Vec<u64> {
    p.client_to_server();
    let mut ids = Vec::new();
    while let Some(f) = p.server_frame().unwrap() {
        assert_eq!(f.payload, data(f.stream_id, f.payload.len()).payload);
        ids.push(f.stream_id);
    }
    ids
}

/// A 1 MiB bulk message of which the first fill has left, then urgent
/// messages (64 B and 40 KiB, three pieces) and a small one of the default
/// priority (which waits behind the urgent one still waiting).
fn bulk_then_urgent(p: &mut Pair) {
    let now = p.now;
    p.client
        .send_frame_at(now, &data(1, 1 << 20), Priority::BULK)
        .unwrap();
    // The driver writes one fill; the rest of the bulk message waits.
    assert!(p.client.poll_transmit(now, &mut p.out).unwrap());
    let first_fill = p.out.len();
    if p.client.runs_priorities() {
        assert!(first_fill < 200 * 1024, "{first_fill} bytes left at once");
    }
    p.to_server.extend_from_slice(&p.out);
    p.client
        .send_frame_at(now, &data(3, 64), Priority::URGENT)
        .unwrap();
    p.client
        .send_frame_at(now, &data(5, 40 * 1024), Priority::URGENT)
        .unwrap();
    p.client
        .send_frame_at(now, &data(7, 64), Priority::NORMAL)
        .unwrap();
}

#[test]
fn urgent_messages_overtake_a_bulk_one_mid_flight() {
    let mut p = Pair::new(|_| {});
    assert!(p.client.runs_priorities() && p.server.runs_priorities());
    bulk_then_urgent(&mut p);
    assert_eq!(arrivals(&mut p), vec![3, 5, 7, 1]);
}

#[test]
fn with_priorities_off_messages_leave_in_the_order_they_were_queued() {
    let mut p = Pair::new(|c| c.priorities = false);
    assert!(!p.client.runs_priorities());
    bulk_then_urgent(&mut p);
    assert_eq!(arrivals(&mut p), vec![1, 3, 5, 7]);
}

#[test]
fn a_streams_messages_keep_their_order_whatever_their_priority() {
    let mut p = Pair::new(|_| {});
    let now = p.now;
    p.client
        .send_frame_at(now, &data(1, 100_000), Priority::BULK)
        .unwrap();
    p.client
        .send_frame_at(now, &data(1, 64), Priority::URGENT)
        .unwrap();
    p.client
        .send_frame_at(now, &data(2, 64), Priority::URGENT)
        .unwrap();
    let mut order = Vec::new();
    p.client_to_server();
    while let Some(f) = p.server_frame().unwrap() {
        order.push((f.stream_id, f.payload.len()));
    }
    // Stream 1's urgent message waits for its bulk one, and stream 2's
    // (queued after it in the urgent band) for that.
    assert_eq!(order, vec![(1, 100_000), (1, 64), (2, 64)]);
}

#[test]
fn bye_waits_for_the_messages_still_waiting_their_turn() {
    let mut p = Pair::new(|_| {});
    let now = p.now;
    p.client
        .send_frame_at(now, &data(1, 500_000), Priority::BULK)
        .unwrap();
    p.client.close(now).unwrap();
    assert!(p.client.send_data(now, 2, b"late").is_err());
    p.client_to_server();
    let f = p.server_frame().unwrap().unwrap();
    assert_eq!((f.stream_id, f.payload.len()), (1, 500_000));
    assert_eq!(
        p.server_frame().unwrap_err(),
        TransportError::ConnectionClosed { clean: true }
    );
}

#[test]
fn a_full_buffer_of_bulk_does_not_count_against_an_urgent_message() {
    let mut p = Pair::new(|_| {});
    let now = p.now;
    p.client
        .send_frame_at(now, &data(1, 4 << 20), Priority::BULK)
        .unwrap();
    assert!(p.client.queued_bytes() >= 4 << 20);
    assert!(p.client.queued_bytes_at(Priority::URGENT) < 1024);
    assert!(p.client.queued_bytes_at(Priority::BULK) >= 4 << 20);
}
