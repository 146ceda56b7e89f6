//! Byte-stream transports: the [`Transport`]/[`Listener`] traits and their TCP
//! and Unix-socket implementations.
//!
//! On platforms without Unix sockets (Windows), `unix://` endpoints fall back
//! to TCP on 127.0.0.1: the listener binds an OS-chosen port and writes it to
//! the endpoint's path, and connecting reads the port from that file. The API
//! is the same; the fallback is compiled only there.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

use crate::carrier::BoxFuture;
use crate::core::StreamSecurity;
use crate::endpoint::{Endpoint, PeerAddr};
use crate::error::{Result, TransportError};

/// Socket options for TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketOptions {
    /// Disable Nagle's algorithm (default on: netproto batches writes itself).
    pub nodelay: bool,
    /// `SO_SNDBUF`, if set.
    pub send_buffer: Option<u32>,
    /// `SO_RCVBUF`, if set.
    pub recv_buffer: Option<u32>,
    /// `TCP_NOTSENT_LOWAT` (Linux, Android; ignored elsewhere), if set: the
    /// kernel keeps at most about this many bytes queued but not yet sent,
    /// so large messages wait in the connection, where a more urgent one
    /// can overtake them ([`crate::Priority`]), instead of in the socket.
    /// W10 (docs/BENCHMARKS.md): an urgent round trip under 64 MiB of bulk
    /// went from 8.4 ms to about 1 ms with 128 KiB. Unlike a small
    /// `send_buffer` it does not cap the bytes in flight. Off by default.
    pub notsent_lowat: Option<u32>,
    /// Listen backlog (default 1024).
    pub backlog: u32,
    /// Mode of a Unix socket file (default 0o600: owner only).
    pub unix_mode: u32,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            nodelay: true,
            send_buffer: None,
            recv_buffer: None,
            notsent_lowat: None,
            backlog: 1024,
            unix_mode: 0o600,
        }
    }
}

/// Accepts byte streams.
pub trait Listener {
    /// The stream type.
    type Stream: IoStream;
    /// Waits for the next connection.
    fn accept(&mut self) -> impl Future<Output = Result<(Self::Stream, PeerAddr)>> + Send;
    /// Where it listens (with the real port if 0 was asked for).
    fn local_endpoint(&self) -> &Endpoint;
}

/// A stream of any built-in transport.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyStream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix domain socket.
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

impl AsyncRead for AnyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(unix)]
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for AnyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(unix)]
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(unix)]
            Self::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            #[cfg(unix)]
            Self::Unix(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            #[cfg(unix)]
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(unix)]
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Connects to TCP and Unix-socket endpoints.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultTransport {
    /// Socket options applied to every connection.
    pub options: SocketOptions,
}

fn tcp_socket_for(addr: &std::net::SocketAddr, opts: &SocketOptions) -> Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(n) = opts.send_buffer {
        socket.set_send_buffer_size(n)?;
    }
    if let Some(n) = opts.recv_buffer {
        socket.set_recv_buffer_size(n)?;
    }
    set_notsent_lowat(&socket, opts)?;
    Ok(socket)
}

/// Applies [`SocketOptions::notsent_lowat`] where the OS has it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_notsent_lowat<S: std::os::fd::AsFd>(
    socket: &S,
    opts: &SocketOptions,
) -> std::io::Result<()> {
    match opts.notsent_lowat {
        Some(n) => socket2::SockRef::from(socket).set_tcp_notsent_lowat(n),
        None => Ok(()),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[allow(clippy::unnecessary_wraps)] // the same signature as on Linux
fn set_notsent_lowat<S>(_socket: &S, _opts: &SocketOptions) -> std::io::Result<()> {
    Ok(())
}

async fn resolve(host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>> {
    let addrs: Vec<_> = tokio::net::lookup_host((host, port)).await?.collect();
    if addrs.is_empty() {
        return Err(TransportError::Io {
            kind: std::io::ErrorKind::NotFound,
            message: format!("{host} resolves to no address"),
        });
    }
    Ok(addrs)
}

impl DefaultTransport {
    /// Opens a byte stream to a `tcp://` or `unix://` endpoint (no
    /// handshake: see [`crate::Dial`] for connections).
    ///
    /// # Errors
    /// [`TransportError::Io`] from the OS; [`TransportError::BadEndpoint`]
    /// for `tls://` (use the TLS crate's dialer).
    pub async fn connect(&self, endpoint: &Endpoint) -> Result<AnyStream> {
        match endpoint {
            Endpoint::Tcp { host, port } => {
                let mut last = None;
                for addr in resolve(host, *port).await? {
                    let socket = tcp_socket_for(&addr, &self.options)?;
                    match socket.connect(addr).await {
                        Ok(stream) => {
                            stream.set_nodelay(self.options.nodelay)?;
                            return Ok(AnyStream::Tcp(stream));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.map_or(
                    TransportError::ConnectionClosed { clean: false },
                    Into::into,
                ))
            }
            #[cfg(unix)]
            Endpoint::Unix(path) => Ok(AnyStream::Unix(
                tokio::net::UnixStream::connect(path).await?,
            )),
            #[cfg(not(unix))]
            Endpoint::Unix(path) => {
                let port = fallback::read_port(path)?;
                let stream = TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port)).await?;
                stream.set_nodelay(self.options.nodelay)?;
                Ok(AnyStream::Tcp(stream))
            }
            Endpoint::Tls { .. } => Err(tls_needs_connector(endpoint)),
            Endpoint::Udp { .. } => Err(TransportError::BadEndpoint {
                input: endpoint.to_string(),
                reason: "udp:// needs the UDP carrier (netproto-transport-udp UdpDialer)",
            }),
        }
    }
}

/// A listener for either transport.
#[derive(Debug)]
pub struct AnyListener {
    inner: ListenerInner,
    endpoint: Endpoint,
    options: SocketOptions,
}

#[derive(Debug)]
enum ListenerInner {
    Tcp(tokio::net::TcpListener),
    #[cfg(unix)]
    Unix {
        listener: tokio::net::UnixListener,
        path: PathBuf,
    },
}

impl AnyListener {
    /// Binds `endpoint`.
    ///
    /// For Unix sockets, an existing socket file is removed only if nothing
    /// answers on it (a stale file from a crashed process); if a server is
    /// listening, binding fails with `AddrInUse`. The file gets
    /// `options.unix_mode` (0600 by default) and is removed when the listener
    /// is dropped.
    ///
    /// # Errors
    /// [`TransportError::Io`] from the OS.
    pub async fn bind(endpoint: &Endpoint, options: SocketOptions) -> Result<Self> {
        match endpoint {
            Endpoint::Tcp { host, port } => {
                let addr = *resolve(host, *port)
                    .await?
                    .first()
                    .ok_or(TransportError::ConnectionClosed { clean: false })?;
                let socket = tcp_socket_for(&addr, &options)?;
                socket.set_reuseaddr(true)?;
                socket.bind(addr)?;
                let listener = socket.listen(options.backlog)?;
                let local = listener.local_addr()?;
                Ok(Self {
                    inner: ListenerInner::Tcp(listener),
                    endpoint: Endpoint::Tcp {
                        host: local.ip().to_string(),
                        port: local.port(),
                    },
                    options,
                })
            }
            #[cfg(unix)]
            Endpoint::Unix(path) => {
                remove_stale_socket(path).await?;
                let listener = bind_unix(path, options.unix_mode)?;
                Ok(Self {
                    inner: ListenerInner::Unix {
                        listener,
                        path: path.clone(),
                    },
                    endpoint: endpoint.clone(),
                    options,
                })
            }
            #[cfg(not(unix))]
            Endpoint::Unix(path) => {
                let listener =
                    tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
                fallback::write_port(path, listener.local_addr()?.port())?;
                Ok(Self {
                    inner: ListenerInner::Tcp(listener),
                    endpoint: endpoint.clone(),
                    options,
                })
            }
            Endpoint::Tls { .. } => Err(TransportError::BadEndpoint {
                input: endpoint.to_string(),
                reason: "tls:// needs a TLS listener (netproto-transport-tls TlsListener)",
            }),
            Endpoint::Udp { .. } => Err(TransportError::BadEndpoint {
                input: endpoint.to_string(),
                reason: "udp:// needs a UDP listener (netproto-transport-udp UdpListener)",
            }),
        }
    }
}

fn tls_needs_connector(endpoint: &Endpoint) -> TransportError {
    TransportError::BadEndpoint {
        input: endpoint.to_string(),
        reason: "tls:// needs a TLS dialer (netproto-transport-tls) in ConnectionConfig::dialer",
    }
}

/// A byte stream a [`crate::Connection`] can run over. The stream declares
/// its own security: a plain stream gets netproto's Noise handshake, a TLS
/// stream says so and gets the capability hello instead (unless
/// `noise_inside_tls` asks for both).
///
/// Implement it for your own stream type with an empty body (plain) or an
/// overridden [`IoStream::security`].
pub trait IoStream: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static {
    /// What protects the stream before netproto runs on it.
    fn security(&self) -> StreamSecurity {
        StreamSecurity::Plain
    }
}

impl IoStream for TcpStream {}
#[cfg(unix)]
impl IoStream for tokio::net::UnixStream {}
impl IoStream for AnyStream {}
impl IoStream for tokio::io::DuplexStream {}
impl IoStream for Box<dyn IoStream> {
    fn security(&self) -> StreamSecurity {
        (**self).security()
    }
}

/// Binds a Unix socket at `path` with `mode`, never reachable with
/// another mode: it is bound in a fresh directory only we can enter, given
/// its mode there, and then renamed into place. (Bound in place, it would
/// have the umask's mode until the chmod: a window in which anyone the
/// umask lets in could connect.) Falls back to bind-then-chmod only where
/// the staging path would be too long for a socket address.
#[cfg(unix)]
fn bind_unix(path: &Path, mode: u32) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    use std::sync::atomic::{AtomicU64, Ordering};

    static STAGED: AtomicU64 = AtomicU64::new(0);
    let mode = std::fs::Permissions::from_mode(mode);
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let dir = parent.join(format!(
        ".np{:x}.{}",
        std::process::id(),
        STAGED.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let staged = dir.join("s");
    let bound = tokio::net::UnixListener::bind(&staged).and_then(|listener| {
        std::fs::set_permissions(&staged, mode.clone())?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    });
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&dir);
    match bound {
        Ok(listener) => Ok(listener),
        // The staging path is longer than a socket address may be.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            let listener = tokio::net::UnixListener::bind(path)?;
            // A chmod failure must not leave the socket file behind.
            if let Err(e) = std::fs::set_permissions(path, mode) {
                let _ = std::fs::remove_file(path);
                return Err(e.into());
            }
            Ok(listener)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(unix)]
async fn remove_stale_socket(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(TransportError::Io {
            kind: std::io::ErrorKind::AlreadyExists,
            message: format!(
                "{} exists and is not a socket; refusing to remove it",
                path.display()
            ),
        });
    }
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(TransportError::Io {
            kind: std::io::ErrorKind::AddrInUse,
            message: format!("a server is already listening on {}", path.display()),
        });
    }
    tracing::info!(path = %path.display(), "removing stale socket file");
    std::fs::remove_file(path)?;
    Ok(())
}

impl Drop for AnyListener {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let ListenerInner::Unix { path, .. } = &self.inner {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Listener for AnyListener {
    type Stream = AnyStream;

    async fn accept(&mut self) -> Result<(AnyStream, PeerAddr)> {
        match &self.inner {
            ListenerInner::Tcp(l) => loop {
                let (s, addr) = l.accept().await?;
                // A socket reset before we got to it must not look like a
                // listener failure: skip it and accept the next one.
                let configured = s
                    .set_nodelay(self.options.nodelay)
                    .and_then(|()| set_notsent_lowat(&s, &self.options));
                if let Err(e) = configured {
                    tracing::debug!(peer = %addr, error = %e, "dropping accepted socket");
                    continue;
                }
                return Ok((AnyStream::Tcp(s), PeerAddr::Tcp(addr)));
            },
            #[cfg(unix)]
            ListenerInner::Unix { listener, .. } => {
                let (s, addr) = listener.accept().await?;
                Ok((
                    AnyStream::Unix(s),
                    PeerAddr::Unix(addr.as_pathname().map(Path::to_path_buf)),
                ))
            }
        }
    }

    fn local_endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

#[cfg(not(unix))]
mod fallback {
    use std::path::Path;

    use crate::error::{Result, TransportError};

    pub(super) fn write_port(path: &Path, port: u16) -> Result<()> {
        std::fs::write(path, port.to_string())?;
        Ok(())
    }

    pub(super) fn read_port(path: &Path) -> Result<u16> {
        let text = std::fs::read_to_string(path)?;
        text.trim().parse().map_err(|_| TransportError::Io {
            kind: std::io::ErrorKind::InvalidData,
            message: format!("{} does not hold a port number", path.display()),
        })
    }
}

/// The object-safe face of a [`Listener`], for [`BoxedListener`].
trait ErasedListener: Send {
    fn accept_boxed(&mut self) -> BoxFuture<'_, Result<(Box<dyn IoStream>, PeerAddr)>>;
    fn endpoint(&self) -> &Endpoint;
}

impl<L: Listener + Send> ErasedListener for L {
    fn accept_boxed(&mut self) -> BoxFuture<'_, Result<(Box<dyn IoStream>, PeerAddr)>> {
        Box::pin(async move {
            let (stream, peer) = self.accept().await?;
            let stream: Box<dyn IoStream> = Box::new(stream);
            Ok((stream, peer))
        })
    }

    fn endpoint(&self) -> &Endpoint {
        self.local_endpoint()
    }
}

/// Any listener behind one type, so a program can choose TCP, Unix sockets
/// or TLS at run time (from its configuration) and still name one
/// `Server<BoxedListener>`.
pub struct BoxedListener {
    inner: Box<dyn ErasedListener>,
}

impl std::fmt::Debug for BoxedListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxedListener")
            .field("endpoint", self.inner.endpoint())
            .finish_non_exhaustive()
    }
}

impl BoxedListener {
    /// Boxes `listener`.
    pub fn new<L: Listener + Send + 'static>(listener: L) -> Self {
        Self {
            inner: Box::new(listener),
        }
    }
}

impl Listener for BoxedListener {
    type Stream = Box<dyn IoStream>;

    async fn accept(&mut self) -> Result<(Self::Stream, PeerAddr)> {
        self.inner.accept_boxed().await
    }

    fn local_endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }
}
