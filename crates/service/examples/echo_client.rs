//! Calls the echo server: PING, ECHO, a typed ADD, and a burst of concurrent
//! calls over the one connection.
//!
//! ```sh
//! cargo run -p netproto-service --example echo_client -- tcp://127.0.0.1:9000
//! ```
//!
//! The server's public key is read from `netproto-echo-server.pub` in the
//! system temporary directory (written by `echo_server`) and pinned.

use std::sync::Arc;

use netproto_crypto::{HandshakeConfig, Keypair, Pinned, PublicKey};
use netproto_service::{decode_response, encode_request, Client, ClientConfig};
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
    let key_file = std::env::temp_dir().join("netproto-echo-server.pub");
    let server_key = PublicKey::from_base64(&std::fs::read_to_string(&key_file)?)?;
    let connection = ConnectionConfig::new(HandshakeConfig::new(
        Some(Keypair::generate(&mut rand::rngs::OsRng)),
        Arc::new(Pinned(server_key)),
    ));
    let client = Client::connect(&address.parse()?, ClientConfig::new(connection)).await?;

    println!("PING -> {:?}", client.call(Message::Ping).await?);
    println!(
        "ECHO -> {:?}",
        client.call(Message::Echo("hello, netproto".into())).await?
    );
    let sum: i64 = decode_response(
        &client
            .call(encode_request("ADD", &Add { a: 40, b: 2 })?)
            .await?,
    )?;
    println!("ADD 40 2 -> {sum}");

    let calls: Vec<_> = (0..100)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move { c.call(Message::Echo(format!("message {i}"))).await })
        })
        .collect();
    for call in calls {
        call.await??;
    }
    println!("100 concurrent calls answered; stats: {:?}", client.stats());
    client.close().await?;
    Ok(())
}
