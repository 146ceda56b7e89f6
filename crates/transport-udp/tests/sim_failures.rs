//! Retransmission timing, deadlines, partitions and unreliable delivery on
//! the simulated link, in virtual time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    missing_docs
)]

use std::time::{Duration, Instant};

use netproto_crypto::Pattern;
use netproto_testkit::{LinkFaults, SimNet};
use netproto_transport_udp::{Delivery, Event, SessionId, UdpConfig, UdpError};
use netproto_wire::Frame;

const DELAY: Duration = Duration::from_millis(25);

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn net_with(cfg: UdpConfig) -> (SimNet, usize, SessionId, SessionId) {
    let mut net = SimNet::new(5, LinkFaults::with_delay(DELAY), cfg.clone());
    let c = net.add_client(cfg);
    let cfg = net.client_config(Pattern::XX);
    let cid = net.connect(c, cfg);
    assert!(net.run_until(Duration::from_secs(5), |n| n.events[0]
        .iter()
        .any(|(_, e)| matches!(e, Event::Connected(_)))
        && n.events[c]
            .iter()
            .any(|(_, e)| matches!(e, Event::Connected(_)))));
    let sid = net.events[0][0].0;
    net.take_events(0);
    net.take_events(c);
    (net, c, cid, sid)
}

/// Times at which datagrams went onto the link from now until `end`,
/// found by stepping one event at a time (during a partition only the
/// sender talks).
fn send_times(net: &mut SimNet, end: Instant) -> Vec<Duration> {
    let start = net.now;
    let mut times = Vec::new();
    let before = net.link.stats().sent;
    net.flush();
    if net.link.stats().sent > before {
        times.push(Duration::ZERO);
    }
    loop {
        let before = net.link.stats().sent;
        if !net.step(end) {
            break;
        }
        if net.link.stats().sent > before {
            times.push(net.now - start);
        }
    }
    times
}

#[test]
fn retransmissions_follow_the_rto_schedule_then_the_message_fails() {
    let mut cfg = UdpConfig::default();
    cfg.keep_alive = None;
    cfg.idle_timeout = Duration::from_mins(10);
    cfg.retransmit.deadline = Duration::from_secs(20);
    cfg.retransmit.max_attempts = 100;
    let (mut net, c, cid, _) = net_with(cfg);
    // The handshake measured one round trip of 2 × 25 ms: SRTT 50 ms,
    // RTTVAR 25 ms, so RTO = 50 + 4·25 + 5 (max ACK delay) = 155 ms.
    assert_eq!(net.nodes[c].session_stats(cid).unwrap().srtt, Some(ms(50)));
    let start = net.now;
    net.link.partition(start, start + Duration::from_mins(1));
    net.nodes[c]
        .send(net.now, cid, &Frame::data(1, &b"x"[..]), Delivery::Reliable)
        .unwrap();
    let times = send_times(&mut net, start + Duration::from_secs(25));
    // First send at 0, then after 155, 310, 620, 1240, 2480, 4960 ms and
    // then every 8 s (the cap) until the 20 s deadline.
    let expect: Vec<Duration> = [0, 155, 465, 1085, 2325, 4805, 9765, 17_765]
        .into_iter()
        .map(ms)
        .collect();
    assert_eq!(times, expect);
    let events = net.take_events(c);
    assert!(
        matches!(
            &events[..],
            [(
                _,
                Event::Failed {
                    message: 0,
                    error: UdpError::DeliveryTimeout { .. }
                }
            )]
        ),
        "{events:?}"
    );
}

#[test]
fn a_session_recovers_after_a_partition_that_failed_a_message() {
    let mut cfg = UdpConfig::default();
    cfg.retransmit.deadline = Duration::from_secs(5);
    cfg.idle_timeout = Duration::from_secs(30);
    let (mut net, c, cid, _) = net_with(cfg);
    let start = net.now;
    net.link.partition(start, start + Duration::from_secs(8));
    net.nodes[c]
        .send(
            net.now,
            cid,
            &Frame::data(1, &b"lost"[..]),
            Delivery::Reliable,
        )
        .unwrap();
    net.run_for(Duration::from_secs(9));
    let failed = net.take_events(c);
    assert!(
        failed.iter().any(|(_, e)| matches!(
            e,
            Event::Failed {
                error: UdpError::DeliveryTimeout { .. },
                ..
            }
        )),
        "{failed:?}"
    );
    assert!(!net.events[0]
        .iter()
        .any(|(_, e)| matches!(e, Event::Message { .. })));
    // Healed: the next message goes through on the same session.
    net.nodes[c]
        .send(
            net.now,
            cid,
            &Frame::data(2, &b"after"[..]),
            Delivery::Reliable,
        )
        .unwrap();
    assert!(net.run_until(Duration::from_secs(10), |n| n.events[c]
        .iter()
        .any(|(_, e)| matches!(e, Event::Delivered(1)))));
    let got: Vec<_> = net
        .take_events(0)
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Message { frame, .. } => Some(frame.payload),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![bytes::Bytes::from_static(b"after")]);
}

#[test]
fn a_silent_peer_times_out_the_session() {
    let mut cfg = UdpConfig::default();
    cfg.idle_timeout = Duration::from_secs(20);
    let (mut net, c, _, _) = net_with(cfg);
    let start = net.now;
    net.link.partition(start, start + Duration::from_hours(1));
    net.run_for(Duration::from_secs(21));
    for node in [0, c] {
        let events = net.take_events(node);
        assert!(
            matches!(&events[..], [(_, Event::Closed(UdpError::IdleTimeout(_)))]),
            "{events:?}"
        );
    }
    assert_eq!(net.nodes[0].session_count(), 0);
}

#[test]
fn keep_alives_hold_a_quiet_session_open() {
    let (mut net, c, _, _) = net_with(UdpConfig::default());
    net.run_for(Duration::from_mins(2));
    assert!(net.take_events(c).is_empty());
    assert_eq!(net.nodes[0].session_count(), 1);
}

#[test]
fn unreliable_messages_go_once_and_large_ones_are_refused() {
    let (mut net, c, cid, _) = net_with(UdpConfig::default());
    for i in 0..10u64 {
        net.nodes[c]
            .send(
                net.now,
                cid,
                &Frame::data(i, vec![i as u8; 3000]),
                Delivery::Unreliable,
            )
            .unwrap();
    }
    let err = net.nodes[c].send(
        net.now,
        cid,
        &Frame::data(99, vec![0; 20_000]),
        Delivery::Unreliable,
    );
    assert!(
        matches!(
            err,
            Err(UdpError::UnreliableTooLarge { pieces: 18, max: 8 })
        ),
        "{err:?}"
    );
    let before = net.link.stats().sent;
    net.run_for(Duration::from_secs(1));
    assert_eq!(
        net.link.stats().sent - before,
        30,
        "3 datagrams each, no ACKs, no retransmissions"
    );
    let got: Vec<u64> = net
        .take_events(0)
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Message {
                frame,
                reliable: false,
            } => Some(frame.stream_id),
            _ => None,
        })
        .collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

#[test]
fn closing_tells_the_peer_and_fails_pending_messages() {
    let (mut net, c, cid, _) = net_with(UdpConfig::default());
    let start = net.now;
    net.link.partition(start, start + ms(100));
    net.nodes[c]
        .send(net.now, cid, &Frame::data(1, &b"x"[..]), Delivery::Reliable)
        .unwrap();
    net.run_for(ms(200));
    net.nodes[c].close(net.now, cid, "done");
    net.run_for(ms(200));
    let events = net.take_events(c);
    assert!(
        matches!(
            &events[..],
            [
                (
                    _,
                    Event::Failed {
                        error: UdpError::Closed,
                        ..
                    }
                ),
                (_, Event::Closed(UdpError::Closed))
            ]
        ),
        "{events:?}"
    );
    let server: Vec<_> = net.take_events(0);
    assert!(
        server
            .iter()
            .any(|(_, e)| matches!(e, Event::Closed(UdpError::PeerClosed(Some(r))) if r == "done")),
        "{server:?}"
    );
    assert_eq!(net.nodes[0].session_count(), 0);
}
