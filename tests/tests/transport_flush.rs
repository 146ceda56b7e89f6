//! Writes from the sending task (`Flush::Now`, `SendHalf::write_now`, issue
//! #23): what a sender writes itself and what the writer task writes never
//! overtake each other, a write the pipe cannot take at once is finished by
//! the writer, and a receiver can tell whether more input is already
//! buffered (what the server uses to decide).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    missing_docs
)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use netproto_testkit::memory_pair;
use netproto_transport::{Flush, RecvHalf, SendHalf};

const SENDERS: u64 = 3;
const PER_SENDER: u64 = 120;

/// Message `seq` of sender `who`: small, 70 kB (two records) or 300 kB
/// (more than the in-memory pipe holds), with content that names it.
fn message(who: u64, seq: u64) -> Bytes {
    let len = match seq % 3 {
        0 => 10,
        1 => 70_000,
        _ => 300_000,
    };
    let tag = (who * 1_000 + seq).to_le_bytes();
    Bytes::from(
        (0..len)
            .map(|i| tag[i % 8] ^ (i as u8))
            .collect::<Vec<u8>>(),
    )
}

/// A client and a server connection over an in-memory pipe, split.
async fn pair() -> ((SendHalf, RecvHalf), (SendHalf, RecvHalf)) {
    let keys = netproto_testkit::Keys::new();
    let (client, server) = memory_pair(keys.client_config(), keys.server_config())
        .await
        .unwrap();
    (client.split(), server.split())
}

async fn send_all(send: SendHalf, who: u64) {
    for seq in 0..PER_SENDER {
        let id = who * 1_000 + seq + 1;
        let flush = if seq % 2 == 0 {
            Flush::Now
        } else {
            Flush::Batch
        };
        send.send_with(id, &message(who, seq), flush).await.unwrap();
        if seq % 7 == 0 {
            send.write_now();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_and_batched_writes_keep_each_senders_order() {
    let ((send, _client_recv), (_server_send, mut recv)) = pair().await;
    let senders: Vec<_> = (0..SENDERS)
        .map(|who| tokio::spawn(send_all(send.clone(), who)))
        .collect();
    // Nobody reads for a while: the pipe fills, direct writes stop half-way
    // and the writer must finish them before anything else goes out.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut next = [0u64; SENDERS as usize];
    for _ in 0..SENDERS * PER_SENDER {
        let f = tokio::time::timeout(Duration::from_secs(30), recv.recv_frame())
            .await
            .expect("every message arrives")
            .unwrap();
        let who = (f.stream_id - 1) / 1_000;
        let seq = (f.stream_id - 1) % 1_000;
        assert_eq!(seq, next[who as usize], "sender {who}'s order");
        next[who as usize] += 1;
        assert!(f.payload == message(who, seq), "message {who}/{seq} intact");
    }
    for s in senders {
        s.await.unwrap();
    }
    assert_eq!(next, [PER_SENDER; SENDERS as usize]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_exchanges_written_by_their_senders() {
    let ((client_send, mut client_recv), (server_send, mut server_recv)) = pair().await;
    let echo = tokio::spawn(async move {
        while let Ok(f) = server_recv.recv_frame().await {
            let flush = if server_recv.has_buffered_input() {
                Flush::Batch
            } else {
                Flush::Now
            };
            server_send
                .send_with(f.stream_id, &f.payload[..], flush)
                .await
                .unwrap();
        }
    });
    for i in 1..=2_000u64 {
        let body = i.to_be_bytes();
        client_send
            .send_with(i, &body[..], Flush::Now)
            .await
            .unwrap();
        let f = tokio::time::timeout(Duration::from_secs(10), client_recv.recv_frame())
            .await
            .expect("answered")
            .unwrap();
        assert_eq!((f.stream_id, &f.payload[..]), (i, &body[..]));
    }
    client_send.close().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), echo)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_receiver_knows_when_more_input_is_buffered() {
    let ((send, _client_recv), (_server_send, mut recv)) = pair().await;
    // Two frames queued together leave in one record, written at once.
    send.send(1, &b"first"[..]).await.unwrap();
    send.send(2, &b"second"[..]).await.unwrap();
    send.write_now();
    assert_eq!(recv.recv_frame().await.unwrap().stream_id, 1);
    assert!(recv.has_buffered_input(), "the second frame is in hand");
    assert_eq!(recv.recv_frame().await.unwrap().stream_id, 2);
    assert!(!recv.has_buffered_input(), "nothing more has arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_writes_over_tcp() {
    let mut server = common::echo_server("tcp://127.0.0.1:0", |_| {}).await;
    let conn = common::client(&server.endpoint, server.server_key)
        .await
        .unwrap();
    let (send, mut recv) = conn.split();
    for i in 1..=500u64 {
        let body = vec![(i % 251) as u8; (i as usize * 997) % 200_000];
        send.send_with(i, &body[..], Flush::Now).await.unwrap();
        let f = recv.recv_frame().await.unwrap();
        assert_eq!(f.stream_id, i);
        assert!(f.payload[..] == body[..], "echo {i} intact");
    }
    send.close().await.unwrap();
    assert_eq!(common::next_outcome(&mut server).await, Ok(500));
}
