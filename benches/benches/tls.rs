//! netproto over TLS next to plain tokio-rustls with `LengthDelimitedCodec`
//! (same rustls configurations, ring provider, same certificate), measured
//! in the same run: 64 B echo round trips, 64 KiB one-way bulk, and
//! sequential handshakes (TCP connect + TLS + netproto hello + one echo).
//!
//! Run with `cargo xtask criterion -- tls_` (or `cargo bench -p netproto-benches --bench tls`).

// Benchmark inputs are built here, not received: a failure is a bug to see at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// criterion_group! generates undocumented items.
#![allow(missing_docs)]

mod shared;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::{SinkExt, StreamExt};
use netproto_crypto::{AnyPeer, HandshakeConfig};
use netproto_testkit::serve_connections;
use netproto_transport::{ConnectionConfig, Endpoint, Listener, RecvHalf, SendHalf};
use netproto_transport_tls::{
    self_signed, TlsClientConfig, TlsConnector, TlsListener, TlsServerConfig, Validity,
};
use netproto_wire::Frame;
use shared::ACK_EVERY;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One certificate and the two rustls configurations both sides use.
struct Setup {
    dir: PathBuf,
    server: TlsServerConfig,
    server_rustls: Arc<rustls::ServerConfig>,
    client_rustls: Arc<rustls::ClientConfig>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn setup() -> Setup {
    let dir = std::env::temp_dir().join(format!("netproto-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    self_signed("localhost", &["localhost".into()], Validity::days(1))
        .unwrap()
        .write(&cert, &key)
        .unwrap();
    let server = TlsServerConfig::new(&cert, &key);
    Setup {
        server_rustls: server.build().unwrap(),
        client_rustls: TlsClientConfig::with_ca_file(&cert).build().unwrap(),
        server,
        dir,
    }
}

fn conn_cfg() -> ConnectionConfig {
    ConnectionConfig::new(HandshakeConfig::new(None, Arc::new(AnyPeer)))
}

/// A netproto-over-TLS server: echoes frames, or in bulk mode acknowledges
/// every `ack_every` frames. Returns the endpoint to dial.
async fn netproto_server(setup: &Setup, bulk_ack_every: Option<u64>) -> Endpoint {
    let listener = TlsListener::with_rustls(
        &"tls://127.0.0.1:0".parse().unwrap(),
        setup.server_rustls.clone(),
        &setup.server,
    )
    .await
    .unwrap();
    let Endpoint::Tls { port, .. } = listener.local_endpoint() else {
        unreachable!()
    };
    // Dial the address, verify the name, as the baseline does.
    let endpoint = format!("tls://127.0.0.1:{port}").parse().unwrap();
    serve_connections(listener, conn_cfg(), move |conn| {
        let (send, recv) = conn.split();
        shared::netproto_peer(send, recv, bulk_ack_every)
    });
    endpoint
}

async fn netproto_client(setup: &Setup, endpoint: &Endpoint) -> (SendHalf, RecvHalf) {
    let mut cfg = conn_cfg();
    cfg.dialer = Some(Arc::new(
        TlsConnector::with_rustls(setup.client_rustls.clone(), Duration::from_secs(10))
            .with_server_name("localhost")
            .unwrap(),
    ));
    netproto_transport::connect(endpoint, cfg)
        .await
        .unwrap()
        .split()
}

type RawTls = Framed<tokio_rustls::client::TlsStream<TcpStream>, LengthDelimitedCodec>;

/// The baseline: tokio-rustls with length-delimited framing.
async fn raw_server(setup: &Setup, bulk_ack_every: Option<u64>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(setup.server_rustls.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            s.set_nodelay(true).unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(s).await {
                    let framed = Framed::new(tls, LengthDelimitedCodec::new());
                    shared::framed_peer(framed, bulk_ack_every).await;
                }
            });
        }
    });
    addr
}

async fn raw_client(setup: &Setup, addr: std::net::SocketAddr) -> RawTls {
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let connector = tokio_rustls::TlsConnector::from(setup.client_rustls.clone());
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, s).await.unwrap();
    Framed::new(tls, LengthDelimitedCodec::new())
}

fn round_trips(c: &mut Criterion) {
    let rt = runtime();
    let setup = setup();
    let mut g = c.benchmark_group("tls_rtt_64B");
    let payload = Bytes::from_static(&[0x42; 64]);

    let mut raw = rt.block_on(async {
        let addr = raw_server(&setup, None).await;
        raw_client(&setup, addr).await
    });
    g.bench_function("tokio_rustls_length_delimited", |b| {
        b.iter_custom(|iters| rt.block_on(shared::framed_echo(&mut raw, &payload, iters)));
    });

    let (send, mut recv) = rt.block_on(async {
        let ep = netproto_server(&setup, None).await;
        netproto_client(&setup, &ep).await
    });
    g.bench_function("netproto_tls", |b| {
        b.iter_custom(|iters| {
            rt.block_on(shared::netproto_echo(&send, &mut recv, &payload, iters))
        });
    });
    g.finish();
}

const BULK: usize = 64 * 1024;

fn bulk(c: &mut Criterion) {
    let rt = runtime();
    let setup = setup();
    let mut g = c.benchmark_group("tls_bulk_64KiB");
    g.throughput(Throughput::Bytes((BULK as u64) * ACK_EVERY));
    g.measurement_time(Duration::from_secs(5));
    let payload = Bytes::from(vec![0x5a; BULK]);

    let mut raw = rt.block_on(async {
        let addr = raw_server(&setup, Some(ACK_EVERY)).await;
        raw_client(&setup, addr).await
    });
    g.bench_function("tokio_rustls_length_delimited", |b| {
        b.iter_custom(|iters| rt.block_on(shared::framed_bulk(&mut raw, &payload, iters)));
    });

    let (send, mut recv) = rt.block_on(async {
        let ep = netproto_server(&setup, Some(ACK_EVERY)).await;
        netproto_client(&setup, &ep).await
    });
    g.bench_function("netproto_tls", |b| {
        b.iter_custom(|iters| {
            rt.block_on(shared::netproto_bulk(&send, &mut recv, &payload, iters))
        });
    });
    g.finish();
}

fn handshakes(c: &mut Criterion) {
    let rt = runtime();
    let setup = setup();
    let mut g = c.benchmark_group("tls_handshake");
    g.measurement_time(Duration::from_secs(5));
    let payload = Bytes::from_static(&[0x42; 64]);

    let addr = rt.block_on(raw_server(&setup, None));
    g.bench_function("tokio_rustls_length_delimited", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut raw = raw_client(&setup, addr).await;
                    raw.send(payload.clone()).await.unwrap();
                    raw.next().await.unwrap().unwrap();
                }
                start.elapsed()
            })
        });
    });

    let ep = rt.block_on(netproto_server(&setup, None));
    g.bench_function("netproto_tls", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let (send, mut recv) = netproto_client(&setup, &ep).await;
                    send.send_frame(Frame::data(i, payload.clone()))
                        .await
                        .unwrap();
                    recv.recv_frame().await.unwrap();
                }
                start.elapsed()
            })
        });
    });
    g.finish();
}

criterion_group!(benches, round_trips, bulk, handshakes);
criterion_main!(benches);
