//! The datagram systems: raw tokio UDP (the floor for round trips: one
//! datagram each way, nothing else), quinn 0.11 (QUIC with rustls and ring,
//! a self-signed certificate, one bidirectional stream carrying
//! length-delimited messages, default transport settings), and netproto's
//! own UDP carrier — plus the lossy link of W8.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::systems::{
    serve_peer, BoxFuture, Fixture, FramedRx, FramedTx, Link, PeerMode, Result, Rx, Server, Target,
    Tx,
};
use crate::BenchError;

fn setup(e: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(e.to_string())
}

/// The UDP carrier's settings for the harness: the defaults, except the
/// per-source handshake rate (20/s, burst 5): every benchmark client comes
/// from 127.0.0.1, and W4 measures the handshake, not the rate limiter.
pub(crate) fn udp_config() -> netproto_transport_udp::UdpConfig {
    let mut cfg = netproto_transport_udp::UdpConfig::default();
    cfg.handshake.per_source_rate = 1_000_000;
    cfg.handshake.per_source_burst = 1_000_000;
    cfg
}

// ------------------------------------------------------------- raw UDP

struct UdpTx(Arc<UdpSocket>);
struct UdpRx(Arc<UdpSocket>, Vec<u8>);

impl Tx for UdpTx {
    fn send<'a>(&'a mut self, msg: &'a [u8]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.0.send(msg).await?;
            Ok(())
        })
    }
    fn flush(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

impl Rx for UdpRx {
    fn recv(&mut self) -> BoxFuture<'_, Result<usize>> {
        Box::pin(async move { Ok(self.0.recv(&mut self.1).await?) })
    }
}

/// A raw UDP socket that sends every datagram back.
pub(crate) async fn raw_udp_echo() -> Result<Server> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let addr = socket.local_addr()?;
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    Ok(Server {
        target: Target::Udp(addr),
        task,
    })
}

/// A raw UDP socket connected to `addr`.
pub(crate) async fn raw_udp_connect(addr: SocketAddr) -> Result<Link> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(addr).await?;
    let socket = Arc::new(socket);
    Ok(Link {
        tx: Box::new(UdpTx(socket.clone())),
        rx: Box::new(UdpRx(socket, vec![0u8; 65_536])),
    })
}

// --------------------------------------------------------------- quinn

/// quinn's server and client settings for the fixture's certificate
/// (TLS 1.3, the ring provider's suites; QUIC needs AES-128-GCM for its
/// initial packets).
pub(crate) fn quinn_configs(
    cert: &Path,
    key: &Path,
) -> Result<(quinn::ServerConfig, quinn::ClientConfig)> {
    use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(
            netproto_transport_tls::load_certs(cert)?,
            netproto_transport_tls::load_private_key(key)?,
        )?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(netproto_transport_tls::load_roots(cert)?)
        .with_no_client_auth();
    Ok((
        quinn::ServerConfig::with_crypto(Arc::new(
            QuicServerConfig::try_from(server).map_err(setup)?,
        )),
        quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(client).map_err(setup)?)),
    ))
}

/// The sending side over a quinn stream; holds the connection and the
/// endpoint so they live as long as the link.
struct QuinnTx {
    inner: FramedTx<quinn::SendStream>,
    _conn: quinn::Connection,
    _endpoint: Option<quinn::Endpoint>,
}

impl Tx for QuinnTx {
    fn send<'a>(&'a mut self, msg: &'a [u8]) -> BoxFuture<'a, Result<()>> {
        self.inner.send(msg)
    }
    fn flush(&mut self) -> BoxFuture<'_, Result<()>> {
        self.inner.flush()
    }
}

fn quinn_link(
    conn: quinn::Connection,
    endpoint: Option<quinn::Endpoint>,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
) -> Link {
    Link {
        tx: Box::new(QuinnTx {
            inner: FramedTx(FramedWrite::new(send, LengthDelimitedCodec::new())),
            _conn: conn,
            _endpoint: endpoint,
        }),
        rx: Box::new(FramedRx(FramedRead::new(recv, LengthDelimitedCodec::new()))),
    }
}

/// A quinn endpoint serving each connection's first stream in `mode`.
pub(crate) fn quinn_server(fx: &Fixture, mode: PeerMode) -> Result<Server> {
    let endpoint = quinn::Endpoint::server(fx.quinn.0.clone(), ([127, 0, 0, 1], 0).into())?;
    let addr = endpoint.local_addr()?;
    let task = tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                let Ok((send, recv)) = conn.accept_bi().await else {
                    return;
                };
                serve_peer(quinn_link(conn, None, send, recv), mode).await;
            });
        }
    });
    Ok(Server {
        target: Target::Udp(addr),
        task,
    })
}

/// A quinn client (an endpoint of its own), connected, with one stream open.
pub(crate) async fn quinn_connect(fx: &Fixture, addr: SocketAddr) -> Result<Link> {
    let endpoint = quinn::Endpoint::client(([127, 0, 0, 1], 0).into())?;
    let conn = endpoint
        .connect_with(fx.quinn.1.clone(), addr, "localhost")
        .map_err(setup)?
        .await
        .map_err(setup)?;
    let (send, recv) = conn.open_bi().await.map_err(setup)?;
    Ok(quinn_link(conn, Some(endpoint), send, recv))
}

// ------------------------------------------------------------ lossy link

/// A netproto-udp server and a connected client, each on a socket that
/// drops `loss` of the datagrams it sends (fixed seeds); the server serves
/// in `mode`. Returns the server (dropping it stops it), the client's
/// endpoint (keep it alive) and the link.
pub(crate) async fn lossy_netproto_udp(
    fx: &Arc<Fixture>,
    loss: f64,
    mode: PeerMode,
) -> Result<(Server, netproto_transport_udp::UdpEndpoint, Link)> {
    use netproto_testkit::LossySocket;
    use netproto_transport_udp::{UdpEndpoint, UdpListener};
    let cfg = udp_config();
    let linger = cfg.retransmit.deadline;
    let server_socket = LossySocket::bind(loss, 0x5eed_0001).await?;
    let server_endpoint = UdpEndpoint::with_socket(
        server_socket,
        cfg.clone(),
        Some(fx.netproto_server_handshake()),
    )?;
    let addr = server_endpoint.local_addr();
    let server =
        crate::systems::netproto_server(UdpListener::new(server_endpoint, linger), fx, mode);
    let client_socket = LossySocket::bind(loss, 0x5eed_0002).await?;
    let client = UdpEndpoint::with_socket(client_socket, cfg, None)?;
    let conn = client
        .connect(addr, fx.netproto_client_handshake())
        .await?
        .into_connection(linger);
    Ok((server, client, crate::systems::netproto_link(conn)))
}
