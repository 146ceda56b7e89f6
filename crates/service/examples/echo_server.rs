//! An echo server: answers PING with PONG, ECHO with the same text, and the
//! typed `ADD` route with the sum of two numbers. Stops on Ctrl-C, letting
//! in-flight requests finish.
//!
//! ```sh
//! cargo run -p netproto-service --example echo_server -- tcp://127.0.0.1:9000
//! ```
//!
//! It prints its public key and writes it to `netproto-echo-server.pub` in the
//! system temporary directory, where `echo_client` picks it up to pin it.

use std::sync::Arc;
use std::time::Duration;

use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair};
use netproto_service::{Dispatcher, Server, ServerConfig};
use netproto_transport::ConnectionConfig;
use netproto_wire::Message;
use serde::{Deserialize, Serialize};

/// The request of the typed `ADD` route.
#[derive(Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp://127.0.0.1:9000".into());
    let key = Keypair::generate(&mut rand::rngs::OsRng);
    let key_file = std::env::temp_dir().join("netproto-echo-server.pub");
    std::fs::write(&key_file, key.public().to_base64())?;
    println!(
        "server key {} ({})",
        key.public(),
        key.public().fingerprint()
    );
    println!("public key written to {}", key_file.display());

    let mut dispatcher = Dispatcher::new();
    dispatcher.register("PING", |_| Ok(Message::Pong));
    dispatcher.register("ECHO", Ok);
    dispatcher.route::<Add, i64, _, _>("ADD", |req| async move { Ok(req.a.saturating_add(req.b)) });

    // Any client key is accepted: clients authenticate the server, not the
    // other way round, in this example.
    let connection = ConnectionConfig::new(HandshakeConfig::new(Some(key), Arc::new(AnyPeer)));
    let server = Server::bind(ServerConfig::new(address.parse()?, connection), dispatcher).await?;
    println!("listening on {}", server.local_endpoint());
    let handle = server.handle();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            println!("Ctrl-C: shutting down (up to 5 s for in-flight requests)");
            handle.shutdown(Some(Duration::from_secs(5)));
        }
    });
    server.run().await?;
    println!("stopped");
    Ok(())
}
