//! An echo server that reports how each connection ended.

use std::sync::Arc;
use std::time::Duration;

use netproto_crypto::{AnyPeer, PeerVerifier, PublicKey};
use netproto_transport::{
    Accept, AnyListener, ConnectionConfig, Endpoint, SocketOptions, TransportError,
};
use tokio::sync::mpsc;

/// A running echo server; stops when dropped.
pub struct EchoServer {
    /// Where it listens.
    pub endpoint: Endpoint,
    /// Its public key (for clients to pin).
    pub server_key: PublicKey,
    /// How each connection ended: `Ok(frames echoed)` or the error (a
    /// failed handshake included).
    pub outcomes: mpsc::UnboundedReceiver<Result<usize, TransportError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoServer {
    /// Waits (at most 10 s) for the next connection's outcome.
    ///
    /// # Panics
    /// If none is reported in time (a test failure).
    #[allow(clippy::panic)]
    pub async fn next_outcome(&mut self) -> Result<usize, TransportError> {
        let waited = tokio::time::timeout(Duration::from_secs(10), self.outcomes.recv()).await;
        let Ok(received) = waited else {
            panic!("no connection outcome within 10 s")
        };
        let Some(outcome) = received else {
            panic!("echo server stopped")
        };
        outcome
    }
}

/// Accepts connections on `endpoint` (a `tcp://` or `unix://` string) and
/// echoes every frame back; `tune` adjusts each connection's config.
///
/// # Panics
/// If `endpoint` does not parse or bind (a test failure).
pub async fn echo_server(
    endpoint: &str,
    tune: impl Fn(&mut ConnectionConfig) + Send + Sync + 'static,
) -> EchoServer {
    echo_server_with(endpoint, Arc::new(AnyPeer), tune).await
}

/// As [`echo_server`], with a client verifier.
///
/// # Panics
/// As [`echo_server`].
#[allow(clippy::expect_used)]
pub async fn echo_server_with(
    endpoint: &str,
    verifier: Arc<dyn PeerVerifier>,
    tune: impl Fn(&mut ConnectionConfig) + Send + Sync + 'static,
) -> EchoServer {
    let server_key = crate::key();
    let public = *server_key.public();
    let endpoint = endpoint.parse().expect("a valid endpoint");
    let mut listener = AnyListener::bind(&endpoint, SocketOptions::default())
        .await
        .expect("the endpoint binds");
    let endpoint = Accept::local_endpoint(&listener).clone();
    let (tx, outcomes) = mpsc::unbounded_channel();
    let mut cfg = crate::config(server_key, verifier).for_endpoint(&endpoint);
    tune(&mut cfg);
    let task = tokio::spawn(async move {
        while let Ok(incoming) = Accept::accept(&mut listener).await {
            let cfg = cfg.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let result = async {
                    let conn = incoming.establish(cfg).await?;
                    let (send, mut recv) = conn.split();
                    let mut n = 0usize;
                    loop {
                        match recv.recv_frame().await {
                            Ok(f) => {
                                send.send_frame(f).await?;
                                n += 1;
                            }
                            Err(TransportError::ConnectionClosed { clean: true }) => {
                                let _ = send.close().await;
                                return Ok(n);
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                .await;
                let _ = tx.send(result);
            });
        }
    });
    EchoServer {
        endpoint,
        server_key: public,
        outcomes,
        task,
    }
}
