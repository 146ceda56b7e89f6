//! The service over a carrier it knows nothing about (the test kit's
//! in-memory one): calls, the pool's transport-level health check against a
//! server with no "PING" route, and GOAWAY under load.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::Duration;

use common::memory::{client_cfg, endpoint, serve, slow_calls, stop};
use netproto_service::{Client, ConnectionPool, Dispatcher, PoolConfig, ServiceError};
use netproto_testkit::{memory_carrier, Keys};
use netproto_wire::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_run_over_a_carrier_the_service_does_not_know() {
    let keys = Keys::new();
    let (listener, dialer) = memory_carrier();
    let server = serve(listener, &keys, common::service::dispatcher(), |_| {});
    let client = Client::connect(&endpoint(), client_cfg(&keys, &dialer))
        .await
        .unwrap();
    assert_eq!(client.call(Message::Ping).await.unwrap(), Message::Pong);
    let big = Message::Echo("x".repeat(3 * 1024 * 1024));
    assert_eq!(client.call(big.clone()).await.unwrap(), big);
    let rtt = client.ping(Duration::from_secs(5)).await.unwrap();
    assert!(rtt < Duration::from_secs(5));
    client.close().await.unwrap();
    stop(server).await;
}

/// The pool checks health with the transport's PING, which the server's
/// connection core answers whatever the application registered: a server
/// without a "PING" route keeps its pooled connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_health_check_needs_no_ping_route() {
    let keys = Keys::new();
    let (listener, dialer) = memory_carrier();
    let mut only_echo = Dispatcher::new();
    only_echo.register("ECHO", Ok);
    let server = serve(listener, &keys, only_echo, |_| {});
    let mut pool_cfg = PoolConfig::default();
    pool_cfg.health_check_interval = Duration::from_millis(50);
    // One slot: a later `acquire` waits for the checked connection to come
    // back rather than opening another.
    pool_cfg.max_size = 1;
    let pool = ConnectionPool::new(endpoint(), client_cfg(&keys, &dialer), pool_cfg);
    {
        let c = pool.acquire().await.unwrap();
        let m = Message::Echo("pooled".into());
        assert_eq!(c.call(m.clone()).await.unwrap(), m);
        // Really no PING route: the application-level ping is refused.
        assert!(matches!(
            c.call(Message::Ping).await,
            Err(ServiceError::Remote { .. })
        ));
    }
    // Several health checks pass over the idle connection.
    tokio::time::sleep(Duration::from_millis(400)).await;
    // (`idle` may read 0 while a check has the connection out.)
    let stats = pool.stats();
    assert_eq!(stats.evicted, 0, "{stats:?}");
    assert_eq!(stats.connects, 1, "{stats:?}");
    assert_eq!(stats.open, 1, "{stats:?}");
    let c = pool.acquire().await.unwrap();
    assert_eq!(
        c.call(Message::Echo("again".into())).await.unwrap(),
        Message::Echo("again".into())
    );
    assert_eq!(pool.stats().connects, 1);
    drop(c);
    stop(server).await;
}

/// Forty slow calls on one connection to a server that reads four at a
/// time, shut down meanwhile: the four it read complete, the rest are
/// refused by GOAWAY with a typed error, promptly. Nothing hangs until the
/// response timeout, nothing is lost silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_under_load_fails_unserved_calls_with_a_typed_error() {
    let keys = Keys::new();
    let (listener, dialer) = memory_carrier();
    let server = serve(listener, &keys, common::service::dispatcher(), |cfg| {
        cfg.backpressure_limit = 4;
    });
    let mut cfg = client_cfg(&keys, &dialer);
    cfg.auto_reconnect = false;
    cfg.response_timeout = Duration::from_secs(20);
    let client = Client::connect(&endpoint(), cfg).await.unwrap();
    let calls = slow_calls(&client, 40);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = tokio::time::Instant::now();
    server.0.shutdown(Some(Duration::from_secs(5)));
    let (mut served, mut refused) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            Ok(Message::Custom { .. }) => served += 1,
            Err(ServiceError::GoingAway) => refused += 1,
            other => panic!("neither served nor refused: {other:?}"),
        }
    }
    assert!(served >= 4, "served {served}");
    assert_eq!(served + refused, 40);
    assert!(refused > 0, "nothing was refused");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // New calls are refused too (no reconnect): the connection is going away.
    assert!(client.call(Message::Ping).await.is_err());
    stop(server).await;
}

/// The same load with auto-reconnect and a second server taking over the
/// address: calls the first server did not serve are sent again on a new
/// connection, and every one of the forty completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_under_load_moves_unserved_calls_to_a_new_connection() {
    let keys = Keys::new();
    let (listener, dialer) = memory_carrier();
    let first = serve(listener, &keys, common::service::dispatcher(), |cfg| {
        cfg.backpressure_limit = 4;
    });
    let client = Client::connect(&endpoint(), client_cfg(&keys, &dialer))
        .await
        .unwrap();
    let calls = slow_calls(&client, 40);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = serve(
        dialer.listen(endpoint()).await,
        &keys,
        common::service::dispatcher(),
        |_| {},
    );
    first.0.shutdown(Some(Duration::from_secs(5)));
    for call in calls {
        let reply = call.await.unwrap();
        assert!(matches!(reply, Ok(Message::Custom { .. })), "{reply:?}");
    }
    assert!(client.stats().reconnects >= 1);
    assert_eq!(client.call(Message::Ping).await.unwrap(), Message::Pong);
    stop(first).await;
    stop(second).await;
}
