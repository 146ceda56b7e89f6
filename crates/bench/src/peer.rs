//! The child server process (the `netproto` binary's hidden `bench-peer`
//! command) used by the workloads that must not share a process with their
//! client: W5 reads its memory on its own, W9 measures calls across
//! processes as a user's client and server would run.
//!
//! The child serves, on 127.0.0.1, until its standard input closes:
//! netproto over TCP with echo peers (`Connection` level), a `Server` with
//! an `ECHO` route (the service level), and raw tokio TCP with
//! `LengthDelimitedCodec` echo (the baseline), and prints one line,
//! `PORT <p> KEY <base64> SERVICE <p> RAW <p>`.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair, PublicKey};
use netproto_service::{Dispatcher, Server, ServerConfig};
use netproto_testkit::serve_connections;
use netproto_transport::{Accept, AnyListener, ConnectionConfig, Endpoint, SocketOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpListener;

use crate::systems::{serve_peer, tcp_link, PeerMode, Result};
use crate::BenchError;

fn tcp_port(endpoint: &Endpoint) -> Result<u16> {
    match endpoint {
        Endpoint::Tcp { port, .. } => Ok(*port),
        other => Err(BenchError::Setup(format!(
            "expected a TCP endpoint, got {other}"
        ))),
    }
}

/// The child side: serves until its input closes.
///
/// # Errors
/// Binding a listener fails.
pub async fn run_peer() -> std::result::Result<(), BenchError> {
    let key = Keypair::generate(&mut rand::rngs::OsRng);
    let public = *key.public();
    let any = |key: &Keypair| HandshakeConfig::new(Some(key.clone()), Arc::new(AnyPeer));

    let listener =
        AnyListener::bind(&"tcp://127.0.0.1:0".parse()?, SocketOptions::default()).await?;
    let port = tcp_port(Accept::local_endpoint(&listener))?;
    let connections = serve_connections(listener, ConnectionConfig::new(any(&key)), |conn| {
        let (send, recv) = conn.split();
        serve_peer(crate::systems::netproto_halves(send, recv), PeerMode::Echo)
    });

    let mut dispatcher = Dispatcher::new();
    dispatcher.register("ECHO", Ok);
    let service = Server::bind(
        ServerConfig::new(
            "tcp://127.0.0.1:0".parse()?,
            ConnectionConfig::new(any(&key)),
        ),
        dispatcher,
    )
    .await?;
    let service_port = tcp_port(service.handle().endpoint())?;
    let service = tokio::spawn(service.run());

    let raw = TcpListener::bind("127.0.0.1:0").await?;
    let raw_port = raw.local_addr()?.port();
    let raw = tokio::spawn(async move {
        while let Ok((s, _)) = raw.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(serve_peer(tcp_link(s), PeerMode::Echo));
        }
    });

    println!("PORT {port} KEY {public} SERVICE {service_port} RAW {raw_port}");
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    while stdin.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    connections.abort();
    service.abort();
    raw.abort();
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
    pub(crate) raw: std::net::SocketAddr,
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
        Ok(Self {
            pid,
            key,
            connections: tcp(port("PORT")?)?,
            service: tcp(port("SERVICE")?)?,
            raw: std::net::SocketAddr::from(([127, 0, 0, 1], port("RAW")?)),
            child,
        })
    }

    /// Closes the child's input and waits (bounded) for it to end.
    pub(crate) async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}
