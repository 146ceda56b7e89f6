//! A pool of client connections to one endpoint, with a circuit breaker.
//!
//! * At most `max_size` connections exist at any time (idle or in use),
//!   however many tasks call [`ConnectionPool::acquire`] at once.
//! * [`ConnectionPool::acquire`] hands out the least recently used idle
//!   connection that is still healthy, or opens a new one, within
//!   `acquire_timeout`.
//! * A background check every `health_check_interval` closes connections idle
//!   longer than `idle_timeout` or older than `max_lifetime`, pings the rest,
//!   and opens connections up to `min_size`.
//! * After `failure_threshold` consecutive failed connects the circuit opens:
//!   acquiring fails fast with [`ServiceError::CircuitOpen`], without any
//!   connection attempt, for `cooldown`; then one probe is let through, and its
//!   success closes the circuit again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use netproto_transport::Endpoint;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::client::Client;
use crate::config::ClientConfig;
use crate::error::{Result, ServiceError};

/// Pool settings. Defaults in parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Connections kept open even when idle (0).
    pub min_size: usize,
    /// Most connections open at once (10).
    pub max_size: usize,
    /// Close connections idle longer than this (60 s).
    pub idle_timeout: Duration,
    /// Close connections older than this (30 min).
    pub max_lifetime: Duration,
    /// How long `acquire` may wait (5 s).
    pub acquire_timeout: Duration,
    /// How often idle connections are checked (10 s).
    pub health_check_interval: Duration,
    /// Consecutive connect failures that open the circuit (5).
    pub failure_threshold: u32,
    /// How long the circuit stays open before a probe (10 s).
    pub cooldown: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            min_size: 0,
            max_size: 10,
            idle_timeout: Duration::from_mins(1),
            max_lifetime: Duration::from_mins(30),
            acquire_timeout: Duration::from_secs(5),
            health_check_interval: Duration::from_secs(10),
            failure_threshold: 5,
            cooldown: Duration::from_secs(10),
        }
    }
}

/// The circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CircuitState {
    /// Connecting normally; the count of consecutive failures.
    Closed(u32),
    /// Failing fast until the instant.
    Open(Instant),
    /// One probe connection is being tried.
    HalfOpen,
}

/// Counters of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections open now (idle and in use).
    pub open: usize,
    /// Idle connections.
    pub idle: usize,
    /// Connection attempts made.
    pub connects: u64,
    /// Connections closed by the idle, lifetime or health checks.
    pub evicted: u64,
    /// The circuit breaker.
    pub circuit: CircuitState,
}

struct Idle {
    client: Client,
    permit: OwnedSemaphorePermit,
    created: Instant,
    last_used: Instant,
}

struct Inner {
    endpoint: Endpoint,
    client_cfg: ClientConfig,
    cfg: PoolConfig,
    slots: Arc<Semaphore>,
    idle: Mutex<VecDeque<Idle>>,
    returned: Notify,
    circuit: Mutex<CircuitState>,
    failures_at_open: Mutex<u32>,
    open: AtomicUsize,
    connects: AtomicU64,
    evicted: AtomicU64,
}

/// A pool of [`Client`] connections to one endpoint. Cheap to clone.
#[derive(Clone)]
pub struct ConnectionPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("endpoint", &self.inner.endpoint)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A connection borrowed from the pool; returned to it when dropped.
pub struct PooledClient {
    client: Client,
    permit: Option<OwnedSemaphorePermit>,
    created: Instant,
    pool: Arc<Inner>,
}

impl std::fmt::Debug for PooledClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledClient")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for PooledClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for PooledClient {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        // Clients are handles onto one shared connection: the pool keeps a clone.
        let client = self.client.clone();
        let now = Instant::now();
        if client.is_closed() || now.duration_since(self.created) >= self.pool.cfg.max_lifetime {
            self.pool.close_one(client, permit);
            return;
        }
        if let Ok(mut idle) = self.pool.idle.lock() {
            idle.push_back(Idle {
                client,
                permit,
                created: self.created,
                last_used: now,
            });
        }
        self.pool.returned.notify_one();
    }
}

impl Inner {
    fn close_one(&self, client: Client, permit: OwnedSemaphorePermit) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        drop(permit);
        self.returned.notify_one();
        tokio::spawn(async move {
            let _ = client.close().await;
        });
    }

    fn take_idle(&self) -> Option<Idle> {
        let mut idle = self.idle.lock().ok()?;
        let now = Instant::now();
        while let Some(entry) = idle.pop_front() {
            let expired = now.duration_since(entry.created) >= self.cfg.max_lifetime;
            if expired || entry.client.is_closed() {
                self.evicted.fetch_add(1, Ordering::Relaxed);
                self.close_one(entry.client, entry.permit);
                continue;
            }
            return Some(entry);
        }
        None
    }

    /// Whether a connection attempt may be made now, and whether it is the
    /// half-open probe.
    fn circuit_allows(&self) -> Result<bool> {
        let mut state = self
            .circuit
            .lock()
            .map_err(|_| ServiceError::ConnectionClosed)?;
        match *state {
            CircuitState::Closed(_) => Ok(false),
            CircuitState::HalfOpen => Err(ServiceError::CircuitOpen {
                failures: self.failures_at_open.lock().map_or(0, |f| *f),
                retry_in: Duration::ZERO,
            }),
            CircuitState::Open(until) => {
                let now = Instant::now();
                if now < until {
                    Err(ServiceError::CircuitOpen {
                        failures: self.failures_at_open.lock().map_or(0, |f| *f),
                        retry_in: until - now,
                    })
                } else {
                    tracing::info!(endpoint = %self.endpoint, "circuit half-open: probing");
                    metrics::counter!("netproto_pool_circuit_transitions_total", "to" => "half_open").increment(1);
                    *state = CircuitState::HalfOpen;
                    Ok(true)
                }
            }
        }
    }

    fn record(&self, ok: bool) {
        let Ok(mut state) = self.circuit.lock() else {
            return;
        };
        let next = match (*state, ok) {
            (_, true) => CircuitState::Closed(0),
            (CircuitState::Closed(n), false) if n + 1 < self.cfg.failure_threshold => {
                CircuitState::Closed(n + 1)
            }
            (CircuitState::Closed(n), false) => {
                if let Ok(mut f) = self.failures_at_open.lock() {
                    *f = n + 1;
                }
                CircuitState::Open(Instant::now() + self.cfg.cooldown)
            }
            (_, false) => CircuitState::Open(Instant::now() + self.cfg.cooldown),
        };
        let changed = !matches!(
            (*state, next),
            (CircuitState::Closed(_), CircuitState::Closed(_))
        );
        if changed {
            let to = match next {
                CircuitState::Closed(_) => "closed",
                CircuitState::Open(_) => "open",
                CircuitState::HalfOpen => "half_open",
            };
            tracing::warn!(endpoint = %self.endpoint, state = to, "circuit breaker changed state");
            metrics::counter!("netproto_pool_circuit_transitions_total", "to" => to).increment(1);
        }
        *state = next;
    }

    async fn open_new(&self, permit: OwnedSemaphorePermit) -> Result<Idle> {
        let probe = self.circuit_allows()?;
        self.connects.fetch_add(1, Ordering::Relaxed);
        // A half-open probe dropped half-way (its `acquire` timed out)
        // counts as a failure: otherwise it would leave the breaker
        // half-open, refusing every later attempt, for good. Other dropped
        // attempts (a caller's own timeout) count as nothing.
        let attempt = Attempt {
            pool: self,
            settled: !probe,
        };
        let outcome = Client::connect(&self.endpoint, self.client_cfg.clone()).await;
        attempt.settle();
        match outcome {
            Ok(client) => {
                self.record(true);
                self.open.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                Ok(Idle {
                    client,
                    permit,
                    created: now,
                    last_used: now,
                })
            }
            Err(e) => {
                self.record(false);
                Err(e)
            }
        }
    }
}

/// A half-open probe whose outcome must reach the circuit breaker.
struct Attempt<'a> {
    pool: &'a Inner,
    settled: bool,
}

impl Attempt<'_> {
    /// The outcome is known; the caller records it.
    fn settle(mut self) {
        self.settled = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            tracing::debug!(endpoint = %self.pool.endpoint, "half-open probe abandoned");
            self.pool.record(false);
        }
    }
}

impl ConnectionPool {
    /// A pool for `endpoint`; it opens `min_size` connections in the
    /// background and starts the health check.
    pub fn new(endpoint: Endpoint, client_cfg: ClientConfig, cfg: PoolConfig) -> Self {
        let mut cfg = cfg;
        cfg.max_size = cfg.max_size.max(1);
        cfg.min_size = cfg.min_size.min(cfg.max_size);
        let inner = Arc::new(Inner {
            endpoint,
            client_cfg,
            cfg,
            slots: Arc::new(Semaphore::new(cfg.max_size)),
            idle: Mutex::new(VecDeque::new()),
            returned: Notify::new(),
            circuit: Mutex::new(CircuitState::Closed(0)),
            failures_at_open: Mutex::new(0),
            open: AtomicUsize::new(0),
            connects: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        });
        tokio::spawn(maintain(Arc::downgrade(&inner)));
        Self { inner }
    }

    /// A healthy connection: the least recently used idle one, or a new one.
    ///
    /// # Errors
    /// [`ServiceError::PoolTimeout`] after `acquire_timeout`;
    /// [`ServiceError::CircuitOpen`] while the breaker is open; the connect
    /// error if opening a new connection failed.
    pub async fn acquire(&self) -> Result<PooledClient> {
        let limit = self.inner.cfg.acquire_timeout;
        tokio::time::timeout(limit, self.acquire_inner())
            .await
            .map_err(|_| ServiceError::PoolTimeout(limit))?
    }

    async fn acquire_inner(&self) -> Result<PooledClient> {
        loop {
            // Register interest before looking, so a return between the look
            // and the wait is not missed.
            let returned = self.inner.returned.notified();
            if let Some(entry) = self.inner.take_idle() {
                return Ok(self.wrap(entry));
            }
            if let Ok(permit) = self.inner.slots.clone().try_acquire_owned() {
                let entry = self.inner.open_new(permit).await?;
                return Ok(self.wrap(entry));
            }
            returned.await;
        }
    }

    fn wrap(&self, entry: Idle) -> PooledClient {
        PooledClient {
            client: entry.client,
            permit: Some(entry.permit),
            created: entry.created,
            pool: self.inner.clone(),
        }
    }

    /// Counters and the breaker state.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            open: self.inner.open.load(Ordering::Relaxed),
            idle: self.inner.idle.lock().map_or(0, |i| i.len()),
            connects: self.inner.connects.load(Ordering::Relaxed),
            evicted: self.inner.evicted.load(Ordering::Relaxed),
            circuit: self
                .inner
                .circuit
                .lock()
                .map_or(CircuitState::HalfOpen, |c| *c),
        }
    }
}

/// The background check: evict idle and old connections, ping the rest, keep
/// `min_size` open. Ends when the pool is dropped.
async fn maintain(pool: Weak<Inner>) {
    let Some(interval) = pool.upgrade().map(|p| p.cfg.health_check_interval) else {
        return;
    };
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(p) = pool.upgrade() else { return };
        let now = Instant::now();
        let candidates: Vec<Idle> = p
            .idle
            .lock()
            .map(|mut i| i.drain(..).collect())
            .unwrap_or_default();
        let mut keep = Vec::new();
        for entry in candidates {
            let stale = now.duration_since(entry.last_used) >= p.cfg.idle_timeout
                || now.duration_since(entry.created) >= p.cfg.max_lifetime
                || entry.client.is_closed();
            let healthy = !stale && entry.client.ping(interval).await.is_ok();
            if healthy {
                keep.push(entry);
            } else {
                p.evicted.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("netproto_pool_evictions_total").increment(1);
                p.close_one(entry.client, entry.permit);
            }
        }
        if let Ok(mut idle) = p.idle.lock() {
            // Checked entries go back in front, in their old order, ahead of
            // any returned meanwhile (those were used more recently).
            for entry in keep.into_iter().rev() {
                idle.push_front(entry);
            }
        }
        p.returned.notify_waiters();
        while p.open.load(Ordering::Relaxed) < p.cfg.min_size {
            let Ok(permit) = p.slots.clone().try_acquire_owned() else {
                break;
            };
            match p.open_new(permit).await {
                Ok(entry) => {
                    if let Ok(mut idle) = p.idle.lock() {
                        idle.push_back(entry);
                    }
                    p.returned.notify_one();
                }
                Err(_) => break,
            }
        }
    }
}
