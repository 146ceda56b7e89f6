//! The stream driver: a [`Connection`] runs a [`Core`] over any byte stream
//! (TCP, Unix sockets, TLS, an in-memory pipe). It owns the I/O and nothing
//! else: every protocol rule is the core's.
//!
//! Topology (measured, docs/ARCHITECTURE.md): the core sits behind one
//! mutex shared by the handles. Senders encode straight into the core's
//! record buffer from their own task; one writer task per connection seals
//! what is queued and writes it in one go (or, while it is idle, a sender
//! that asks for `Flush::Now` writes itself); the receiving half reads the
//! socket in the caller's task (no hop), so a slow consumer stops reading
//! and TCP flow control pushes back on the peer.

mod recv;
mod send;
mod writer;

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::budget::{BudgetShare, MemoryBudget};
use crate::config::ConnectionConfig;
use crate::connection::{Connection, RecvHalf, SendHalf};
use crate::core::{Core, Role};
use crate::error::{Result, TransportError};
use crate::transport::IoStream;
pub(crate) use recv::StreamRecv;
pub(crate) use send::StreamSend;

/// The first allocation of a receive buffer (enough for any handshake
/// message and many small records).
const FIRST_BUFFER: usize = 1024;
/// Most bytes reserved for one read.
const READ_CHUNK: usize = 64 * 1024 + 16;
/// Grow a busy receive buffer by at least this much at a time, so that many
/// small records share one allocation.
const GROW_BY: usize = 16 * 1024;
/// Do not read into less spare room than this.
const MIN_READ: usize = 512;
/// A connection idle this long gives its buffers back.
pub(crate) const IDLE_RELEASE: Duration = Duration::from_secs(1);

/// Makes room for the next read without reallocating while the buffer still
/// has room: `BytesMut::reserve` reallocates whenever earlier records that
/// share the allocation are still alive, so it is called only when needed.
/// A fresh buffer starts small (a handshake and a few records fit); once it
/// must grow, it grows by [`GROW_BY`] so that many records share one
/// allocation.
fn make_read_room(buf: &mut BytesMut, needed: usize) {
    let needed = needed.clamp(1, READ_CHUNK);
    if buf.capacity() - buf.len() < needed.max(MIN_READ) {
        let grow = if buf.capacity() == 0 {
            FIRST_BUFFER
        } else {
            GROW_BY
        };
        buf.reserve(needed.max(grow));
    }
}

/// Whether a write failed because the peer is gone (its socket reset or
/// closed); the read side then reports the reason.
fn peer_gone(e: &TransportError) -> bool {
    matches!(
        e,
        TransportError::Io {
            kind: std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionAborted,
            ..
        }
    )
}

/// The driver's clock (tokio's, so tests with paused time run in virtual
/// time).
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The socket's write half.
pub(crate) type Writer = Box<dyn tokio::io::AsyncWrite + Send + Sync + Unpin>;

/// The write side, lent between the writer task and senders that write
/// directly ([`crate::Flush::Now`]): whoever holds `io` writes, and bytes
/// taken from the core are written in the order they were taken.
#[derive(Default)]
pub(crate) struct Out {
    /// The socket's write half; `None` while the writer task works with it
    /// (a sender then leaves the bytes to the writer) and after the end.
    io: Option<Writer>,
    /// Bytes taken from the core; `buf[written..]` is not written yet.
    buf: Vec<u8>,
    written: usize,
    /// Written but not yet flushed (a TLS stream may buffer).
    unflushed: bool,
    /// What `buf` holds of the connection's send share (given back once it
    /// is written).
    held: usize,
}

impl Out {
    /// Nothing taken from the core waits to be written or flushed.
    fn is_clear(&self) -> bool {
        self.written >= self.buf.len() && !self.unflushed
    }
}

/// What the handles and the writer task share: the core and the signals
/// between them.
pub(crate) struct Shared {
    core: Mutex<Core>,
    /// The socket's write side and the bytes being written.
    out: Mutex<Out>,
    /// The writer gave its buffers back and sleeps without a timer: a
    /// sender that writes directly wakes it afterwards, so that what it
    /// allocated is given back in turn.
    writer_parked: std::sync::atomic::AtomicBool,
    /// Something was queued (or a close requested, or the core failed).
    wake_writer: Notify,
    /// The writer took bytes (room in the send buffer), or a PONG arrived.
    progress: Notify,
    /// Senders waiting for room queue here, first come first served.
    line: tokio::sync::Semaphore,
    /// How many senders are in that line (newcomers do not overtake them).
    waiting: std::sync::atomic::AtomicUsize,
    /// Set once the writer has stopped: `Ok` after BYE and shutdown.
    writer_done: OnceLock<Result<()>>,
    done: Notify,
    /// The reader waiting on the socket, woken when the writer stops (an
    /// `AtomicWaker`: a read wait registers with two atomics, no lock).
    reader: futures_util::task::AtomicWaker,
    /// Most bytes queued before `send` waits.
    send_buffer: usize,
    /// The shared send budget and this connection's share of it, if any.
    send_budget: Option<Arc<MemoryBudget>>,
    send_memory: Mutex<SendMemory>,
    write_timeout: Duration,
}

/// Bytes this connection holds for sending, counted against its share of
/// the send budget: `queued` are in the core, the rest in [`Out::held`].
struct SendMemory {
    share: Option<BudgetShare>,
    queued: usize,
}

impl Shared {
    /// The core. A panic while it was locked leaves the core as it was
    /// before the call that panicked (every call either completes or fails
    /// the connection), so a poisoned lock is recovered, never propagated.
    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The write side (a poisoned lock is recovered: every holder leaves
    /// `Out` consistent between statements).
    fn out(&self) -> MutexGuard<'_, Out> {
        self.out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn send_memory(&self) -> MutexGuard<'_, SendMemory> {
        self.send_memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reserves room in the connection's send share for a send of about
    /// `hint` bytes (under the core's lock); false if the send budget has
    /// none. A large payload is encoded through a scratch copy before it
    /// is queued, so it reserves twice its size while it is encoded.
    fn send_reserve(&self, hint: usize) -> Option<usize> {
        if self.send_budget.is_none() {
            return Some(0);
        }
        let reserve = if hint > crate::core::KEEP_PAYLOAD_BUFFER {
            hint.saturating_mul(2)
        } else {
            hint
        };
        let mut memory = self.send_memory();
        match memory.share.as_mut() {
            Some(share) => share.try_hold(reserve).then_some(reserve),
            None => Some(0),
        }
    }

    /// Settles a reservation once the send is done: `grew` bytes were
    /// queued in the core (under its lock).
    fn send_queued(&self, reserved: usize, grew: usize) {
        if self.send_budget.is_none() {
            return;
        }
        let mut memory = self.send_memory();
        if let Some(share) = memory.share.as_mut() {
            share.release(reserved);
            share.hold(grew);
            memory.queued += grew;
        }
    }

    /// What the `n` bytes just taken from the core (under its lock) held:
    /// at most what was charged (messages waiting for their turn in the
    /// core keep the rest of their charge until they are taken).
    fn send_taken(&self, n: usize) -> usize {
        if self.send_budget.is_none() {
            return 0;
        }
        let mut memory = self.send_memory();
        let taken = memory.queued.min(n);
        memory.queued -= taken;
        taken
    }

    /// Gives back what written bytes held.
    fn send_written(&self, held: usize) {
        if held > 0 {
            if let Some(share) = self.send_memory().share.as_mut() {
                share.release(held);
            }
        }
    }

    /// The writer has stopped: nothing more is held (or will be).
    fn send_ended(&self) {
        self.send_memory().share = None;
    }

    /// Wakes the writer if the core queued something.
    fn signal(&self, core: &mut Core) {
        if core.take_transmit_signal() || core.error().is_some() {
            self.wake_writer.notify_one();
        }
    }
}

impl Connection {
    /// Runs the handshake as the initiator over `stream`. Whether Noise runs
    /// is decided by what the stream declares ([`IoStream::security`]) and
    /// [`ConnectionConfig::noise_inside_tls`].
    ///
    /// # Errors
    /// [`TransportError::Timeout`] (handshake), [`TransportError::Crypto`]
    /// (including a refused peer key), [`TransportError::Wire`],
    /// [`TransportError::Protocol`], I/O errors.
    pub async fn client<S: IoStream>(stream: S, cfg: ConnectionConfig) -> Result<Self> {
        Self::establish(stream, cfg, Role::Client).await
    }

    /// Runs the handshake as the responder over `stream`.
    ///
    /// # Errors
    /// As [`Connection::client`].
    pub async fn server<S: IoStream>(stream: S, cfg: ConnectionConfig) -> Result<Self> {
        Self::establish(stream, cfg, Role::Server).await
    }

    async fn establish<S: IoStream>(stream: S, cfg: ConnectionConfig, role: Role) -> Result<Self> {
        let security = stream.security();
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut core = Core::stream(
            &cfg,
            security,
            role,
            now(),
            unix_now(),
            Box::new(rand::rngs::OsRng),
        )?;
        let mut buf = BytesMut::with_capacity(FIRST_BUFFER);
        // Boxed: the handshake's state is large and short-lived; inline, it
        // would stay part of every connection task's size for good.
        let outcome = Box::pin(handshake(&mut core, &mut rd, &mut wr, &mut buf)).await;
        if let Err(e) = outcome {
            // A last word for the peer (a Noise/TLS mismatch notice), if the
            // core queued one; bounded by the write timeout.
            let mut out = Vec::new();
            if core.poll_transmit(now(), &mut out).unwrap_or(false) {
                let write = async {
                    let _ = wr.write_all(&out).await;
                    let _ = wr.flush().await;
                };
                let _ = tokio::time::timeout(cfg.write_timeout, write).await;
            }
            return Err(e);
        }
        let info = core
            .info()
            .cloned()
            .ok_or(TransportError::ConnectionClosed { clean: false })?;
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            out: Mutex::new(Out {
                io: Some(Box::new(wr)),
                ..Out::default()
            }),
            writer_parked: std::sync::atomic::AtomicBool::new(false),
            wake_writer: Notify::new(),
            progress: Notify::new(),
            line: tokio::sync::Semaphore::new(1),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            writer_done: OnceLock::new(),
            done: Notify::new(),
            reader: futures_util::task::AtomicWaker::new(),
            send_buffer: cfg.send_buffer.max(1),
            send_memory: Mutex::new(SendMemory {
                share: cfg
                    .send_budget
                    .clone()
                    .map(|b| BudgetShare::new(b, crate::budget::SEND_FLOOR)),
                queued: 0,
            }),
            send_budget: cfg.send_budget.clone(),
            write_timeout: cfg.write_timeout,
        });
        tokio::spawn(writer::run(shared.clone()));
        Ok(Self {
            send: SendHalf::stream(StreamSend::new(shared.clone()), info.clone()),
            recv: RecvHalf::stream(StreamRecv::new(shared, Box::new(rd), buf), info),
        })
    }
}

/// Drives the core through the handshake: writes what it queues, reads
/// what it asks for, until it is established. Every wait is bounded by the
/// core's deadline, and an expired deadline is the core's typed timeout.
async fn handshake<R, W>(core: &mut Core, rd: &mut R, wr: &mut W, buf: &mut BytesMut) -> Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut out = Vec::new();
    loop {
        if core.is_established() {
            // Our last handshake message (or the TLS hello) stays queued:
            // it leaves with the writer's first write.
            return Ok(());
        }
        let deadline = core.poll_timeout().map(tokio::time::Instant::from_std);
        if core.poll_transmit(now(), &mut out)? {
            let write = async {
                wr.write_all(&out).await?;
                wr.flush().await
            };
            match bounded(deadline, write).await {
                Some(r) => r?,
                None => core.handle_timeout(now())?,
            }
            continue;
        }
        if core.handle_input(now(), buf)? {
            continue;
        }
        make_read_room(buf, core.bytes_needed(buf.len()));
        match bounded(deadline, rd.read_buf(buf)).await {
            Some(Ok(0)) => return Err(core.fail(TransportError::ConnectionClosed { clean: false })),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(core.fail(e.into())),
            None => core.handle_timeout(now())?,
        }
    }
}

/// Runs `fut` until `deadline` (`None` when it passed first).
async fn bounded<T>(
    deadline: Option<tokio::time::Instant>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    match deadline {
        Some(at) => tokio::time::timeout_at(at, fut).await.ok(),
        None => Some(fut.await),
    }
}
