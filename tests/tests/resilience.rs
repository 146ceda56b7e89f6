//! Client resilience over real sockets: reconnect after a server restart,
//! the pool's size bound under a burst, idle and lifetime eviction, and the
//! circuit breaker.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[macro_use]
mod common;

use common::service::{start_with_key, Carrier, Running};

use std::time::Duration;

use netproto_crypto::Keypair;
use netproto_service::{CircuitState, Client, ConnectionPool, PoolConfig, ServiceError};
use netproto_wire::Message;

async fn start_at(carrier: Carrier, key: &Keypair, address: &str) -> Running {
    start_with_key(carrier, &address.parse().unwrap(), key, |_| {}).await
}

async fn kill(r: Running) {
    r.handle.shutdown(Some(Duration::ZERO));
    tokio::time::timeout(Duration::from_secs(5), r.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

fn fast_reconnect(carrier: Carrier, key: &Keypair) -> netproto_service::ClientConfig {
    let mut cfg = carrier.client_config(*key.public());
    cfg.reconnect_delay = Duration::from_millis(50);
    cfg.max_reconnect_attempts = 20;
    cfg.response_timeout = Duration::from_secs(5);
    cfg
}

/// Every connection of `pool` closes within the 150 ms idle/lifetime limit
/// of these tests plus one check interval (plus scheduling slack).
async fn assert_all_closed(pool: &ConnectionPool, interval: Duration) {
    let p = pool.clone();
    assert!(
        wait_until(
            move || p.stats().open == 0,
            Duration::from_millis(150) + interval + Duration::from_millis(150)
        )
        .await,
        "{:?}",
        pool.stats()
    );
}

async fn client_reconnects_after_server_restart(carrier: Carrier) {
    let key = common::key();
    let first = start_at(carrier, &key, &carrier.address().to_string()).await;
    let endpoint = first.handle.endpoint().clone();
    let client = Client::connect(&endpoint, fast_reconnect(carrier, &key))
        .await
        .unwrap();
    assert_eq!(client.call(Message::Ping).await.unwrap(), Message::Pong);

    // A call in flight when the server dies fails cleanly; it is not re-sent.
    let c = client.clone();
    let in_flight = tokio::spawn(async move {
        c.call(Message::Custom {
            command: "SLOW".into(),
            payload: vec![],
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    kill(first).await;
    common::service::expect_lost(in_flight).await;

    // Restart on the same address, same identity; the next call reconnects
    // (full handshake, key verified again) and succeeds.
    let address = endpoint.to_string();
    let restarter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        start_at(carrier, &key, &address).await
    });
    assert_eq!(
        client.call(Message::Echo("back".into())).await.unwrap(),
        Message::Echo("back".into())
    );
    assert_eq!(client.stats().reconnects, 1);
    let second = restarter.await.unwrap();
    kill(second).await;
}

async fn reconnect_to_an_impostor_is_refused(carrier: Carrier) {
    let key = common::key();
    let first = start_at(carrier, &key, &carrier.address().to_string()).await;
    let endpoint = first.handle.endpoint().clone();
    let mut cfg = fast_reconnect(carrier, &key);
    cfg.max_reconnect_attempts = 2;
    let client = Client::connect(&endpoint, cfg).await.unwrap();
    assert_eq!(client.call(Message::Ping).await.unwrap(), Message::Pong);
    kill(first).await;
    let impostor = start_at(carrier, &common::key(), &endpoint.to_string()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = client.call(Message::Ping).await.unwrap_err();
    assert!(
        matches!(err, ServiceError::ReconnectFailed { attempts: 2, .. }),
        "{err:?}"
    );
    kill(impostor).await;
}

async fn pool_never_exceeds_max_size_under_a_burst(carrier: Carrier) {
    const MAX: usize = 4;
    let key = common::key();
    let server = start_at(carrier, &key, &carrier.address().to_string()).await;
    let mut cfg = PoolConfig::default();
    cfg.max_size = MAX;
    cfg.acquire_timeout = Duration::from_secs(20);
    let pool = ConnectionPool::new(
        server.handle.endpoint().clone(),
        fast_reconnect(carrier, &key),
        cfg,
    );
    let watch_pool = pool.clone();
    let watch_server = server.handle.clone();
    let watcher = tokio::spawn(async move {
        let mut peak = (0, 0);
        for _ in 0..400 {
            peak.0 = peak.0.max(watch_pool.stats().open);
            peak.1 = peak.1.max(watch_server.open_connections());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        peak
    });
    let mut tasks = Vec::new();
    for i in 0..10 * MAX {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let conn = pool.acquire().await.unwrap();
            let text = format!("burst {i}");
            assert_eq!(
                conn.call(Message::Echo(text.clone())).await.unwrap(),
                Message::Echo(text)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (pool_peak, server_peak) = watcher.await.unwrap();
    assert!(pool_peak <= MAX, "pool opened {pool_peak}");
    assert!(server_peak <= MAX, "server saw {server_peak}");
    let stats = pool.stats();
    assert!(stats.connects <= MAX as u64, "{stats:?}");
    assert_eq!(stats.idle, stats.open);
    kill(server).await;
}

async fn wait_until(mut f: impl FnMut() -> bool, limit: Duration) -> bool {
    let started = tokio::time::Instant::now();
    while started.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f()
}

async fn idle_and_lifetime_eviction(carrier: Carrier) {
    let key = common::key();
    let server = start_at(carrier, &key, &carrier.address().to_string()).await;
    let interval = Duration::from_millis(50);

    let mut cfg = PoolConfig::default();
    cfg.idle_timeout = Duration::from_millis(150);
    cfg.health_check_interval = interval;
    let pool = ConnectionPool::new(
        server.handle.endpoint().clone(),
        fast_reconnect(carrier, &key),
        cfg,
    );
    {
        let (a, b) = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
        a.call(Message::Ping).await.unwrap();
        b.call(Message::Ping).await.unwrap();
    }
    assert_eq!(pool.stats().idle, 2);
    // Evicted within idle_timeout plus one check interval (plus scheduling slack).
    assert_all_closed(&pool, interval).await;
    assert!(pool.stats().evicted >= 2);

    let mut cfg = PoolConfig::default();
    cfg.max_lifetime = Duration::from_millis(150);
    cfg.health_check_interval = interval;
    let pool = ConnectionPool::new(
        server.handle.endpoint().clone(),
        fast_reconnect(carrier, &key),
        cfg,
    );
    drop(pool.acquire().await.unwrap());
    assert_all_closed(&pool, interval).await;
    // A fresh one is opened on demand.
    pool.acquire()
        .await
        .unwrap()
        .call(Message::Ping)
        .await
        .unwrap();
    kill(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_opens_fails_fast_and_closes_after_a_probe() {
    let carrier = Carrier::Tcp;
    // A port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("tcp://127.0.0.1:{port}");
    let key = common::key();
    let mut cfg = PoolConfig::default();
    cfg.failure_threshold = 3;
    cfg.cooldown = Duration::from_millis(300);
    let pool = ConnectionPool::new(address.parse().unwrap(), fast_reconnect(carrier, &key), cfg);
    for _ in 0..3 {
        let err = pool.acquire().await.unwrap_err();
        assert!(matches!(err, ServiceError::Transport(_)), "{err:?}");
    }
    assert_eq!(pool.stats().connects, 3);
    assert!(matches!(pool.stats().circuit, CircuitState::Open(_)));
    // Open: fails fast, and makes no connection attempt.
    let started = tokio::time::Instant::now();
    let err = pool.acquire().await.unwrap_err();
    assert!(
        matches!(err, ServiceError::CircuitOpen { failures: 3, .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(pool.stats().connects, 3, "no connect attempt while open");
    // The server comes up; after the cool-down one probe is let through and
    // closes the circuit.
    let server = start_at(carrier, &key, &address).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let conn = pool.acquire().await.unwrap();
    assert_eq!(conn.call(Message::Ping).await.unwrap(), Message::Pong);
    assert_eq!(pool.stats().circuit, CircuitState::Closed(0));
    assert_eq!(pool.stats().connects, 4);
    drop(conn);
    kill(server).await;
}

mod tcp {
    use super::Carrier;
    over!(Carrier::Tcp;
        client_reconnects_after_server_restart,
        reconnect_to_an_impostor_is_refused,
        pool_never_exceeds_max_size_under_a_burst,
        idle_and_lifetime_eviction,
    );
}

mod udp {
    use super::Carrier;
    over!(Carrier::Udp;
        client_reconnects_after_server_restart,
        reconnect_to_an_impostor_is_refused,
        pool_never_exceeds_max_size_under_a_burst,
        idle_and_lifetime_eviction,
    );
}
