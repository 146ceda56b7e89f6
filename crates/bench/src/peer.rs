//! The child server process (the `netproto` binary's hidden `bench-peer`
//! command) used by the workloads that must not share a process with their
//! client: W5 reads its memory on its own, W9 measures calls across
//! processes as a user's client and server would run.
//!
//! The child serves, until its standard input closes, on 127.0.0.1, on
//! Unix sockets and over TLS (a self-signed certificate for `localhost`,
//! written to a temporary directory): netproto with echo peers
//! (`Connection` level), a `Server` with an `ECHO` route (the service
//! level), and the carrier's baseline with `LengthDelimitedCodec` echo (raw
//! TCP, raw Unix socket, tokio-rustls AES-256-GCM). It prints one line of
//! `NAME value` pairs: `PORT KEY SERVICE RAW` (TCP), `UDS UDS_SERVICE
//! UDS_RAW` (Unix), `TLS TLS_SERVICE TLS_RAW CERT`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair, PublicKey};
use netproto_service::{Dispatcher, Server, ServerConfig};
use netproto_testkit::serve_connections;
use netproto_transport::{Accept, AnyListener, ConnectionConfig, Endpoint, SocketOptions};
use netproto_transport_tls::{self_signed, TlsListener, TlsServerConfig, Validity};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::systems::{serve_peer, tcp_link, PeerMode, Result};
use crate::BenchError;

fn port_of(endpoint: &Endpoint) -> Result<u16> {
    match endpoint {
        Endpoint::Tcp { port, .. } | Endpoint::Tls { port, .. } => Ok(*port),
        other => Err(BenchError::Setup(format!(
            "expected a TCP or TLS endpoint, got {other}"
        ))),
    }
}

fn any(key: &Keypair) -> HandshakeConfig {
    HandshakeConfig::new(Some(key.clone()), Arc::new(AnyPeer))
}

/// Serves netproto connections from `listener` with echo peers.
fn echo_connections<A: Accept + 'static>(listener: A, key: &Keypair) -> (Endpoint, JoinHandle<()>) {
    let local = listener.local_endpoint().clone();
    let task = serve_connections(listener, ConnectionConfig::new(any(key)), |conn| {
        let (send, recv) = conn.split();
        serve_peer(crate::systems::netproto_halves(send, recv), PeerMode::Echo)
    });
    (local, task)
}

/// Serves a `Server` with an `ECHO` route from `listener`.
fn echo_service<A: Accept + 'static>(listener: A, key: &Keypair) -> (Endpoint, JoinHandle<()>) {
    let mut dispatcher = Dispatcher::new();
    dispatcher.register("ECHO", Ok);
    let local = listener.local_endpoint().clone();
    let cfg = ServerConfig::new(local.clone(), ConnectionConfig::new(any(key)));
    let service = Server::with_listener(listener, cfg, dispatcher);
    let task = tokio::spawn(async move {
        let _ = service.run().await;
    });
    (local, task)
}

async fn bind(endpoint: &str) -> Result<AnyListener> {
    Ok(AnyListener::bind(&endpoint.parse()?, SocketOptions::default()).await?)
}

/// TCP: returns the banner's part.
async fn serve_tcp(key: &Keypair, tasks: &mut Vec<JoinHandle<()>>) -> Result<String> {
    let (connections, task) = echo_connections(bind("tcp://127.0.0.1:0").await?, key);
    tasks.push(task);
    let (service, task) = echo_service(bind("tcp://127.0.0.1:0").await?, key);
    tasks.push(task);
    let raw = TcpListener::bind("127.0.0.1:0").await?;
    let raw_port = raw.local_addr()?.port();
    tasks.push(tokio::spawn(async move {
        while let Ok((s, _)) = raw.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(serve_peer(tcp_link(s), PeerMode::Echo));
        }
    }));
    Ok(format!(
        "PORT {} KEY {} SERVICE {} RAW {raw_port}",
        port_of(&connections)?,
        key.public(),
        port_of(&service)?
    ))
}

/// Unix sockets in `dir`: returns the banner's part.
#[cfg(unix)]
async fn serve_uds(key: &Keypair, dir: &Path, tasks: &mut Vec<JoinHandle<()>>) -> Result<String> {
    let unix = |name: &str| format!("unix://{}", dir.join(name).display());
    let (uds, task) = echo_connections(bind(&unix("conn.sock")).await?, key);
    tasks.push(task);
    let (uds_service, task) = echo_service(bind(&unix("service.sock")).await?, key);
    tasks.push(task);
    let raw_path = dir.join("raw.sock");
    let raw = tokio::net::UnixListener::bind(&raw_path)?;
    tasks.push(tokio::spawn(async move {
        while let Ok((s, _)) = raw.accept().await {
            tokio::spawn(serve_peer(crate::systems::uds_link(s), PeerMode::Echo));
        }
    }));
    let path = |e: &Endpoint| e.to_string().trim_start_matches("unix://").to_owned();
    Ok(format!(
        " UDS {} UDS_SERVICE {} UDS_RAW {}",
        path(&uds),
        path(&uds_service),
        raw_path.display()
    ))
}

/// TLS with a certificate written to `dir`: returns the banner's part.
async fn serve_tls(key: &Keypair, dir: &Path, tasks: &mut Vec<JoinHandle<()>>) -> Result<String> {
    let (cert, cert_key) = (dir.join("cert.pem"), dir.join("key.pem"));
    self_signed("localhost", &["localhost".into()], Validity::days(1))?.write(&cert, &cert_key)?;
    let tls = TlsServerConfig::new(&cert, &cert_key);
    let endpoint: Endpoint = "tls://127.0.0.1:0".parse()?;
    let (connections, task) = echo_connections(TlsListener::bind(&endpoint, &tls).await?, key);
    tasks.push(task);
    let (service, task) = echo_service(TlsListener::bind(&endpoint, &tls).await?, key);
    tasks.push(task);
    let (raw_cfg, _) = crate::systems::rustls_pair(
        &cert,
        &cert_key,
        rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
    )?;
    let raw = TcpListener::bind("127.0.0.1:0").await?;
    let raw_port = raw.local_addr()?.port();
    tasks.push(tokio::spawn(async move {
        while let Ok((s, _)) = raw.accept().await {
            let _ = s.set_nodelay(true);
            let acceptor = tokio_rustls::TlsAcceptor::from(raw_cfg.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(s).await {
                    serve_peer(crate::systems::framed_link(tls), PeerMode::Echo).await;
                }
            });
        }
    }));
    Ok(format!(
        " TLS {} TLS_SERVICE {} TLS_RAW {raw_port} CERT {}",
        port_of(&connections)?,
        port_of(&service)?,
        cert.display()
    ))
}

/// The child side: serves until its input closes.
///
/// # Errors
/// Binding a listener or writing the certificate fails.
pub async fn run_peer() -> std::result::Result<(), BenchError> {
    let key = Keypair::generate(&mut rand::rngs::OsRng);
    let dir = std::env::temp_dir().join(format!("netproto-bench-peer-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut tasks = Vec::new();
    let mut banner = serve_tcp(&key, &mut tasks).await?;
    #[cfg(unix)]
    banner.push_str(&serve_uds(&key, &dir, &mut tasks).await?);
    banner.push_str(&serve_tls(&key, &dir, &mut tasks).await?);
    println!("{banner}");
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    while stdin.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    for t in tasks {
        t.abort();
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// A running child peer; killed when dropped.
pub(crate) struct Peer {
    child: tokio::process::Child,
    pub(crate) pid: u32,
    pub(crate) key: PublicKey,
    /// netproto `Connection`s echoing.
    pub(crate) connections: Endpoint,
    /// A `Server` with an `ECHO` route.
    pub(crate) service: Endpoint,
    /// Raw TCP, `LengthDelimitedCodec`, echoing.
    pub(crate) raw: SocketAddr,
    /// The same three on Unix sockets, where there are any.
    pub(crate) uds: Option<(Endpoint, Endpoint, PathBuf)>,
    /// The same three over TLS, and the certificate to trust.
    pub(crate) tls: Option<TlsTargets>,
}

/// Where the child serves TLS.
pub(crate) struct TlsTargets {
    pub(crate) connections: Endpoint,
    pub(crate) service: Endpoint,
    pub(crate) raw: SocketAddr,
    pub(crate) cert: PathBuf,
}

impl Peer {
    /// Starts `peer_exe bench-peer` and reads its banner.
    pub(crate) async fn start(peer_exe: &Path) -> Result<Self> {
        let mut child = tokio::process::Command::new(peer_exe)
            .arg("bench-peer")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::Setup(format!("cannot start {}: {e}", peer_exe.display())))?;
        let pid = child.id().ok_or(BenchError::Closed)?;
        let stdout = child.stdout.take().ok_or(BenchError::Closed)?;
        let mut lines = BufReader::new(stdout).lines();
        let banner = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .map_err(|_| BenchError::Setup("the bench peer did not start".into()))??
            .ok_or(BenchError::Closed)?;
        let bad = || BenchError::Setup(format!("unexpected peer banner {banner:?}"));
        let words: Vec<&str> = banner.split_whitespace().collect();
        let field = |name: &str| {
            words
                .iter()
                .position(|w| *w == name)
                .and_then(|i| words.get(i + 1))
                .copied()
                .ok_or_else(bad)
        };
        let port = |name: &str| field(name)?.parse::<u16>().map_err(|_| bad());
        let key =
            PublicKey::from_base64(field("KEY")?).map_err(|e| BenchError::Setup(e.to_string()))?;
        let tcp = |p: u16| format!("tcp://127.0.0.1:{p}").parse::<Endpoint>();
        let unix = |name: &str| {
            field(name).and_then(|p| {
                format!("unix://{p}")
                    .parse::<Endpoint>()
                    .map_err(BenchError::from)
            })
        };
        let uds = match (unix("UDS"), unix("UDS_SERVICE"), field("UDS_RAW")) {
            (Ok(c), Ok(s), Ok(r)) => Some((c, s, PathBuf::from(r))),
            _ => None,
        };
        // The certificate names `localhost`; the client checks that name.
        let tls_at = |p: u16| format!("tls://127.0.0.1:{p}").parse::<Endpoint>();
        let tls = TlsTargets {
            connections: tls_at(port("TLS")?)?,
            service: tls_at(port("TLS_SERVICE")?)?,
            raw: SocketAddr::from(([127, 0, 0, 1], port("TLS_RAW")?)),
            cert: PathBuf::from(field("CERT")?),
        };
        Ok(Self {
            uds,
            tls: Some(tls),
            pid,
            key,
            connections: tcp(port("PORT")?)?,
            service: tcp(port("SERVICE")?)?,
            raw: SocketAddr::from(([127, 0, 0, 1], port("RAW")?)),
            child,
        })
    }

    /// Closes the child's input and waits (bounded) for it to end.
    pub(crate) async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}
