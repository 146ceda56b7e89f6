//! Service-layer helpers: a server with test handlers, clients for it.

use std::sync::Arc;
use std::time::Duration;

use netproto_crypto::{AnyPeer, Keypair, Pinned};
use netproto_service::{
    Client, ClientConfig, Dispatcher, HandlerError, Server, ServerConfig, ServerHandle,
};
use netproto_transport::{Accept, AnyListener, ConnectionConfig, SocketOptions};
use netproto_transport_udp::{UdpConfig, UdpDialer, UdpListener};
use netproto_wire::Message;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Add {
    pub a: i64,
    pub b: i64,
}

pub fn dispatcher() -> Dispatcher {
    let mut d = Dispatcher::new();
    d.register("PING", |_| Ok(Message::Pong));
    d.register("ECHO", Ok);
    d.register("PANIC", |_| panic!("handler bug"));
    d.register("FAIL", |_| Err(HandlerError::internal("nope")));
    d.register_async("SLOW", |msg| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(msg)
    });
    d.route::<Add, i64, _, _>("ADD", |req| async move { Ok(req.a + req.b) });
    // A reply of 2 MiB, whatever the request: more than a client with
    // default UDP limits (1 MiB) or a 64 KiB TCP limit accepts.
    d.register("BIG", |_| Ok(Message::Data(vec![7; 2 * 1024 * 1024])));
    d
}

/// What the service runs over in a parameterised test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    Tcp,
    Udp,
}

impl Carrier {
    /// Where a test server listens.
    pub fn address(self) -> netproto_transport::Endpoint {
        match self {
            Self::Tcp => "tcp://127.0.0.1:0",
            Self::Udp => "udp://127.0.0.1:0",
        }
        .parse()
        .unwrap()
    }

    /// Binds `address` for this carrier.
    pub async fn bind(
        self,
        address: &netproto_transport::Endpoint,
        key: &Keypair,
    ) -> Box<dyn Accept> {
        match self {
            Self::Tcp => Box::new(
                AnyListener::bind(address, SocketOptions::default())
                    .await
                    .unwrap(),
            ),
            Self::Udp => {
                // A stopped server's endpoint releases its socket from its
                // own task, just after `run()` returns: a restart on the
                // same port waits for it (bounded).
                let mut tries = 0;
                loop {
                    let bound = UdpListener::bind(
                        address,
                        udp_server_config(),
                        netproto_crypto::HandshakeConfig::new(Some(key.clone()), Arc::new(AnyPeer)),
                    )
                    .await;
                    match bound {
                        Err(netproto_transport::TransportError::Io {
                            kind: std::io::ErrorKind::AddrInUse,
                            ..
                        }) if tries < 100 => {
                            tries += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        other => break Box::new(other.unwrap()),
                    }
                }
            }
        }
    }

    /// A client configuration for this carrier (UDP: a dialer of its own).
    pub fn client_config(self, server_key: netproto_crypto::PublicKey) -> ClientConfig {
        let mut cfg = ClientConfig::new(ConnectionConfig::new(
            netproto_crypto::HandshakeConfig::new(Some(super::key()), Arc::new(Pinned(server_key))),
        ));
        if self == Self::Udp {
            cfg.connection.dialer = Some(Arc::new(UdpDialer::default()));
            // Nobody answers a handshake to a stopped server: fail sooner
            // than the default 10 s.
            cfg.connection.handshake_timeout = Duration::from_secs(3);
        }
        cfg
    }
}

/// Every test client comes from 127.0.0.1, one source: the per-source
/// handshake rate (20/s by default) would serialise a test's burst.
pub fn udp_server_config() -> UdpConfig {
    let mut cfg = UdpConfig::default();
    cfg.handshake.per_source_rate = 100_000;
    cfg.handshake.per_source_burst = 100_000;
    cfg
}

pub struct Running {
    pub handle: ServerHandle,
    pub server_key: netproto_crypto::PublicKey,
    pub carrier: Carrier,
    pub task: tokio::task::JoinHandle<netproto_service::Result<()>>,
}

pub async fn start(tune: impl FnOnce(&mut ServerConfig)) -> Running {
    start_on(Carrier::Tcp, tune).await
}

/// A server with the test handlers over `carrier`, on a free port.
pub async fn start_on(carrier: Carrier, tune: impl FnOnce(&mut ServerConfig)) -> Running {
    start_with_key(carrier, &carrier.address(), &super::key(), tune).await
}

/// A server with the test handlers over `carrier` at `address`.
pub async fn start_with_key(
    carrier: Carrier,
    address: &netproto_transport::Endpoint,
    key: &Keypair,
    tune: impl FnOnce(&mut ServerConfig),
) -> Running {
    serve(carrier, address, key, dispatcher(), tune).await
}

/// A server with `dispatcher`'s routes over `carrier`, on a free port.
pub async fn start_routes(carrier: Carrier, dispatcher: Dispatcher) -> Running {
    serve(
        carrier,
        &carrier.address(),
        &super::key(),
        dispatcher,
        |_| {},
    )
    .await
}

async fn serve(
    carrier: Carrier,
    address: &netproto_transport::Endpoint,
    key: &Keypair,
    dispatcher: Dispatcher,
    tune: impl FnOnce(&mut ServerConfig),
) -> Running {
    let server_key = *key.public();
    let mut cfg = ServerConfig::new(
        address.clone(),
        super::config(key.clone(), Arc::new(AnyPeer)),
    );
    tune(&mut cfg);
    let listener = carrier.bind(address, key).await;
    let server = Server::with_listener(listener, cfg, dispatcher);
    let handle = server.handle();
    let task = tokio::spawn(server.run());
    Running {
        handle,
        server_key,
        carrier,
        task,
    }
}

pub fn client_config(r: &Running) -> ClientConfig {
    r.carrier.client_config(r.server_key)
}

pub async fn client(r: &Running) -> Client {
    Client::connect(r.handle.endpoint(), client_config(r))
        .await
        .unwrap()
}

pub async fn stop(r: Running, grace: Duration) {
    r.handle.shutdown(Some(grace));
    tokio::time::timeout(grace + Duration::from_secs(5), r.task)
        .await
        .expect("run() returns after shutdown")
        .unwrap()
        .unwrap();
}

/// Awaits a call that was in flight when its connection died: it must fail
/// (within 5 s) as a lost connection, not hang or succeed.
pub async fn expect_lost(call: tokio::task::JoinHandle<netproto_service::Result<Message>>) {
    let err = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the call ended")
        .expect("the call task")
        .unwrap_err();
    // A server stopped with no grace answers what it abandons with ERR
    // SHUTTING_DOWN; one that dies mid-call leaves only the closed link.
    assert!(
        matches!(
            err,
            netproto_service::ServiceError::ConnectionClosed
                | netproto_service::ServiceError::Transport(_)
                | netproto_service::ServiceError::Remote {
                    code: netproto_wire::ErrorCode::SHUTTING_DOWN,
                    ..
                }
        ),
        "{err:?}"
    );
}
