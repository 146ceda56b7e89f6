//! Priorities over a running connection (issue #18): what the receiver
//! sees when an urgent message is sent while a bulk one is on its way.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use netproto_testkit::memory_pair;
use netproto_transport::{ConnectionConfig, Priority, RecvHalf, SendHalf};

const BULK: usize = 8 * 1024 * 1024;

async fn pair(
    tune: impl Fn(&mut ConnectionConfig),
) -> ((SendHalf, RecvHalf), (SendHalf, RecvHalf)) {
    let keys = netproto_testkit::Keys::new();
    let (mut c, mut s) = (keys.client_config(), keys.server_config());
    tune(&mut c);
    tune(&mut s);
    let (client, server) = memory_pair(c, s).await.unwrap();
    (client.split(), server.split())
}

/// Sends 8 MiB at bulk priority and, while it is on its way (the server
/// reads nothing yet, so the pipe is full), 64 bytes at `urgent`; returns
/// the stream ids in the order the server receives the whole messages.
async fn arrivals(tune: impl Fn(&mut ConnectionConfig), urgent: Priority) -> Vec<u64> {
    let ((send, _client_recv), (_server_send, mut recv)) = pair(tune).await;
    let bulk = Bytes::from(vec![7u8; BULK]);
    send.send_at(1, &bulk[..], Priority::BULK).await.unwrap();
    // The server reads nothing yet: the writer fills the pipe (64 KiB)
    // and most of the bulk message still waits in the connection.
    // Sent from a task of its own: without priorities it waits for room
    // behind the bulk message until the server reads.
    let urgent_send = send.clone();
    let urgent_task =
        tokio::spawn(async move { urgent_send.send_at(2, &b"urgent"[..], urgent).await });
    let mut order = Vec::new();
    for _ in 0..2 {
        let f = tokio::time::timeout(std::time::Duration::from_secs(20), recv.recv_frame())
            .await
            .expect("the messages arrive")
            .unwrap();
        let expected = if f.stream_id == 1 { BULK } else { 6 };
        assert_eq!(f.payload.len(), expected);
        order.push(f.stream_id);
    }
    urgent_task.await.unwrap().unwrap();
    order
}

#[tokio::test]
async fn an_urgent_message_overtakes_a_bulk_one_on_its_way() {
    assert_eq!(arrivals(|_| {}, Priority::URGENT).await, vec![2, 1]);
}

#[tokio::test]
async fn without_priorities_it_waits_for_the_bulk_one() {
    assert_eq!(
        arrivals(|c| c.priorities = false, Priority::URGENT).await,
        vec![1, 2]
    );
}
