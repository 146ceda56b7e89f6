//! `netproto serve --metrics ADDR`: every metric the library records, in
//! the Prometheus text format, at `GET /metrics`.
//!
//! The format and the recorder come from `metrics-exporter-prometheus`
//! (without its HTTP features, which would pull in hyper and h2 for one
//! endpoint); the endpoint is a small HTTP/1.1 responder on our own
//! listener, so `ADDR` may use port 0 and the bound address is printed.
//! A scraper is an outside party: its request is bounded in bytes and
//! time, and only a few are served at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Scrapes answered at once; more wait in the listen backlog.
const MAX_SCRAPES: usize = 4;
/// A request head longer than this is refused (a scraper's is ~200 bytes).
const MAX_REQUEST: usize = 8 * 1024;
/// A scraper has this long to send its request and take the answer.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often histograms are folded into their summaries (the exporter's
/// own default).
const UPKEEP: Duration = Duration::from_secs(5);

/// Why the endpoint could not start.
#[derive(Debug)]
pub(crate) enum MetricsError {
    /// Another recorder is installed already.
    Recorder(String),
    /// The address could not be bound.
    Bind(std::io::Error),
}

impl std::fmt::Display for MetricsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Recorder(e) => write!(f, "cannot install the metrics recorder: {e}"),
            Self::Bind(e) => write!(f, "cannot listen for metrics scrapes: {e}"),
        }
    }
}

/// Installs the recorder and serves scrapes at `addr`; returns the bound
/// address.
pub(crate) async fn start(addr: SocketAddr) -> Result<SocketAddr, MetricsError> {
    let listener = TcpListener::bind(addr).await.map_err(MetricsError::Bind)?;
    let local = listener.local_addr().map_err(MetricsError::Bind)?;
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| MetricsError::Recorder(e.to_string()))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP).await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(serve(listener, handle));
    Ok(local)
}

async fn serve(listener: TcpListener, handle: PrometheusHandle) {
    let slots = Arc::new(Semaphore::new(MAX_SCRAPES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "metrics listener cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let answered = tokio::time::timeout(SCRAPE_TIMEOUT, answer(stream, &handle)).await;
            if !matches!(answered, Ok(Ok(()))) {
                tracing::debug!("metrics scrape not answered (slow, malformed or gone)");
            }
        });
    }
}

/// Reads one request head and answers it: `GET /metrics` (or `/`) gets the
/// text format, anything else 404 or 405.
async fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST {
            return respond(&mut stream, "431 Request Header Fields Too Large", "").await;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|b| *b == b' ');
    let (method, path) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    match (method, path) {
        (b"GET", b"/metrics" | b"/") => respond(&mut stream, "200 OK", &handle.render()).await,
        (b"GET", _) => respond(&mut stream, "404 Not Found", "metrics are at /metrics\n").await,
        _ => respond(&mut stream, "405 Method Not Allowed", "").await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
