//! netproto over TLS: the service layer unchanged over `tls://`, mutual
//! TLS, pinning, refused certificates, and bad peers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::tls::{client_tls, conn_cfg, connect, pki, server_tls, start};
use netproto_service::{ConnectionPool, PoolConfig, ServiceError};
use netproto_transport::{ProtocolViolation, TlsFailure, TransportError};
use netproto_transport_tls::{CertPin, Roots, TlsClientConfig, TlsConnector};
use netproto_wire::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tls_reason(e: &ServiceError) -> Option<TlsFailure> {
    match e {
        ServiceError::Transport(TransportError::Tls { reason, .. }) => Some(*reason),
        _ => None,
    }
}

/// Connects and makes one call: with TLS 1.3 a server's refusal of the
/// client (certificate required, unknown CA, Noise mismatch) arrives after
/// the client's handshake, so it may surface at the first call.
async fn refused(server: &common::tls::TlsServer, tls: &TlsClientConfig) -> ServiceError {
    match connect(server, tls).await {
        Err(e) => e,
        Ok(client) => client.call(Message::Ping).await.unwrap_err(),
    }
}

async fn echo(client: &netproto_service::Client, text: &str) {
    let reply = client.call(Message::Echo(text.into())).await.unwrap();
    assert_eq!(reply, Message::Echo(text.into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_layer_works_over_tls() {
    let pki = pki("echo");
    let server = start(&server_tls(&pki, "server"), |_| {}).await;
    let client = connect(&server, &client_tls(&pki)).await.unwrap();
    echo(&client, "hello over TLS").await;

    // Many concurrent calls, small and large (continuation frames inside TLS).
    let mut calls = Vec::new();
    for i in 0..200usize {
        let c = client.clone();
        calls.push(tokio::spawn(async move {
            let payload = vec![u8::try_from(i % 251).unwrap(); (i * 997) % 200_000];
            let reply = c
                .call(Message::Custom {
                    command: "ECHO".into(),
                    payload: payload.clone(),
                })
                .await;
            (reply, payload)
        }));
    }
    for call in calls {
        let (reply, payload) = call.await.unwrap();
        match reply.unwrap() {
            Message::Custom { payload: got, .. } => assert_eq!(got, payload),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    // The pool opens its connections through the same connector.
    let pool = ConnectionPool::new(
        server.endpoint.clone(),
        common::tls::client_cfg(&client_tls(&pki)),
        PoolConfig::default(),
    );
    let pooled = pool.acquire().await.unwrap();
    let reply = pooled.call(Message::Ping).await.unwrap();
    assert_eq!(reply, Message::Pong);
    drop(pooled);
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_accepts_ca_signed_clients_and_refuses_others() {
    let pki = pki("mtls");
    let tls = server_tls(&pki, "server").with_client_ca(pki.path("ca.pem"));
    let server = start(&tls, |_| {}).await;

    let with_cert =
        client_tls(&pki).with_client_cert(pki.path("client.pem"), pki.path("client.key"));
    let client = connect(&server, &with_cert).await.unwrap();
    echo(&client, "mutual").await;

    // No certificate: with TLS 1.3 the refusal arrives after the client's
    // handshake, on the first read: it must still be a clear error.
    let err = refused(&server, &client_tls(&pki)).await;
    assert_eq!(
        tls_reason(&err),
        Some(TlsFailure::ClientCertRequired),
        "{err}"
    );

    // A certificate from a CA the server does not trust.
    let rogue = client_tls(&pki)
        .with_client_cert(pki.path("rogue-client.pem"), pki.path("rogue-client.key"));
    let err = refused(&server, &rogue).await;
    assert_eq!(tls_reason(&err), Some(TlsFailure::UnknownCa), "{err}");

    // The server kept serving.
    echo(&client, "still here").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_are_checked() {
    let pki = pki("pins");
    let server = start(&server_tls(&pki, "server"), |_| {}).await;
    let spki = pki.server.spki_pin().unwrap();
    let cert = CertPin::certificate_of(&pki.server.cert_der);

    // A matching pin in addition to chain validation.
    let client = connect(
        &server,
        &client_tls(&pki)
            .with_pin(CertPin::Spki([1; 32]))
            .with_pin(spki),
    )
    .await
    .unwrap();
    echo(&client, "pinned").await;

    // Pins instead of chain validation: no CA file at all.
    let mut pins_only = TlsClientConfig::default().with_pin(cert);
    pins_only.roots = Roots::PinsOnly;
    echo(&connect(&server, &pins_only).await.unwrap(), "pins only").await;

    // A mismatch is refused with its own reason, with or without the chain.
    let err = connect(&server, &client_tls(&pki).with_pin(CertPin::Spki([7; 32])))
        .await
        .unwrap_err();
    assert_eq!(tls_reason(&err), Some(TlsFailure::PinMismatch), "{err}");
    let mut wrong_only = TlsClientConfig::default().with_pin(CertPin::Certificate([7; 32]));
    wrong_only.roots = Roots::PinsOnly;
    let err = connect(&server, &wrong_only).await.unwrap_err();
    assert_eq!(tls_reason(&err), Some(TlsFailure::PinMismatch), "{err}");

    // Pins-only without a pin is a settings error, not an open door.
    let mut no_pins = TlsClientConfig::default();
    no_pins.roots = Roots::PinsOnly;
    assert!(TlsConnector::new(&no_pins).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_server_certificates_are_refused() {
    let pki = pki("refused");
    let expired = start(&server_tls(&pki, "expired"), |_| {}).await;
    let err = connect(&expired, &client_tls(&pki)).await.unwrap_err();
    assert_eq!(tls_reason(&err), Some(TlsFailure::Expired), "{err}");

    let server = start(&server_tls(&pki, "server"), |_| {}).await;
    let mut wrong_name = client_tls(&pki);
    wrong_name.server_name = Some("db.example.com".into());
    let err = connect(&server, &wrong_name).await.unwrap_err();
    assert_eq!(tls_reason(&err), Some(TlsFailure::NameMismatch), "{err}");

    let err = connect(
        &server,
        &TlsClientConfig::with_ca_file(pki.path("rogue-ca.pem")),
    )
    .await
    .unwrap_err();
    assert_eq!(tls_reason(&err), Some(TlsFailure::UnknownCa), "{err}");

    // The public roots do not trust a dev CA either.
    let err = connect(&server, &TlsClientConfig::default())
        .await
        .unwrap_err();
    assert_eq!(tls_reason(&err), Some(TlsFailure::UnknownCa), "{err}");

    echo(&connect(&server, &client_tls(&pki)).await.unwrap(), "valid").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_protocol_on_either_side_is_a_clear_error() {
    let pki = pki("plain");
    let tls_server = start(&server_tls(&pki, "server"), |_| {}).await;
    let port = match &tls_server.endpoint {
        netproto_transport::Endpoint::Tls { port, .. } => *port,
        _ => unreachable!(),
    };

    // A plain netproto client on the TLS port.
    let plain = common::config(common::key(), Arc::new(netproto_crypto::AnyPeer));
    let err =
        netproto_transport::connect(&format!("tcp://127.0.0.1:{port}").parse().unwrap(), plain)
            .await
            .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Protocol(ProtocolViolation::PeerSpeaksTls)
        ),
        "{err}"
    );

    // A TLS client on a plain netproto port.
    let plain_server = common::service::start(|_| {}).await;
    let plain_port = match plain_server.handle.endpoint() {
        netproto_transport::Endpoint::Tcp { port, .. } => *port,
        _ => unreachable!(),
    };
    let mut cfg = conn_cfg();
    cfg.dialer = Some(Arc::new(TlsConnector::new(&client_tls(&pki)).unwrap()));
    let err = netproto_transport::connect(
        &format!("tls://localhost:{plain_port}").parse().unwrap(),
        cfg,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TransportError::Tls { .. }), "{err}");

    // A tls:// endpoint without a connector says what is missing.
    let err = netproto_transport::connect(&tls_server.endpoint, conn_cfg())
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::BadEndpoint { .. }), "{err}");

    // Both servers still serve.
    echo(
        &connect(&tls_server, &client_tls(&pki)).await.unwrap(),
        "tls ok",
    )
    .await;
    let c = common::service::client(&plain_server).await;
    assert_eq!(c.call(Message::Ping).await.unwrap(), Message::Pong);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tls_clients_time_out_without_blocking_others() {
    let pki = pki("slow");
    let mut tls = server_tls(&pki, "server");
    tls.handshake_timeout = Duration::from_millis(400);
    let server = start(&tls, |_| {}).await;
    let port = match &server.endpoint {
        netproto_transport::Endpoint::Tls { port, .. } => *port,
        _ => unreachable!(),
    };
    // Ten sockets that never start a handshake, one that stops half-way.
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    let mut partial = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();

    // A real client is served meanwhile.
    echo(
        &connect(&server, &client_tls(&pki)).await.unwrap(),
        "not blocked",
    )
    .await;

    // The silent ones are closed by the handshake timeout.
    for mut s in silent.into_iter().chain(std::iter::once(partial)) {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "socket not closed: {read:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_inside_tls_is_a_choice_both_sides_make() {
    let pki = pki("noise");
    let server_key = common::key();
    let public = *server_key.public();
    let server = start(&server_tls(&pki, "server"), move |c| {
        c.noise_inside_tls = true;
        c.handshake.local_key = Some(server_key.clone());
    })
    .await;

    // Both on: Noise runs inside TLS and the server key is pinned by Noise.
    let mut tls_client = common::tls::client_cfg(&client_tls(&pki));
    tls_client.connection.noise_inside_tls = true;
    tls_client.connection.handshake.local_key = Some(common::key());
    tls_client.connection.handshake.verifier = Arc::new(netproto_crypto::Pinned(public));
    let client = netproto_service::Client::connect(&server.endpoint, tls_client)
        .await
        .unwrap();
    echo(&client, "double").await;

    // Only the server on, or only the client: a clear mismatch error.
    let mismatch = |err: &ServiceError| {
        matches!(
            err,
            ServiceError::Transport(TransportError::Protocol(
                ProtocolViolation::NoiseInsideTlsMismatch { .. }
            ))
        )
    };
    let err = refused(&server, &client_tls(&pki)).await;
    assert!(mismatch(&err), "{err}");
    let plain_server = start(&server_tls(&pki, "server"), |_| {}).await;
    let mut noisy = common::tls::client_cfg(&client_tls(&pki));
    noisy.connection.noise_inside_tls = true;
    noisy.connection.handshake.local_key = Some(common::key());
    let err = netproto_service::Client::connect(&plain_server.endpoint, noisy)
        .await
        .unwrap_err();
    assert!(mismatch(&err), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_learns_limits_and_codecs_from_the_server_hello() {
    let pki = pki("hello");
    let server = start(&server_tls(&pki, "server"), |c| c.max_message_size = 4096).await;
    let mut cfg = common::tls::client_cfg(&client_tls(&pki));
    cfg.connection.compression =
        netproto_wire::CompressionPolicy::new(netproto_wire::Compression::Lz4);
    let client = netproto_service::Client::connect(&server.endpoint, cfg)
        .await
        .unwrap();
    // The first answer carries the server's hello with it.
    echo(&client, "first").await;
    let big = Message::Data(vec![7; 10_000]);
    match client.call(big).await {
        Err(ServiceError::Transport(TransportError::MessageTooLarge { max: 4096, .. })) => {}
        other => panic!("expected a local refusal at the server's limit, got {other:?}"),
    }
    // Compressible messages within the limit still make it, compressed or not.
    for _ in 0..50 {
        let text = "compress me ".repeat(300);
        echo(&client, &text).await;
    }
}
