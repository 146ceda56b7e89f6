//! Interoperability with an independent TLS implementation: the system's
//! OpenSSL (`openssl s_client` / `s_server`, installed by `.ci/run`) against
//! our listener and connector, with and without client certificates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::tls::{client_tls, pki, server_tls, Pki};
use netproto_transport::{Endpoint, Listener, TlsFailure, TransportError};
use netproto_transport_tls::{CertPin, TlsConnector, TlsListener};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// Starts `openssl` with `args` and `extra`, all three standard streams
/// piped; the child is killed when dropped.
fn spawn_openssl(args: &[&str], extra: &[&str]) -> Child {
    let probe = std::process::Command::new("openssl")
        .arg("version")
        .output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "the openssl command is missing: .ci/run installs it (apt-get install openssl)"
    );
    Command::new("openssl")
        .args(args)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Collects lines until one contains `needle` (true), the output ends or
/// `within` passes (false).
async fn read_until<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
    needle: &str,
    within: Duration,
) -> (String, bool) {
    let mut out = String::new();
    let found = tokio::time::timeout(within, async {
        while let Ok(Some(line)) = lines.next_line().await {
            out.push_str(&line);
            out.push('\n');
            if line.contains(needle) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    (out, found)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `s_client` against `port` until its session summary is printed,
/// then closes its input; returns everything it printed.
async fn s_client(pki: &Pki, port: u16, extra: &[String]) -> String {
    let connect = format!("127.0.0.1:{port}");
    let ca = pki.path("ca.pem");
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut child = spawn_openssl(
        &[
            "s_client",
            "-connect",
            &connect,
            "-tls1_3",
            "-CAfile",
            ca.to_str().unwrap(),
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
            "-alpn",
            "netproto/1",
        ],
        &extra,
    );
    let stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (out, summary) =
        read_until(&mut lines, "Verify return code", Duration::from_secs(10)).await;
    assert!(summary, "s_client printed no session summary:\n{out}");
    // Give a refusal that arrives after the handshake (TLS 1.3) time to be
    // read and reported, then end the session.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stdin);
    let mut rest = String::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        lines.get_mut().read_to_string(&mut rest),
    )
    .await;
    let mut err = String::new();
    let mut stderr = child.stderr.take().unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), stderr.read_to_string(&mut err)).await;
    let _ = child.kill().await;
    format!("{out}{rest}{err}")
}

async fn bind_listener(pki: &Pki, mtls: bool) -> (TlsListener, u16) {
    let mut tls = server_tls(pki, "server");
    if mtls {
        tls = tls.with_client_ca(pki.path("ca.pem"));
    }
    let listener = TlsListener::bind(&"tls://127.0.0.1:0".parse().unwrap(), &tls)
        .await
        .unwrap();
    let Endpoint::Tls { port, .. } = listener.local_endpoint() else {
        unreachable!()
    };
    let port = *port;
    (listener, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_connects_to_our_listener() {
    let pki = pki("s-client");
    let (listener, port) = bind_listener(&pki, false).await;
    let server = serve_one(listener);
    let out = s_client(&pki, port, &[]).await;
    assert!(out.contains("New, TLSv1.3, Cipher is TLS_"), "{out}");
    assert!(out.contains("ALPN protocol: netproto/1"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let (version, alpn, _) = server.await.unwrap().unwrap();
    assert_eq!(
        version,
        Some(netproto_transport_tls::rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(alpn.as_deref(), Some(&b"netproto/1"[..]));
}

type Negotiated = (
    Option<netproto_transport_tls::rustls::ProtocolVersion>,
    Option<Vec<u8>>,
    Option<Vec<netproto_transport_tls::rustls::pki_types::CertificateDer<'static>>>,
);

/// Accepts one connection and completes its TLS handshake (the listener
/// runs it lazily, in the task that uses the stream).
fn serve_one(
    mut listener: TlsListener,
) -> tokio::task::JoinHandle<Result<Negotiated, TransportError>> {
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        stream.handshake().await?;
        let conn = stream.connection().unwrap();
        Ok((
            conn.protocol_version(),
            conn.alpn_protocol().map(<[u8]>::to_vec),
            conn.peer_certificates().map(<[_]>::to_vec),
        ))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_with_and_without_client_certificate() {
    let pki = pki("s-client-mtls");
    let cert = vec![
        "-cert".to_owned(),
        pki.path("client.pem").to_str().unwrap().to_owned(),
        "-key".to_owned(),
        pki.path("client.key").to_str().unwrap().to_owned(),
    ];
    let (listener, port) = bind_listener(&pki, true).await;
    let server = serve_one(listener);
    let out = s_client(&pki, port, &cert).await;
    assert!(!out.contains("alert"), "{out}");
    let (_, _, presented) = server.await.unwrap().unwrap();
    let client_der = netproto_transport_tls::load_certs(&pki.path("client.pem")).unwrap();
    assert_eq!(presented.unwrap()[0], client_der[0]);

    // Without a certificate: refused after the client's handshake, with the
    // reason on our side.
    let (listener, port) = bind_listener(&pki, true).await;
    let server = serve_one(listener);
    let out = s_client(&pki, port, &[]).await;
    assert!(out.contains("certificate required"), "{out}");
    let err = server.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Tls {
                reason: TlsFailure::ClientCertRequired,
                ..
            }
        ),
        "{err}"
    );
}

/// Starts `s_server` on a free port and waits until it accepts.
async fn s_server(pki: &Pki, extra: &[&str]) -> (Child, u16) {
    let port = free_port();
    let accept = format!("127.0.0.1:{port}");
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let mut child = spawn_openssl(
        &[
            "s_server",
            "-accept",
            &accept,
            "-tls1_3",
            "-cert",
            cert.to_str().unwrap(),
            "-key",
            key.to_str().unwrap(),
            "-alpn",
            "netproto/1",
            "-naccept",
            "1",
        ],
        extra,
    );
    let mut lines = BufReader::new(child.stdout.as_mut().unwrap()).lines();
    let (out, ready) = read_until(&mut lines, "ACCEPT", Duration::from_secs(10)).await;
    assert!(ready, "s_server did not start:\n{out}");
    (child, port)
}

/// What `s_server` printed until `needle` appeared (or it ended, or 3 s).
async fn s_server_output(mut child: Child, needle: &str) -> String {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (out, _) = read_until(&mut lines, needle, Duration::from_secs(3)).await;
    let _ = child.kill().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_connector_talks_to_openssl_s_server() {
    let pki = pki("s-server");
    let (server, port) = s_server(&pki, &[]).await;
    // Pin the server by the SPKI digest OpenSSL computes itself.
    let der = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex",
            pki.path("server.pem").display()
        ))
        .output()
        .unwrap();
    let digest = String::from_utf8(der.stdout).unwrap();
    let hex = digest.trim().rsplit(' ').next().unwrap();
    let pin: CertPin = format!("spki-sha256:{hex}").parse().unwrap();
    assert_eq!(
        Some(pin),
        pki.server.spki_pin(),
        "our SPKI extraction agrees with OpenSSL"
    );

    let connector = TlsConnector::new(&client_tls(&pki).with_pin(pin)).unwrap();
    let endpoint: Endpoint = format!("tls://localhost:{port}").parse().unwrap();
    let mut tls = connector.connect_tls(&endpoint).await.unwrap();
    let conn = tls.connection();
    assert_eq!(
        conn.protocol_version(),
        Some(netproto_transport_tls::rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(conn.alpn_protocol(), Some(&b"netproto/1"[..]));
    tls.write_all(b"hello from netproto\n").await.unwrap();
    tls.flush().await.unwrap();
    tls.shutdown().await.unwrap();
    drop(tls);
    let out = s_server_output(server, "hello from netproto").await;
    assert!(out.contains("hello from netproto"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_server_requiring_client_certificates() {
    let pki = pki("s-server-mtls");
    let ca = pki.path("ca.pem");
    let verify = ["-Verify", "1", "-CAfile", ca.to_str().unwrap()];
    let endpoint = |port: u16| -> Endpoint { format!("tls://localhost:{port}").parse().unwrap() };

    // With a certificate: accepted, data arrives.
    let (server, port) = s_server(&pki, &verify).await;
    let with_cert =
        client_tls(&pki).with_client_cert(pki.path("client.pem"), pki.path("client.key"));
    let mut tls = TlsConnector::new(&with_cert)
        .unwrap()
        .connect_tls(&endpoint(port))
        .await
        .unwrap();
    tls.write_all(b"mutual hello\n").await.unwrap();
    tls.flush().await.unwrap();
    tls.shutdown().await.unwrap();
    drop(tls);
    let out = s_server_output(server, "mutual hello").await;
    assert!(out.contains("mutual hello"), "{out}");

    // Without: the handshake completes on our side (TLS 1.3), the first read
    // reports the refusal as a TLS failure.
    let (server, port) = s_server(&pki, &verify).await;
    let mut tls = TlsConnector::new(&client_tls(&pki))
        .unwrap()
        .connect_tls(&endpoint(port))
        .await
        .unwrap();
    let _ = tls.write_all(b"no cert\n").await;
    let _ = tls.flush().await;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .unwrap();
    let err = TransportError::from(read.unwrap_err());
    assert!(
        matches!(
            err,
            TransportError::Tls {
                reason: TlsFailure::ClientCertRequired | TlsFailure::BadCertificate,
                ..
            }
        ),
        "{err}"
    );
    let out = s_server_output(server, "no cert").await;
    assert!(!out.contains("no cert"), "{out}");
}
