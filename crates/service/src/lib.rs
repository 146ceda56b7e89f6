//! # netproto-service
//!
//! What applications write against: a [`Server`] daemon that serves many
//! clients through a [`Dispatcher`], and a [`Client`] that multiplexes any
//! number of concurrent calls over one secure connection.
//!
//! * Routing by opcode string (`"PING"`, `"ECHO"`, custom commands), sync and
//!   async handlers, typed serde routes in postcard or JSON
//!   ([`Dispatcher::route_with`], [`Client::request`], [`Codec`]); unknown
//!   opcodes, undecodable payloads, failing and panicking handlers are answered
//!   with ERR and never take the connection down.
//! * tower middleware around routes ([`Dispatcher::layer`],
//!   [`Dispatcher::service`]: timeouts, concurrency limits, load shedding)
//!   and the client as a `tower::Service` ([`Client::service`]).
//! * The service consumes connections, not streams: a [`Server`] serves
//!   anything that accepts connections (`netproto_transport::Accept`: TCP,
//!   Unix sockets, TLS, an in-memory carrier in tests), a [`Client`] dials
//!   through the configured `netproto_transport::Dial`.
//! * `max_connections`, per-connection `backpressure_limit` (the server stops
//!   reading instead of queueing), dead-peer cleanup (the connection core's
//!   keep-alive and idle deadline, set from `heartbeat_interval` and
//!   `connection_timeout`), graceful shutdown (GOAWAY, drain with a
//!   deadline).
//! * GOAWAY honoured by the client: no new call on that connection, calls
//!   the server did not take are sent again on a new one
//!   ([`ServiceError::GoingAway`] without auto-reconnect).
//! * Auto-reconnect with backoff and jitter, a [`ConnectionPool`] with
//!   transport-level health checks (a PING the peer's core answers) and a
//!   circuit breaker.
//! * `tracing` spans and `metrics` counters; the library installs neither a
//!   subscriber nor a recorder.
//!
//! ## Example
//!
//! ```
//! use std::sync::Arc;
//! use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair, Pinned};
//! use netproto_service::{Client, ClientConfig, Dispatcher, Server, ServerConfig};
//! use netproto_transport::ConnectionConfig;
//! use netproto_wire::Message;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), netproto_service::ServiceError> {
//! let server_key = Keypair::generate(&mut rand::rngs::OsRng);
//! let server_pub = *server_key.public();
//! let mut dispatcher = Dispatcher::new();
//! dispatcher.register("PING", |_| Ok(Message::Pong));
//! dispatcher.register("ECHO", |msg| Ok(msg));
//!
//! let conn = ConnectionConfig::new(HandshakeConfig::new(Some(server_key), Arc::new(AnyPeer)));
//! let server = Server::bind(ServerConfig::new("tcp://127.0.0.1:0".parse()?, conn), dispatcher).await?;
//! let handle = server.handle();
//! let running = tokio::spawn(server.run());
//!
//! let client_key = Keypair::generate(&mut rand::rngs::OsRng);
//! let conn = ConnectionConfig::new(HandshakeConfig::new(Some(client_key), Arc::new(Pinned(server_pub))));
//! let client = Client::connect(handle.endpoint(), ClientConfig::new(conn)).await?;
//! assert_eq!(client.call(Message::Ping).await?, Message::Pong);
//! assert_eq!(client.call(Message::Echo("hi".into())).await?, Message::Echo("hi".into()));
//!
//! client.close().await?;
//! handle.shutdown(None);
//! running.await.expect("server task")?;
//! # Ok(())
//! # }
//! ```

mod admission;
mod client;
mod client_service;
mod codec;
mod config;
mod dispatcher;
mod error;
mod extension;
mod log_limit;
mod middleware;
mod payload;
mod pool;
mod reconnect;
mod server;

pub use client::{Client, ClientStats};
pub use client_service::ClientService;
pub use codec::{Codec, CodecError, Direction};
pub use config::{ClientConfig, ServerConfig};
pub use dispatcher::{decode_response, encode_request, Dispatcher, HandlerFuture};
pub use error::{HandlerError, Result, ServiceError, MAX_ERR_REASON};
pub use extension::ExtensionHandler;
pub use middleware::{BoxError, RouteService};
pub use pool::{CircuitState, ConnectionPool, PoolConfig, PoolStats, PooledClient};
pub use server::{Server, ServerHandle};
/// The tower version this crate's layers and [`ClientService`] are built
/// on: use it (or the same version) for `ServiceBuilder` and layers.
pub use tower;
