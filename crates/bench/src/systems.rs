//! The systems under test — netproto over TCP, Unix sockets, TLS and UDP,
//! and the baselines written here: raw tokio TCP/UDS with
//! `LengthDelimitedCodec`, `snow` Noise_XX over TCP (u16 framing, one record
//! per message), tokio-rustls with the AES-256-GCM or the ChaCha20-Poly1305
//! suite, raw tokio UDP and quinn (the datagram systems are in
//! `datagram.rs`) — all behind one message interface so every workload
//! times them the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair, Pattern, Pinned, PublicKey};
use netproto_testkit::serve_connections;
use netproto_transport::{Accept, AnyListener, ConnectionConfig, Endpoint, SocketOptions};
use netproto_transport_tls::{
    self_signed, TlsClientConfig, TlsConnector, TlsListener, TlsServerConfig, Validity,
};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};

#[cfg(unix)]
pub(crate) use crate::links::uds_link;
pub(crate) use crate::links::{
    framed_link, netproto_halves, netproto_link, tcp_link, FramedRx, FramedTx,
};
use crate::links::{snow_builder, snow_handshake};
use crate::BenchError;
use rustls::crypto::ring::cipher_suite as suites;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub(crate) type Result<T, E = BenchError> = std::result::Result<T, E>;

/// The sending side of a message link.
pub(crate) trait Tx: Send {
    /// Queues one message (it may wait in a buffer until [`Tx::flush`]).
    fn send<'a>(&'a mut self, msg: &'a [u8]) -> BoxFuture<'a, Result<()>>;
    /// Pushes queued messages out.
    fn flush(&mut self) -> BoxFuture<'_, Result<()>>;
}

/// The receiving side: the next message's length. Cancel-safe (partial
/// input stays buffered), so peers can poll it opportunistically.
pub(crate) trait Rx: Send {
    fn recv(&mut self) -> BoxFuture<'_, Result<usize>>;
}

pub(crate) struct Link {
    pub(crate) tx: Box<dyn Tx>,
    pub(crate) rx: Box<dyn Rx>,
}

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub enum System {
    /// Raw tokio TCP, `LengthDelimitedCodec` (the floor).
    RawTcp,
    /// Raw tokio Unix socket, `LengthDelimitedCodec`.
    RawUds,
    /// snow Noise_XX_25519_ChaChaPoly_SHA256 over TCP, u16 framing.
    Snow,
    /// tokio-rustls, TLS 1.3 TLS_AES_256_GCM_SHA384, `LengthDelimitedCodec`.
    RustlsAes,
    /// tokio-rustls, TLS 1.3 TLS_CHACHA20_POLY1305_SHA256.
    RustlsChaCha,
    /// netproto over TCP (Noise XX, the default cipher: AESGCM on a CPU
    /// with AES instructions, else ChaChaPoly).
    NetprotoTcp,
    /// netproto over TCP with the client choosing ChaChaPoly (the other
    /// cipher on a CPU with AES instructions; the same as `netproto-tcp`
    /// elsewhere).
    NetprotoTcpChaCha,
    /// netproto over a Unix socket (Noise XX).
    NetprotoUds,
    /// netproto over TLS (rustls defaults, no Noise inside).
    NetprotoTls,
    /// Raw tokio UDP, one datagram per message (round trips only).
    RawUdp,
    /// quinn 0.11 (QUIC, rustls with ring), one bidirectional stream,
    /// `LengthDelimitedCodec`.
    Quinn,
    /// netproto over UDP (Noise XX, ordered reliable messages).
    NetprotoUdp,
    /// netproto's service over TCP: `Client::call` to a `Server` (W9).
    NetprotoClient,
}

impl System {
    /// Every system, baselines first.
    pub const ALL: [Self; 13] = [
        Self::RawTcp,
        Self::RawUds,
        Self::Snow,
        Self::RustlsAes,
        Self::RustlsChaCha,
        Self::RawUdp,
        Self::Quinn,
        Self::NetprotoTcp,
        Self::NetprotoTcpChaCha,
        Self::NetprotoUds,
        Self::NetprotoTls,
        Self::NetprotoUdp,
        Self::NetprotoClient,
    ];

    /// The stable key used in tables and JSON.
    pub fn key(self) -> &'static str {
        match self {
            Self::RawTcp => "raw-tcp",
            Self::RawUds => "raw-uds",
            Self::Snow => "snow-tcp",
            Self::RustlsAes => "rustls-aes",
            Self::RustlsChaCha => "rustls-chacha",
            Self::NetprotoTcp => "netproto-tcp",
            Self::NetprotoTcpChaCha => "netproto-tcp-chacha",
            Self::NetprotoUds => "netproto-uds",
            Self::NetprotoTls => "netproto-tls",
            Self::RawUdp => "raw-udp",
            Self::Quinn => "quinn",
            Self::NetprotoUdp => "netproto-udp",
            Self::NetprotoClient => "netproto-client",
        }
    }

    /// Whether this system runs `workload`: raw UDP only the round trip
    /// (it has no delivery guarantee to measure anything else with); the
    /// 1 MiB workload (W7) runs on the floor, the two UDP systems and
    /// netproto over TCP; W8 (loss) on netproto over UDP alone; W9 (calls
    /// to a child process) on raw TCP and Unix sockets and tokio-rustls,
    /// bare netproto connections over the three and netproto's `Client`,
    /// which runs nothing else.
    pub fn runs(self, workload: &str) -> bool {
        if self == Self::NetprotoClient {
            return workload == "W9";
        }
        match workload {
            "W1" => true,
            "W2" | "W3" | "W4" => self != Self::RawUdp,
            "W7" => matches!(
                self,
                Self::RawTcp | Self::Quinn | Self::NetprotoTcp | Self::NetprotoUdp
            ),
            "W9" => matches!(
                self,
                Self::RawTcp
                    | Self::RawUds
                    | Self::RustlsAes
                    | Self::NetprotoTcp
                    | Self::NetprotoUds
                    | Self::NetprotoTls
            ),
            _ => false,
        }
    }

    /// Whether this is one of ours (the others are baselines).
    pub fn is_netproto(self) -> bool {
        matches!(
            self,
            Self::NetprotoTcp
                | Self::NetprotoTcpChaCha
                | Self::NetprotoUds
                | Self::NetprotoTls
                | Self::NetprotoUdp
                | Self::NetprotoClient
        )
    }
}

/// What a server peer does with what it receives.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PeerMode {
    /// Send every message back.
    Echo,
    /// Count bytes; send a 4-byte acknowledgement per `ack_bytes`.
    Sink { ack_bytes: u64 },
}

/// Keys, certificates and TLS configurations shared by a whole run.
pub(crate) struct Fixture {
    dir: PathBuf,
    server_key: Keypair,
    server_pub: PublicKey,
    tls_server: TlsServerConfig,
    netproto_tls_server: Arc<rustls::ServerConfig>,
    netproto_tls_client: Arc<rustls::ClientConfig>,
    aes: (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>),
    chacha: (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>),
    snow_server: Vec<u8>,
    pub(crate) quinn: (quinn::ServerConfig, quinn::ClientConfig),
    next_socket: std::sync::atomic::AtomicU64,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn rustls_pair(
    cert: &std::path::Path,
    key: &std::path::Path,
    suite: rustls::SupportedCipherSuite,
) -> Result<(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>)> {
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![suite],
        ..rustls::crypto::ring::default_provider()
    });
    let chain = netproto_transport_tls::load_certs(cert)?;
    let private = netproto_transport_tls::load_private_key(key)?;
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, private)?;
    Ok((Arc::new(server), rustls_client(cert, suite)?))
}

/// A tokio-rustls client of `suite` that trusts the certificate `cert`.
pub(crate) fn rustls_client(
    cert: &std::path::Path,
    suite: rustls::SupportedCipherSuite,
) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![suite],
        ..rustls::crypto::ring::default_provider()
    });
    let roots = netproto_transport_tls::load_roots(cert)?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(client))
}

impl Fixture {
    pub(crate) fn new() -> Result<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("netproto-bench-{}-{id}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| BenchError::Setup(e.to_string()))?;
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        self_signed("localhost", &["localhost".into()], Validity::days(1))?.write(&cert, &key)?;
        let tls_server = TlsServerConfig::new(&cert, &key);
        let server_key = Keypair::generate(&mut rand::rngs::OsRng);
        let snow_server = snow_builder()
            .generate_keypair()
            .map_err(|e| BenchError::Setup(e.to_string()))?
            .private;
        Ok(Self {
            server_pub: *server_key.public(),
            server_key,
            netproto_tls_server: tls_server.build()?,
            netproto_tls_client: TlsClientConfig::with_ca_file(&cert).build()?,
            aes: rustls_pair(&cert, &key, suites::TLS13_AES_256_GCM_SHA384)?,
            chacha: rustls_pair(&cert, &key, suites::TLS13_CHACHA20_POLY1305_SHA256)?,
            quinn: crate::datagram::quinn_configs(&cert, &key)?,
            tls_server,
            snow_server,
            next_socket: std::sync::atomic::AtomicU64::new(0),
            dir,
        })
    }

    fn socket_path(&self) -> PathBuf {
        let n = self
            .next_socket
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.dir.join(format!("s{n}.sock"))
    }

    pub(crate) fn server_key(&self) -> &Keypair {
        &self.server_key
    }

    pub(crate) fn netproto_client_cfg(&self, transport: &Endpoint) -> Result<ConnectionConfig> {
        let mut cfg = ConnectionConfig::new(HandshakeConfig::new(
            Some(Keypair::generate(&mut rand::rngs::OsRng)),
            Arc::new(Pinned(self.server_pub)),
        ));
        if matches!(transport, Endpoint::Tls { .. }) {
            // Dial the address, check the certificate's name.
            let connector = TlsConnector::with_rustls(
                self.netproto_tls_client.clone(),
                Duration::from_secs(10),
            )
            .with_server_name("localhost")?;
            cfg.dialer = Some(Arc::new(connector));
        }
        if matches!(transport, Endpoint::Udp { .. }) {
            cfg.dialer = Some(Arc::new(netproto_transport_udp::UdpDialer::new(
                crate::datagram::udp_config(),
            )));
        }
        Ok(cfg.for_endpoint(transport))
    }

    pub(crate) fn netproto_client_handshake(&self) -> HandshakeConfig {
        HandshakeConfig::new(
            Some(Keypair::generate(&mut rand::rngs::OsRng)),
            Arc::new(Pinned(self.server_pub)),
        )
    }

    pub(crate) fn netproto_server_handshake(&self) -> HandshakeConfig {
        HandshakeConfig::new(Some(self.server_key.clone()), Arc::new(AnyPeer))
    }

    pub(crate) fn netproto_server_cfg(&self, endpoint: &Endpoint) -> ConnectionConfig {
        ConnectionConfig::new(HandshakeConfig::new(
            Some(self.server_key.clone()),
            Arc::new(AnyPeer),
        ))
        .for_endpoint(endpoint)
    }
}

// ---------------------------------------------------------------- peers

/// Serves one link: echoes (flushing once per burst of already-arrived
/// messages, the same policy for every system) or sinks with acks.
pub(crate) async fn serve_peer(mut link: Link, mode: PeerMode) {
    let mut scratch = Vec::new();
    let mut received = 0u64;
    loop {
        let Ok(n) = link.rx.recv().await else { return };
        match mode {
            PeerMode::Echo => {
                if n > scratch.len() {
                    scratch.resize(n, 0);
                }
                if link.tx.send(&scratch[..n]).await.is_err() {
                    return;
                }
                while let Some(more) = link.rx.recv().now_or_never() {
                    let Ok(n) = more else { return };
                    if n > scratch.len() {
                        scratch.resize(n, 0);
                    }
                    if link.tx.send(&scratch[..n]).await.is_err() {
                        return;
                    }
                }
                if link.tx.flush().await.is_err() {
                    return;
                }
            }
            PeerMode::Sink { ack_bytes } => {
                received += n as u64;
                while received >= ack_bytes {
                    received -= ack_bytes;
                    if link.tx.send(&[0; 4]).await.is_err() || link.tx.flush().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// A listening server for one system; stops when dropped.
pub(crate) struct Server {
    pub(crate) target: Target,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where a server listens.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Tcp(SocketAddr),
    #[cfg(unix)]
    Uds(PathBuf),
    Netproto(Endpoint),
    /// A raw UDP echo socket, or a quinn endpoint.
    Udp(SocketAddr),
}

fn spawn_peer(link: Link, mode: PeerMode) {
    tokio::spawn(serve_peer(link, mode));
}

/// Accepts netproto connections on `listener`, each served in `mode`.
pub(crate) fn netproto_server<A: Accept + 'static>(
    listener: A,
    fx: &Fixture,
    mode: PeerMode,
) -> Server {
    let local = listener.local_endpoint().clone();
    let cfg = fx.netproto_server_cfg(&local);
    let task = serve_connections(listener, cfg, move |conn| {
        serve_peer(netproto_link(conn), mode)
    });
    Server {
        target: Target::Netproto(local),
        task,
    }
}

/// A netproto-over-TCP echo server whose handshakes run `pattern` (W4's
/// pattern rows); IK gets the replay guard it needs.
pub(crate) async fn netproto_pattern_server(fx: &Fixture, pattern: Pattern) -> Result<Server> {
    let listener =
        AnyListener::bind(&"tcp://127.0.0.1:0".parse()?, SocketOptions::default()).await?;
    let local = listener.local_endpoint().clone();
    let mut cfg = fx.netproto_server_cfg(&local);
    cfg.handshake.pattern = pattern;
    if pattern == Pattern::IK {
        cfg.timestamp_guard = Some(Arc::new(std::sync::Mutex::new(
            netproto_crypto::TimestampGuard::default(),
        )));
    }
    let task = serve_connections(listener, cfg, move |conn| {
        serve_peer(netproto_link(conn), PeerMode::Echo)
    });
    Ok(Server {
        target: Target::Netproto(local),
        task,
    })
}

/// Connects to a [`netproto_pattern_server`] with `pattern` (the client
/// knows the server's key; NK's client has none of its own).
pub(crate) async fn netproto_pattern_connect(
    fx: &Fixture,
    pattern: Pattern,
    target: &Target,
) -> Result<Link> {
    let Target::Netproto(ep) = target else {
        return Err(BenchError::Setup(format!(
            "not a netproto server: {target:?}"
        )));
    };
    let mut cfg = fx.netproto_client_cfg(ep)?;
    cfg.handshake.pattern = pattern;
    cfg.handshake.remote_key = Some(fx.server_pub);
    if !pattern.initiator_has_static() {
        cfg.handshake.local_key = None;
    }
    Ok(netproto_link(netproto_transport::connect(ep, cfg).await?))
}

/// Starts a server for `system` whose connections are served in `mode`.
#[allow(clippy::too_many_lines)] // one arm per system, each short
pub(crate) async fn listen(system: System, fx: &Arc<Fixture>, mode: PeerMode) -> Result<Server> {
    let fx = fx.clone();
    match system {
        System::RawTcp | System::Snow | System::RustlsAes | System::RustlsChaCha => {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let task = tokio::spawn(async move {
                while let Ok((s, _)) = listener.accept().await {
                    let _ = s.set_nodelay(true);
                    let fx = fx.clone();
                    tokio::spawn(async move {
                        let link = match system {
                            System::RawTcp => Some(tcp_link(s)),
                            System::Snow => snow_handshake(s, false, &fx.snow_server).await.ok(),
                            _ => {
                                let cfg = if system == System::RustlsAes {
                                    fx.aes.0.clone()
                                } else {
                                    fx.chacha.0.clone()
                                };
                                let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                                acceptor.accept(s).await.ok().map(framed_link)
                            }
                        };
                        if let Some(link) = link {
                            serve_peer(link, mode).await;
                        }
                    });
                }
            });
            Ok(Server {
                target: Target::Tcp(addr),
                task,
            })
        }
        #[cfg(unix)]
        System::RawUds => {
            let path = fx.socket_path();
            let listener = tokio::net::UnixListener::bind(&path)?;
            let task = tokio::spawn(async move {
                while let Ok((s, _)) = listener.accept().await {
                    spawn_peer(uds_link(s), mode);
                }
            });
            Ok(Server {
                target: Target::Uds(path),
                task,
            })
        }
        System::NetprotoTcp | System::NetprotoTcpChaCha | System::NetprotoUds => {
            let endpoint: Endpoint = if system == System::NetprotoUds {
                format!("unix://{}", fx.socket_path().display()).parse()?
            } else {
                "tcp://127.0.0.1:0".parse()?
            };
            let listener = AnyListener::bind(&endpoint, SocketOptions::default()).await?;
            Ok(netproto_server(listener, &fx, mode))
        }
        System::NetprotoTls => {
            let listener = TlsListener::with_rustls(
                &"tls://127.0.0.1:0".parse()?,
                fx.netproto_tls_server.clone(),
                &fx.tls_server,
            )
            .await?;
            Ok(netproto_server(listener, &fx, mode))
        }
        System::RawUdp => crate::datagram::raw_udp_echo().await,
        System::Quinn => crate::datagram::quinn_server(&fx, mode),
        System::NetprotoUdp => {
            let listener = netproto_transport_udp::UdpListener::bind(
                &"udp://127.0.0.1:0".parse()?,
                crate::datagram::udp_config(),
                fx.netproto_server_handshake(),
            )
            .await?;
            Ok(netproto_server(listener, &fx, mode))
        }
        System::NetprotoClient => Err(BenchError::Setup(
            "netproto-client runs against the child peer's Server (W9)".into(),
        )),
        #[cfg(not(unix))]
        System::RawUds => Err(BenchError::Setup(
            "Unix sockets are not available here".into(),
        )),
    }
}

/// Connects a client of `system` to `server` (handshake included).
pub(crate) async fn connect(system: System, fx: &Fixture, target: &Target) -> Result<Link> {
    match (system, target) {
        (System::RawTcp, Target::Tcp(addr)) => {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(tcp_link(s))
        }
        #[cfg(unix)]
        (System::RawUds, Target::Uds(path)) => {
            Ok(uds_link(tokio::net::UnixStream::connect(path).await?))
        }
        (System::Snow, Target::Tcp(addr)) => {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            let key = snow_builder()
                .generate_keypair()
                .map_err(|e| BenchError::Snow(e.to_string()))?
                .private;
            snow_handshake(s, true, &key).await
        }
        (System::RustlsAes | System::RustlsChaCha, Target::Tcp(addr)) => {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            let cfg = if system == System::RustlsAes {
                fx.aes.1.clone()
            } else {
                fx.chacha.1.clone()
            };
            let name = rustls::pki_types::ServerName::try_from("localhost")
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, s)
                .await?;
            Ok(framed_link(tls))
        }
        (System::RawUdp, Target::Udp(addr)) => crate::datagram::raw_udp_connect(*addr).await,
        (System::Quinn, Target::Udp(addr)) => crate::datagram::quinn_connect(fx, *addr).await,
        (
            System::NetprotoTcp
            | System::NetprotoTcpChaCha
            | System::NetprotoUds
            | System::NetprotoTls
            | System::NetprotoUdp,
            Target::Netproto(ep),
        ) => {
            let mut cfg = fx.netproto_client_cfg(ep)?;
            if system == System::NetprotoTcpChaCha {
                cfg.handshake.cipher = netproto_crypto::CipherSuite::ChaChaPoly;
            }
            let conn = netproto_transport::connect(ep, cfg).await?;
            Ok(netproto_link(conn))
        }
        _ => Err(BenchError::Setup(format!(
            "{} cannot connect to {target:?}",
            system.key()
        ))),
    }
}
