//! # netproto-testkit
//!
//! The test setup every netproto test, benchmark and harness shares, written
//! once: keys and connection configs, an in-memory connection pair and an
//! in-memory carrier (so the service runs without sockets), the "accept,
//! handshake, serve" loop, and an echo server that reports how each
//! connection ended. Not published.
//!
//! ```
//! use netproto_testkit::{memory_pair, Keys};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), netproto_transport::TransportError> {
//! let keys = Keys::new();
//! let (client, mut server) = memory_pair(keys.client_config(), keys.server_config()).await?;
//! client.send(b"ping".as_slice()).await?;
//! assert_eq!(&server.recv_frame().await?.payload[..], b"ping");
//! # Ok(())
//! # }
//! ```

mod cluster;
mod echo;
mod memory;
mod raw;
mod sim;
mod throttle;
mod udp;
mod vectors;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair, PeerVerifier, Pinned, PublicKey};
use netproto_transport::{Accept, Connection, ConnectionConfig};

pub use cluster::{cluster_addr, SimCluster};
pub use echo::{echo_server, echo_server_with, EchoServer};
pub use memory::{memory_carrier, memory_pair, MemoryDialer, MemoryListener};
pub use raw::{initiation, RawClient};
pub use sim::{LinkFaults, LinkStats, SimDatagram, SimLink};
pub use throttle::Throttled;
pub use udp::{addr as sim_addr, LossySocket, SimNet};
pub use vectors::{hex, spec_vectors, unhex, SpecVector};

/// A fresh random static key.
pub fn key() -> Keypair {
    Keypair::generate(&mut rand::rngs::OsRng)
}

/// A connection config around `key` and `verifier`, with a 5 s handshake
/// deadline (tests fail fast rather than hang).
pub fn config(key: Keypair, verifier: Arc<dyn PeerVerifier>) -> ConnectionConfig {
    let mut cfg = ConnectionConfig::new(HandshakeConfig::new(Some(key), verifier));
    cfg.handshake_timeout = Duration::from_secs(5);
    cfg
}

/// A server identity and configs for both ends: the server accepts anyone,
/// clients pin the server's key.
#[derive(Clone)]
pub struct Keys {
    server: Keypair,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new()
    }
}

impl Keys {
    /// A new random server identity.
    pub fn new() -> Self {
        Self { server: key() }
    }

    /// The server's public key.
    pub fn server_public(&self) -> PublicKey {
        *self.server.public()
    }

    /// The server's config (accepts any client key).
    pub fn server_config(&self) -> ConnectionConfig {
        config(self.server.clone(), Arc::new(AnyPeer))
    }

    /// A client config with a fresh client key, pinning the server.
    pub fn client_config(&self) -> ConnectionConfig {
        config(key(), Arc::new(Pinned(self.server_public())))
    }
}

/// Accepts connections until the acceptor fails, runs each handshake with
/// `cfg` (bound to the acceptor's endpoint) in its own task, and hands every
/// established connection to `serve`. Handshake failures are dropped
/// quietly (tests that care use [`echo_server`], which reports them).
pub fn serve_connections<A, F, Fut>(
    mut acceptor: A,
    cfg: ConnectionConfig,
    serve: F,
) -> tokio::task::JoinHandle<()>
where
    A: Accept + 'static,
    F: Fn(Connection) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let cfg = cfg.for_endpoint(acceptor.local_endpoint());
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok(incoming) = acceptor.accept().await {
            // Started out here, so the task holds only the boxed handshake
            // (freed once done), not a copy of `cfg` for its whole life.
            let establishing = incoming.establish(cfg.clone());
            let serve = serve.clone();
            tokio::spawn(async move {
                if let Ok(conn) = establishing.await {
                    serve(conn).await;
                }
            });
        }
    })
}
