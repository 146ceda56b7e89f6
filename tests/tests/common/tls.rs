//! A throw-away PKI in a temporary directory: a dev CA, server and client
//! certificates signed by it, an expired server certificate, and a second
//! CA nobody trusts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use netproto_crypto::{AnyPeer, HandshakeConfig};
use netproto_service::{Client, ClientConfig, Server, ServerConfig};
use netproto_transport::{ConnectionConfig, Endpoint, Listener};
use netproto_transport_tls::{
    DevCa, GeneratedCert, TlsClientConfig, TlsConnector, TlsListener, TlsServerConfig, Validity,
};

pub struct Pki {
    pub dir: PathBuf,
    pub server: GeneratedCert,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pki {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn write(dir: &Path, stem: &str, cert: &GeneratedCert) {
    cert.write(
        &dir.join(format!("{stem}.pem")),
        &dir.join(format!("{stem}.key")),
    )
    .unwrap();
}

/// Files: ca.pem, server.pem/.key (localhost, 127.0.0.1), client.pem/.key,
/// expired.pem/.key, rogue-ca.pem, rogue-client.pem/.key.
pub fn pki(name: &str) -> Pki {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("np-pki-{name}-{}-{id}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = DevCa::new("netproto test CA").unwrap();
    std::fs::write(dir.join("ca.pem"), &ca.certificate().cert_pem).unwrap();
    let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    let server = ca.issue_server(&names, Validity::default()).unwrap();
    write(&dir, "server", &server);
    write(
        &dir,
        "client",
        &ca.issue_client("test client", Validity::default()).unwrap(),
    );
    let past = SystemTime::now() - Duration::from_hours(30 * 24);
    let expired = Validity {
        not_before: past - Duration::from_hours(24),
        not_after: past,
    };
    write(&dir, "expired", &ca.issue_server(&names, expired).unwrap());
    let rogue = DevCa::new("rogue CA").unwrap();
    std::fs::write(dir.join("rogue-ca.pem"), &rogue.certificate().cert_pem).unwrap();
    write(
        &dir,
        "rogue-client",
        &rogue
            .issue_client("rogue client", Validity::default())
            .unwrap(),
    );
    Pki { dir, server }
}

pub fn server_tls(pki: &Pki, cert: &str) -> TlsServerConfig {
    let mut cfg = TlsServerConfig::new(
        pki.path(&format!("{cert}.pem")),
        pki.path(&format!("{cert}.key")),
    );
    cfg.handshake_timeout = Duration::from_secs(5);
    cfg
}

pub fn client_tls(pki: &Pki) -> TlsClientConfig {
    TlsClientConfig::with_ca_file(pki.path("ca.pem"))
}

/// Connection settings without Noise keys (TLS authenticates).
pub fn conn_cfg() -> ConnectionConfig {
    let mut cfg = ConnectionConfig::new(HandshakeConfig::new(None, Arc::new(AnyPeer)));
    cfg.handshake_timeout = Duration::from_secs(5);
    cfg
}

pub fn client_cfg(tls: &TlsClientConfig) -> ClientConfig {
    let mut conn = conn_cfg();
    conn.dialer = Some(Arc::new(TlsConnector::new(tls).unwrap()));
    let mut cfg = ClientConfig::new(conn);
    cfg.auto_reconnect = false;
    cfg
}

pub struct TlsServer {
    pub endpoint: Endpoint,
    pub handle: netproto_service::ServerHandle,
    task: tokio::task::JoinHandle<netproto_service::Result<()>>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A service-layer server (the test dispatcher) on a TLS listener.
pub async fn start(tls: &TlsServerConfig, tune: impl FnOnce(&mut ConnectionConfig)) -> TlsServer {
    let listener = TlsListener::bind(&"tls://127.0.0.1:0".parse().unwrap(), tls)
        .await
        .unwrap();
    let endpoint = match listener.local_endpoint() {
        Endpoint::Tls { port, .. } => format!("tls://localhost:{port}").parse().unwrap(),
        other => panic!("unexpected endpoint {other}"),
    };
    let mut conn = conn_cfg();
    tune(&mut conn);
    let cfg = ServerConfig::new(listener.local_endpoint().clone(), conn);
    let server = Server::with_listener(listener, cfg, super::service::dispatcher());
    let handle = server.handle();
    let task = tokio::spawn(server.run());
    TlsServer {
        endpoint,
        handle,
        task,
    }
}

pub async fn connect(
    server: &TlsServer,
    tls: &TlsClientConfig,
) -> netproto_service::Result<Client> {
    Client::connect(&server.endpoint, client_cfg(tls)).await
}
