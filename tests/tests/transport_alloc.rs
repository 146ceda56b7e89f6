//! The hot path allocates nothing per message in steady state: 10,000 echo
//! round trips of a 64-byte frame over TCP, counted by a global allocator.
// Audited unsafe: the counting allocator only forwards to the system
// allocator and bumps a counter.
#![allow(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::cast_precision_loss
)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use netproto_wire::Frame;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments, so
// the `GlobalAlloc` contract is exactly the system allocator's.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[tokio::test(flavor = "current_thread")]
async fn steady_state_round_trips_do_not_allocate() {
    const N: u64 = 10_000;
    let server = common::echo_server("tcp://127.0.0.1:0", |_| {}).await;
    let conn = common::client(&server.endpoint, server.server_key)
        .await
        .unwrap();
    let (send, mut recv) = conn.split();
    let payload = Bytes::from_static(&[0x42; 64]);
    let round_trip = |i: u64| {
        let send = &send;
        let payload = payload.clone();
        async move { send.send_frame(Frame::data(i, payload)).await.unwrap() }
    };
    for i in 0..2_000 {
        round_trip(i).await;
        assert_eq!(recv.recv_frame().await.unwrap().stream_id, i);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..N {
        round_trip(i).await;
        let f = recv.recv_frame().await.unwrap();
        assert_eq!(f.payload.len(), 64);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let per_message = allocations as f64 / N as f64;
    println!("{allocations} allocations in {N} echo round trips ({per_message:.4} per round trip, both ends)");
    assert!(
        per_message < 0.05,
        "{allocations} allocations for {N} round trips"
    );
}
