//! [`RawClient`]: a client that completes a genuine handshake and then
//! writes whatever bytes a test wants (half a message, a stalled record),
//! for hostile-peer tests. It is built on the public connection core, the
//! way an independent implementation would drive it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use netproto_transport::core::{Core, Role};
use netproto_transport::{ConnectionConfig, IoStream, Result, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client connection whose records the test seals and writes itself.
pub struct RawClient<S> {
    core: Core,
    io: S,
}

/// The bytes of a genuine first handshake message (a Noise initiation in
/// its plain packet) for a client with `cfg`: what a peer that starts a
/// handshake and then stalls sends.
///
/// # Errors
/// The core's (a pattern missing a key).
pub fn initiation(cfg: &ConnectionConfig) -> Result<Vec<u8>> {
    let now = tokio::time::Instant::now().into_std();
    let mut core = Core::stream(
        cfg,
        netproto_transport::StreamSecurity::Plain,
        Role::Client,
        now,
        Duration::ZERO,
        Box::new(rand::rngs::OsRng),
    )?;
    let mut out = Vec::new();
    core.poll_transmit(now, &mut out)?;
    Ok(out)
}

impl<S: IoStream> RawClient<S> {
    /// Runs the client handshake over `io` (at most 5 s).
    ///
    /// # Errors
    /// The handshake's errors; a timeout as `ConnectionClosed`.
    pub async fn connect(mut io: S, cfg: &ConnectionConfig) -> Result<Self> {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let now = tokio::time::Instant::now().into_std();
        let mut core = Core::stream(
            cfg,
            io.security(),
            Role::Client,
            now,
            wall,
            Box::new(rand::rngs::OsRng),
        )?;
        let mut input = BytesMut::with_capacity(4096);
        let mut out = Vec::new();
        let drive = async {
            while !core.is_established() {
                let now = tokio::time::Instant::now().into_std();
                if core.poll_transmit(now, &mut out)? {
                    io.write_all(&out).await?;
                }
                if core.handle_input(now, &mut input)? {
                    continue;
                }
                if io.read_buf(&mut input).await? == 0 {
                    return Err(TransportError::ConnectionClosed { clean: false });
                }
            }
            Ok(())
        };
        tokio::time::timeout(Duration::from_secs(5), drive)
            .await
            .map_err(|_| TransportError::ConnectionClosed { clean: false })??;
        Ok(Self { core, io })
    }

    /// The bytes (sealed records) of a DATA message, not yet written: a test
    /// writes all of them, part of them, or them in pieces.
    ///
    /// # Errors
    /// The core's refusals (a message over the peer's limit).
    pub fn records(&mut self, stream_id: u64, payload: &[u8]) -> Result<Vec<u8>> {
        let now = tokio::time::Instant::now().into_std();
        self.core.send_data(now, stream_id, payload)?;
        // A large message leaves over several calls (128 KiB of pieces
        // each), as a driver would take it.
        let (mut all, mut out) = (Vec::new(), Vec::new());
        while self.core.poll_transmit(now, &mut out)? {
            all.extend_from_slice(&out);
        }
        Ok(all)
    }

    /// The connection's stream, for a test that goes on writing (and
    /// reading) on its own: records made before stay valid, in order.
    pub fn into_io(self) -> S {
        self.io
    }

    /// Writes raw bytes to the peer.
    ///
    /// # Errors
    /// I/O errors (the peer closed the connection).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Waits (at most `within`) for the peer to close the connection;
    /// true if it did. Whatever the peer sends meanwhile is discarded.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let mut sink = [0u8; 4096];
        let wait = async {
            loop {
                match self.io.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }
}
