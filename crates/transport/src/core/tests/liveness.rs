//! Deadlines on a fixed clock: keep-alive, idle, packet, message, pauses.

use super::*;

#[test]
fn ping_is_answered_by_the_core_and_the_pong_is_timed() {
    let mut p = Pair::new(|_| {});
    let seq = p.client.ping(p.now).unwrap();
    assert!(!p.client.ping_settled(seq));
    p.client_to_server();
    // The server's application sees nothing: the core answers.
    assert!(p.server_frame().unwrap().is_none());
    p.advance(Duration::from_millis(3));
    p.server_to_client();
    let pong = p.client_frame().unwrap().unwrap();
    assert_eq!(pong.kind, FrameKind::Pong);
    assert!(p.client.ping_settled(seq));
    assert_eq!(p.client.rtt(), Some(Duration::from_millis(3)));
}

#[test]
fn oversized_ping_payload_is_not_answered() {
    let mut p = Pair::new(|_| {});
    let ping = Frame::new(FrameKind::Ping, 0, Bytes::from(vec![1u8; 65]));
    p.client.send_frame(p.now, &ping).unwrap();
    p.client_to_server();
    assert!(p.server_frame().unwrap().is_none());
    assert_eq!(p.server_to_client(), 0);
}

#[test]
fn keep_alive_pings_after_the_interval_of_silence() {
    let mut p = Pair::new(|c| {
        c.keep_alive = Some(Duration::from_secs(15));
        c.idle_timeout = Some(Duration::from_secs(20));
    });
    let start = p.now;
    assert_eq!(
        p.client.poll_timeout(),
        Some(start + Duration::from_secs(15))
    );
    p.advance(Duration::from_secs(15));
    p.client.handle_timeout(p.now).unwrap();
    assert!(p.client_to_server() > 0, "a PING was queued");
    // While the PING is out, the next deadline is the idle one.
    assert_eq!(
        p.client.poll_timeout(),
        Some(start + Duration::from_secs(20))
    );
    assert!(p.server_frame().unwrap().is_none());
    p.server_to_client();
    assert_eq!(p.client_frame().unwrap().unwrap().kind, FrameKind::Pong);
    assert_eq!(
        p.client.poll_timeout(),
        Some(p.now + Duration::from_secs(15))
    );
}

#[test]
fn silent_peer_fails_at_the_idle_deadline() {
    let mut p = Pair::new(|c| {
        c.keep_alive = Some(Duration::from_secs(15));
        c.idle_timeout = Some(Duration::from_secs(20));
    });
    p.advance(Duration::from_secs(15));
    p.client.handle_timeout(p.now).unwrap();
    p.client_to_server(); // the PING is never answered: the server is gone
    p.advance(Duration::from_secs(5));
    let err = p.client.handle_timeout(p.now).unwrap_err();
    assert_timeout(&err, TimeoutKind::ReadIdle);
    // Final: everything afterwards reports the same error.
    assert_eq!(p.client.send_data(p.now, 1, b"x").unwrap_err(), err);
    assert_eq!(p.client.poll_timeout(), None);
}

#[test]
fn every_record_counts_as_life_including_continuation_pieces() {
    let mut p = Pair::new(|c| {
        c.keep_alive = None;
        c.idle_timeout = Some(Duration::from_secs(2));
    });
    let big = vec![5u8; 2 * 65_000];
    p.client.send_data(p.now, 1, &big).unwrap();
    p.client_to_server();
    // Deliver the records one at a time, 1.5 s apart: the message takes
    // longer than the idle deadline, each piece keeps the connection alive.
    let mut delivered = BytesMut::new();
    let mut pending = std::mem::take(&mut p.to_server);
    let mut got = None;
    while got.is_none() {
        let take = pending.len().min(65_535 + 10);
        delivered.extend_from_slice(&pending.split_to(take));
        p.advance(Duration::from_millis(1500));
        p.server.handle_timeout(p.now).unwrap();
        got = next_frame(&mut p.server, p.now, &mut delivered).unwrap();
    }
    assert_eq!(got.unwrap().payload.len(), big.len());
}

#[test]
fn paused_application_is_not_idle() {
    let mut p = Pair::new(|c| {
        c.keep_alive = None;
        c.idle_timeout = Some(Duration::from_secs(2));
    });
    p.client.send_data(p.now, 1, b"work").unwrap();
    p.client_to_server();
    p.server_frame().unwrap().unwrap();
    p.server.pause(p.now);
    assert_eq!(p.server.poll_timeout(), None);
    p.advance(Duration::from_mins(1));
    p.server.handle_timeout(p.now).unwrap();
    p.server.resume(p.now);
    assert_eq!(
        p.server.poll_timeout(),
        Some(p.now + Duration::from_secs(2))
    );
}

#[test]
fn packet_deadline_fails_a_trickling_peer() {
    let mut p = Pair::new(|c| {
        c.packet_timeout = Duration::from_secs(10);
        c.idle_timeout = None;
        c.keep_alive = None;
    });
    p.client.send_data(p.now, 1, b"slow").unwrap();
    p.client_to_server();
    let mut all = std::mem::take(&mut p.to_server);
    // Half a record arrives, the rest never does.
    let mut partial = all.split_to(all.len() / 2);
    assert!(!p.server.handle_input(p.now, &mut partial).unwrap());
    assert!(p.server.mid_packet(partial.len()));
    assert_eq!(
        p.server.poll_timeout(),
        Some(p.now + Duration::from_secs(10))
    );
    p.advance(Duration::from_secs(10));
    let err = p.server.handle_timeout(p.now).unwrap_err();
    assert_timeout(&err, TimeoutKind::Packet);
}

#[test]
fn unfinished_message_fails_at_the_message_deadline() {
    let mut p = Pair::new(|c| {
        c.message_timeout = Duration::from_mins(2);
        c.keep_alive = None;
        c.idle_timeout = None;
    });
    p.client.send_data(p.now, 1, &vec![1u8; 100_000]).unwrap();
    p.client_to_server();
    let mut first = p.to_server.split_to(record_boundary(&p.to_server, 1));
    assert!(next_frame(&mut p.server, p.now, &mut first)
        .unwrap()
        .is_none());
    assert_eq!(
        p.server.poll_timeout(),
        Some(p.now + Duration::from_mins(2))
    );
    p.advance(Duration::from_mins(2));
    let err = p.server.handle_timeout(p.now).unwrap_err();
    assert_timeout(&err, TimeoutKind::Message);
}

#[test]
fn time_not_spent_reading_is_not_silence_and_pauses_never_reset_the_clock() {
    let mut p = Pair::new(|c| {
        c.keep_alive = None;
        c.idle_timeout = Some(Duration::from_secs(20));
    });
    let start = p.now;
    // Reading for 10 s, away for 30 s, reading again: 10 s of silence so far.
    p.advance(Duration::from_secs(10));
    p.server.pause(p.now);
    p.advance(Duration::from_secs(30));
    p.server.resume(p.now);
    assert_eq!(
        p.server.poll_timeout(),
        Some(start + Duration::from_secs(50))
    );
    // Many short pauses do not reset it either.
    for _ in 0..5 {
        p.server.pause(p.now);
        p.server.resume(p.now);
    }
    p.advance(Duration::from_secs(10));
    let err = p.server.handle_timeout(p.now).unwrap_err();
    assert_timeout(&err, TimeoutKind::ReadIdle);
}

#[test]
fn a_core_starts_paused_until_the_application_reads() {
    let mut p = Pair::unestablished(StreamSecurity::Plain, |c| {
        c.keep_alive = None;
        c.idle_timeout = Some(Duration::from_secs(20));
    });
    p.pump();
    p.pump();
    assert!(p.server.is_established());
    assert_eq!(p.server.poll_timeout(), None);
    p.advance(Duration::from_mins(1));
    p.server.resume(p.now);
    assert_eq!(
        p.server.poll_timeout(),
        Some(p.now + Duration::from_secs(20))
    );
}

#[test]
fn our_close_stops_the_keep_alive() {
    let mut p = Pair::new(|c| {
        c.keep_alive = Some(Duration::from_secs(15));
        c.idle_timeout = Some(Duration::from_secs(20));
    });
    p.client.close(p.now).unwrap();
    p.advance(Duration::from_secs(15));
    // No PING (it could not be sent): only the idle deadline remains.
    p.client.handle_timeout(p.now).unwrap();
    assert_eq!(
        p.client.poll_timeout(),
        Some(p.now + Duration::from_secs(5))
    );
}
