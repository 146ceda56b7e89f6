//! The service over the test kit's in-memory carrier: a server on a
//! `MemoryListener`, clients that dial it.

use std::sync::Arc;
use std::time::Duration;

use netproto_service::{Client, ClientConfig, Dispatcher, Server, ServerConfig, ServerHandle};
use netproto_testkit::{Keys, MemoryDialer, MemoryListener};
use netproto_transport::Endpoint;
use netproto_wire::Message;

pub type Running = (
    ServerHandle,
    tokio::task::JoinHandle<netproto_service::Result<()>>,
);

/// Starts a server on an in-memory listener.
pub fn serve(
    listener: MemoryListener,
    keys: &Keys,
    dispatcher: Dispatcher,
    tune: impl FnOnce(&mut ServerConfig),
) -> Running {
    let mut cfg = ServerConfig::new(endpoint(), keys.server_config());
    tune(&mut cfg);
    let server = Server::with_listener(listener, cfg, dispatcher);
    let handle = server.handle();
    (handle, tokio::spawn(server.run()))
}

pub fn client_cfg(keys: &Keys, dialer: &MemoryDialer) -> ClientConfig {
    let mut conn = keys.client_config();
    conn.dialer = Some(Arc::new(dialer.clone()));
    let mut cfg = ClientConfig::new(conn);
    cfg.reconnect_delay = Duration::from_millis(10);
    cfg
}

pub fn endpoint() -> Endpoint {
    "tcp://memory:1".parse().unwrap()
}

/// `n` concurrent calls of the test dispatcher's 300 ms "SLOW" route.
pub fn slow_calls(
    client: &Client,
    n: u8,
) -> Vec<tokio::task::JoinHandle<netproto_service::Result<Message>>> {
    (0..n)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move {
                c.call(Message::Custom {
                    command: "SLOW".into(),
                    payload: vec![i],
                })
                .await
            })
        })
        .collect()
}

pub async fn stop((handle, task): Running) {
    handle.shutdown(Some(Duration::from_secs(2)));
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}
