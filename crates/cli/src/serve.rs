//! `netproto serve`: the echo/ping daemon on embedded defaults, a
//! configuration file, `NP_*` variables and command-line overrides.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use netproto::{AnyPeer, Dispatcher, Keypair, Message, NetworkConfig, Server};

use crate::{err, metrics, path_string, Failure};

pub(crate) fn echo_dispatcher() -> Dispatcher {
    let mut d = Dispatcher::new();
    d.register("PING", |_| Ok(Message::Pong));
    d.register("ECHO", Ok);
    d.register("DATA", Ok);
    d
}

pub(crate) struct ServeOverrides {
    pub(crate) address: Vec<String>,
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    pub(crate) client_ca: Option<PathBuf>,
    pub(crate) metrics: Option<std::net::SocketAddr>,
}

pub(crate) async fn serve(
    config: Option<&Path>,
    key: Option<&Path>,
    overrides: ServeOverrides,
) -> Result<(), Failure> {
    let mut cfg = NetworkConfig::load_existing(config).map_err(err)?;
    if let Some(a) = overrides.address.first() {
        cfg.server.address.clone_from(a);
    }
    if let (Some(c), Some(k)) = (&overrides.tls_cert, &overrides.tls_key) {
        cfg.tls.cert_path = path_string(c);
        cfg.tls.key_path = path_string(k);
    }
    if let Some(ca) = &overrides.client_ca {
        cfg.tls.client_ca_path = path_string(ca);
    }
    cfg.validate().map_err(err)?;
    netproto::logging::init(&cfg.logging).map_err(err)?;
    let metrics_at = match overrides.metrics {
        Some(addr) => Some(addr),
        None => cfg.metrics.listen_addr().map_err(err)?,
    };
    if let Some(addr) = metrics_at {
        let bound = metrics::start(addr).await.map_err(Failure::Metrics)?;
        println!("metrics at http://{bound}/metrics");
    }
    let key = match key {
        Some(p) => Keypair::load(p).map_err(err)?,
        None => Keypair::generate(&mut rand::rngs::OsRng),
    };
    println!(
        "server key {} ({})",
        key.public(),
        key.public().fingerprint()
    );
    let addresses = if overrides.address.is_empty() {
        vec![cfg.server.address.clone()]
    } else {
        overrides.address
    };
    let server_cfg = netproto::server_config(&cfg, key, Arc::new(AnyPeer)).map_err(err)?;
    let listener = netproto::bind_all(&cfg, &addresses, Some(&server_cfg.connection.handshake))
        .await
        .map_err(err)?;
    let endpoints: Vec<String> = listener
        .endpoints()
        .iter()
        .map(ToString::to_string)
        .collect();
    let server = Server::with_listener(listener, server_cfg, echo_dispatcher());
    println!(
        "serving PING, ECHO and DATA on {} (Ctrl-C to stop)",
        endpoints.join(", ")
    );
    let handle = server.handle();
    let grace = cfg.server.shutdown_timeout;
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("shutting down (up to {grace:?} for in-flight requests)");
            handle.shutdown(Some(grace));
        }
    });
    server.run().await.map_err(err)
}
