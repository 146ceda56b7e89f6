//! Priorities through the service (issue #18): an urgent call overtakes a
//! bulk upload on the same connection, and the GOAWAY split stays exact
//! when it does — a large request still arriving in pieces when the server
//! goes away was not taken, and the client sends it again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use netproto_service::{Client, ClientConfig};
use netproto_testkit::{serve_connections, Keys};
use netproto_transport::{AnyListener, Connection, Listener, Priority, SocketOptions};
use netproto_wire::Message;

const BULK: usize = 4 * 1024 * 1024;

/// A server that, on its first connection, takes the first request it
/// reads whole, answers it after a GOAWAY naming it, and closes (BYE); on
/// later connections it echoes every request.
async fn goes_away_after_the_first_whole_request() -> (netproto_transport::Endpoint, Keys) {
    let keys = Keys::new();
    let listener = AnyListener::bind(
        &"tcp://127.0.0.1:0".parse().unwrap(),
        SocketOptions::default(),
    )
    .await
    .unwrap();
    let endpoint = listener.local_endpoint().clone();
    let connections = Arc::new(AtomicUsize::new(0));
    serve_connections(listener, keys.server_config(), move |conn: Connection| {
        let first = connections.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            let (send, mut recv) = conn.split();
            if first {
                let f = recv.recv_frame().await.unwrap();
                assert!(f.payload.len() < 1024, "the urgent call arrives first");
                send.goaway(f.stream_id, "going away").unwrap();
                send.send(f.stream_id, &f.payload[..]).await.unwrap();
                let _ = send.close().await;
                return;
            }
            while let Ok(f) = recv.recv_frame().await {
                if send.send(f.stream_id, &f.payload[..]).await.is_err() {
                    return;
                }
            }
        }
    });
    (endpoint, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overtaken_request_is_sent_again_after_goaway() {
    let (endpoint, keys) = goes_away_after_the_first_whole_request().await;
    let mut cfg = ClientConfig::new(keys.client_config());
    cfg.reconnect_delay = Duration::from_millis(10);
    let client = Client::connect(&endpoint, cfg).await.unwrap();
    let bulk = Message::Echo("b".repeat(BULK));
    let ping = Message::Echo("urgent".into());
    // `join!` polls the upload first: it is queued (with the lower id)
    // before the urgent call, which overtakes it on the wire.
    let (upload, urgent) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(
            client.call_at(bulk.clone(), Priority::BULK),
            client.call_at(ping.clone(), Priority::URGENT)
        )
    })
    .await
    .expect("both calls end");
    assert_eq!(urgent.unwrap(), ping);
    // The server named the urgent call's id in its GOAWAY, above the
    // upload's, but never read the upload whole: it went again, on a new
    // connection, and was answered there.
    let answered = upload.unwrap();
    assert_eq!(answered, bulk);
}
