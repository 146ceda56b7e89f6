//! Service-layer helpers: a server with test handlers, clients for it.

use std::sync::Arc;
use std::time::Duration;

use netproto_crypto::{AnyPeer, Pinned};
use netproto_service::{
    Client, ClientConfig, Dispatcher, HandlerError, Server, ServerConfig, ServerHandle,
};
use netproto_transport::ConnectionConfig;
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
    d
}

pub struct Running {
    pub handle: ServerHandle,
    pub server_key: netproto_crypto::PublicKey,
    pub task: tokio::task::JoinHandle<netproto_service::Result<()>>,
}

pub async fn start(tune: impl FnOnce(&mut ServerConfig)) -> Running {
    let key = super::key();
    let server_key = *key.public();
    let mut cfg = ServerConfig::new(
        "tcp://127.0.0.1:0".parse().unwrap(),
        super::config(key, Arc::new(AnyPeer)),
    );
    tune(&mut cfg);
    let server = Server::bind(cfg, dispatcher()).await.unwrap();
    let handle = server.handle();
    let task = tokio::spawn(server.run());
    Running {
        handle,
        server_key,
        task,
    }
}

pub fn client_config(server_key: netproto_crypto::PublicKey) -> ClientConfig {
    ClientConfig::new(ConnectionConfig::new(
        netproto_crypto::HandshakeConfig::new(Some(super::key()), Arc::new(Pinned(server_key))),
    ))
}

pub async fn client(r: &Running) -> Client {
    Client::connect(r.handle.endpoint(), client_config(r.server_key))
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
    assert!(
        matches!(
            err,
            netproto_service::ServiceError::ConnectionClosed
                | netproto_service::ServiceError::Transport(_)
        ),
        "{err:?}"
    );
}
