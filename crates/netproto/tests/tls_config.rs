//! The facade over TLS: a `[tls]` section is all a program needs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
#![cfg(feature = "tls")]

use std::sync::Arc;

use netproto::{
    AnyPeer, Client, Dispatcher, Error, Keypair, Message, NetworkConfig, Server, Validity,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_section_is_enough() {
    let dir = std::env::temp_dir().join(format!("netproto-facade-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    netproto::self_signed("localhost", &["localhost".into()], Validity::days(1))
        .unwrap()
        .write(&cert, &key)
        .unwrap();

    // Without a certificate a tls:// server is a configuration error.
    let mut cfg = NetworkConfig::default();
    cfg.server.address = "tls://127.0.0.1:0".into();
    match netproto::bind(&cfg, None).await {
        Err(Error::Config(e)) => assert!(e.to_string().contains("tls.cert_path"), "{e}"),
        other => panic!("expected a config error, got {other:?}"),
    }

    cfg.tls.cert_path = cert.display().to_string();
    cfg.tls.key_path = key.display().to_string();
    cfg.tls.ca_path = cert.display().to_string();
    let server_key = Keypair::generate(&mut rand::rngs::OsRng);
    let server_cfg = netproto::server_config(&cfg, server_key, Arc::new(AnyPeer)).unwrap();
    let listener = netproto::bind(&cfg, None).await.unwrap();
    let mut dispatcher = Dispatcher::new();
    dispatcher.register("ECHO", Ok);
    let server = Server::with_listener(listener, server_cfg, dispatcher);
    let handle = server.handle();
    let port = match handle.endpoint() {
        netproto::Endpoint::Tls { port, .. } => *port,
        other => panic!("not a TLS endpoint: {other}"),
    };
    tokio::spawn(server.run());

    cfg.client.address = format!("tls://localhost:{port}");
    let client_cfg = netproto::client_config(&cfg, None, Arc::new(AnyPeer)).unwrap();
    let client = Client::connect(&cfg.client.address.parse().unwrap(), client_cfg)
        .await
        .unwrap();
    let answer = client.call(Message::Echo("facade".into())).await.unwrap();
    assert_eq!(answer, Message::Echo("facade".into()));
    client.close().await.unwrap();
    handle.shutdown(None);

    // A pin that does not parse is an error, not ignored.
    cfg.tls.pins = vec!["spki-sha256:nothex".into()];
    assert!(matches!(
        netproto::client_config(&cfg, None, Arc::new(AnyPeer)),
        Err(Error::Tls(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
