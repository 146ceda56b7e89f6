//! A client that sends 100,000 requests and never reads the answers cannot
//! grow the server's memory. Alone in its own test binary so the process RSS
//! it measures is not shared with other tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::service::{client, start, stop};

use std::sync::Arc;
use std::time::Duration;

use netproto_crypto::Pinned;
use netproto_wire::{Frame, Message};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_never_reads_cannot_grow_server_memory() {
    let r = start(|cfg| cfg.connection.write_timeout = Duration::from_mins(1)).await;
    let before = rss_kib();
    // A raw connection that sends requests and never reads the answers.
    let mut cfg = common::config(common::key(), Arc::new(Pinned(r.server_key)));
    cfg.write_timeout = Duration::from_mins(1);
    let conn = netproto_transport::connect(r.handle.endpoint(), cfg)
        .await
        .unwrap();
    let (send, _never_read) = conn.split();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    let abuser = tokio::spawn(async move {
        let payload = bytes::Bytes::from(Message::Echo("x".repeat(1000)).to_vec().unwrap());
        for i in 1..=100_000u64 {
            send.send_frame(Frame::data(i, payload.clone()))
                .await
                .unwrap();
            counter.store(i, std::sync::atomic::Ordering::Relaxed);
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stuck_at = sent.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The pipeline is full and stays full: the server stopped reading.
    assert!(stuck_at < 100_000, "all requests went through");
    assert_eq!(
        sent.load(std::sync::atomic::Ordering::Relaxed),
        stuck_at,
        "still accepting after the pipeline filled"
    );
    let grown = rss_kib().saturating_sub(before);
    println!("abusive client stuck after {stuck_at} requests; process RSS grew by {grown} KiB");
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
    // Everyone else is still served.
    let good = client(&r).await;
    for i in 0..50 {
        assert_eq!(
            good.call(Message::Echo(i.to_string())).await.unwrap(),
            Message::Echo(i.to_string())
        );
    }
    abuser.abort();
    stop(r, Duration::from_millis(500)).await;
}
