//! The client: one secure connection, many concurrent calls multiplexed by
//! request id, heartbeat, statistics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use netproto_transport::{Endpoint, SendHalf, TransportError};
use netproto_wire::{ErrorCode, Frame, FrameKind, Message};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::ClientConfig;
use crate::error::{Result, ServiceError};

type Pending = Mutex<HashMap<u64, oneshot::Sender<Result<Message>>>>;

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    responses: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    late_responses: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    rtt_ewma_ns: AtomicU64,
}

/// A snapshot of a client's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClientStats {
    /// Calls and one-way sends made.
    pub requests: u64,
    /// Responses delivered to a waiting call.
    pub responses: u64,
    /// Calls that ended in an error (including timeouts).
    pub errors: u64,
    /// Calls that timed out.
    pub timeouts: u64,
    /// Responses that arrived after their call had timed out (dropped).
    pub late_responses: u64,
    /// Encoded request bytes.
    pub bytes_sent: u64,
    /// Response payload bytes.
    pub bytes_received: u64,
    /// Smoothed round-trip time of calls (exponential moving average).
    pub rtt_estimate: Duration,
}

struct Inner {
    send: SendHalf,
    pending: Pending,
    next_id: AtomicU64,
    counters: Counters,
    closed: OnceLock<ServiceError>,
    cfg: ClientConfig,
    reader: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut r) = self.reader.lock() {
            if let Some(task) = r.take() {
                task.abort();
            }
        }
    }
}

/// A client of a netproto server. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects and runs the handshake within `connection_timeout`.
    ///
    /// # Errors
    /// [`ServiceError::Transport`] (refused, timed out, handshake failed).
    pub async fn connect(endpoint: &Endpoint, cfg: ClientConfig) -> Result<Self> {
        let mut conn_cfg = cfg.connection.clone();
        conn_cfg.connect_timeout = cfg.connection_timeout;
        conn_cfg.handshake_timeout = cfg.connection_timeout;
        // The client runs its own heartbeat.
        conn_cfg.read_idle_timeout = None;
        let conn = netproto_transport::connect(endpoint, conn_cfg).await?;
        let (send, recv) = conn.split();
        let inner = Arc::new(Inner {
            send,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            counters: Counters::default(),
            closed: OnceLock::new(),
            cfg,
            reader: Mutex::new(None),
        });
        let task = tokio::spawn(read_loop(Arc::downgrade(&inner), recv));
        if let Ok(mut r) = inner.reader.lock() {
            *r = Some(task);
        }
        Ok(Self { inner })
    }

    fn closed_error(&self) -> Option<ServiceError> {
        self.inner.closed.get().cloned()
    }

    /// Sends `request` and waits for its response (`response_timeout`).
    ///
    /// # Errors
    /// [`ServiceError::Remote`] if the server answered with ERR (unknown
    /// opcode, bad request, handler failure); [`ServiceError::Timeout`];
    /// [`ServiceError::ConnectionClosed`] or [`ServiceError::Busy`] when the
    /// connection is gone.
    pub async fn call(&self, request: Message) -> Result<Message> {
        if let Some(e) = self.closed_error() {
            return Err(e);
        }
        let c = &self.inner.counters;
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.bytes_sent
            .fetch_add(request.encoded_len().unwrap_or(0) as u64, Ordering::Relaxed);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.inner.pending.lock() {
            p.insert(id, tx);
        }
        let started = Instant::now();
        let result = self.exchange(id, request, rx).await;
        if result.is_err() {
            c.errors.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut p) = self.inner.pending.lock() {
                p.remove(&id);
            }
        } else {
            let sample = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let old = c.rtt_ewma_ns.load(Ordering::Relaxed);
            let new = if old == 0 {
                sample
            } else {
                old - old / 8 + sample / 8
            };
            c.rtt_ewma_ns.store(new, Ordering::Relaxed);
        }
        result
    }

    async fn exchange(
        &self,
        id: u64,
        request: Message,
        rx: oneshot::Receiver<Result<Message>>,
    ) -> Result<Message> {
        let op = self.inner.cfg.operation_timeout;
        tokio::time::timeout(op, self.inner.send.send_message(id, request))
            .await
            .map_err(|_| ServiceError::Timeout(op))??;
        let wait = self.inner.cfg.response_timeout;
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(self
                .closed_error()
                .unwrap_or(ServiceError::ConnectionClosed)),
            Err(_) => {
                self.inner.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(ServiceError::Timeout(wait))
            }
        }
    }

    /// Sends `message` without waiting for an answer (request id 0).
    ///
    /// # Errors
    /// The connection's error once it is closed.
    pub async fn send(&self, message: Message) -> Result<()> {
        if let Some(e) = self.closed_error() {
            return Err(e);
        }
        self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
        Ok(self.inner.send.send_message(0, message).await?)
    }

    /// Closes the connection gracefully (BYE after everything queued).
    ///
    /// # Errors
    /// The connection's error if it had already failed.
    pub async fn close(&self) -> Result<()> {
        Ok(self.inner.send.close().await?)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            requests: c.requests.load(Ordering::Relaxed),
            responses: c.responses.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            late_responses: c.late_responses.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            rtt_estimate: Duration::from_nanos(c.rtt_ewma_ns.load(Ordering::Relaxed)),
        }
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get().is_some()
    }
}

/// Routes responses to their calls, answers the heartbeat, and fails every
/// pending call when the connection ends.
async fn read_loop(inner: std::sync::Weak<Inner>, mut recv: netproto_transport::RecvHalf) {
    let (heartbeat, grace) = match inner.upgrade() {
        Some(i) => (i.cfg.heartbeat_interval, i.cfg.connection_timeout),
        None => return,
    };
    let mut last_rx = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    let end = loop {
        let wake = ping_sent.map_or(last_rx + heartbeat, |at| at + grace);
        let frame = tokio::select! {
            f = recv.recv_frame() => f,
            () = tokio::time::sleep_until(wake) => {
                if ping_sent.is_some() {
                    tracing::warn!("server did not answer the heartbeat; closing");
                    break ServiceError::Timeout(grace);
                }
                let Some(i) = inner.upgrade() else { return };
                let _ = i.send.try_send_frame(Frame::new(FrameKind::Ping, 0, bytes::Bytes::from_static(b"netproto")));
                ping_sent = Some(Instant::now());
                continue;
            }
        };
        let Some(i) = inner.upgrade() else { return };
        let frame = match frame {
            Ok(f) => f,
            Err(TransportError::ConnectionClosed { .. }) => break ServiceError::ConnectionClosed,
            Err(e) => break ServiceError::Transport(e),
        };
        last_rx = Instant::now();
        ping_sent = None;
        let id = frame.stream_id;
        let outcome = match frame.kind {
            FrameKind::Data => {
                i.counters
                    .bytes_received
                    .fetch_add(frame.payload.len() as u64, Ordering::Relaxed);
                Message::decode(&frame.payload).map_err(ServiceError::from)
            }
            FrameKind::Err => {
                let (code, reason) = match frame.as_ref().error_parts() {
                    Ok((c, r)) => (c, r.unwrap_or("").to_owned()),
                    Err(_) => (ErrorCode::PROTOCOL, "malformed ERR frame".to_owned()),
                };
                if id == 0 {
                    let e = if code == ErrorCode::BUSY {
                        ServiceError::Busy
                    } else {
                        ServiceError::Remote { code, reason }
                    };
                    tracing::warn!(error = %e, "server refused the connection");
                    break e;
                }
                Err(ServiceError::Remote { code, reason })
            }
            // PONG, GOAWAY, ACK: liveness only.
            _ => continue,
        };
        let waiter = i.pending.lock().ok().and_then(|mut p| p.remove(&id));
        if let Some(tx) = waiter {
            i.counters.responses.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(outcome);
        } else {
            i.counters.late_responses.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(stream_id = id, "dropping response to a call that timed out");
        }
    };
    if let Some(i) = inner.upgrade() {
        let _ = i.closed.set(end.clone());
        let waiters: Vec<_> = i
            .pending
            .lock()
            .map(|mut p| p.drain().collect())
            .unwrap_or_default();
        for (_, tx) in waiters {
            let _ = tx.send(Err(end.clone()));
        }
    }
}
