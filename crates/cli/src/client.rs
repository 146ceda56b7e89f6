//! `netproto ping` and `netproto call`: a client that trusts the server's
//! key through `--server-key` or a known-hosts file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netproto::{
    Client, ErrorCode, Keypair, KnownHosts, Message, NetworkConfig, PeerVerifier, Pinned,
    PublicKey, ServiceError,
};

use crate::{err, path_string, Failure, Trust};

/// `--known-hosts`, else `$HOME/.netproto_known_hosts`. Without HOME there
/// is no private place for it: a shared directory such as /tmp would let
/// another user plant keys, so the command fails instead.
fn known_hosts_path(explicit: Option<&Path>) -> Result<PathBuf, Failure> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            err(netproto::ConfigError::Invalid {
                key: "known_hosts",
                reason: "HOME is not set: pass --known-hosts PATH (or NP_KNOWN_HOSTS), or pin the server with --server-key".into(),
            })
        })?;
    let home = PathBuf::from(home);
    if !home.is_dir() {
        return Err(err(netproto::ConfigError::Invalid {
            key: "known_hosts",
            reason: format!(
                "HOME ({}) is not a directory: pass --known-hosts PATH",
                home.display()
            ),
        }));
    }
    Ok(home.join(".netproto_known_hosts"))
}

fn verifier(trust: &Trust) -> Result<Arc<dyn PeerVerifier>, Failure> {
    if let Some(k) = &trust.server_key {
        return Ok(Arc::new(Pinned(PublicKey::from_base64(k).map_err(err)?)));
    }
    let path = known_hosts_path(trust.known_hosts.as_deref())?;
    Ok(Arc::new(KnownHosts::open(&path).map_err(err)?))
}

pub(crate) async fn connect(endpoint: &str, trust: &Trust) -> Result<Client, Failure> {
    let mut cfg = NetworkConfig::from_env().map_err(err)?;
    // The address decides whether the client needs the TLS connector.
    cfg.client.address = netproto::endpoint_string(endpoint);
    if let Some(ca) = &trust.ca {
        cfg.tls.ca_path = path_string(ca);
    }
    cfg.tls.pins.extend(trust.pins.iter().cloned());
    cfg.tls.pins_only |= trust.pins_only;
    if let (Some(c), Some(k)) = (&trust.client_cert, &trust.client_key) {
        cfg.tls.client_cert_path = path_string(c);
        cfg.tls.client_key_path = path_string(k);
    }
    cfg.validate().map_err(err)?;
    let endpoint = cfg.client.address.parse().map_err(err)?;
    let key = Keypair::generate(&mut rand::rngs::OsRng);
    let client_cfg = netproto::client_config(&cfg, Some(key), verifier(trust)?).map_err(err)?;
    Client::connect(&endpoint, client_cfg).await.map_err(err)
}

pub(crate) async fn ping(
    endpoint: &str,
    count: u32,
    interval: Duration,
    trust: &Trust,
) -> Result<(), Failure> {
    let client = connect(endpoint, trust).await?;
    println!("PING {endpoint}");
    let mut times = Vec::new();
    for seq in 1..=count {
        let started = Instant::now();
        match client.call(Message::Ping).await {
            Ok(_) => {
                let t = started.elapsed();
                println!(
                    "reply from {endpoint}: seq={seq} time={:.3} ms",
                    t.as_secs_f64() * 1e3
                );
                times.push(t);
            }
            Err(e) => println!("seq={seq}: {e}"),
        }
        if seq < count {
            tokio::time::sleep(interval).await;
        }
    }
    let lost = count as usize - times.len();
    println!("--- {endpoint} ping statistics ---");
    println!("{count} sent, {} received, {lost} lost", times.len());
    if let (Some(min), Some(max)) = (times.iter().min(), times.iter().max()) {
        let avg = times.iter().sum::<Duration>() / u32::try_from(times.len()).unwrap_or(1);
        println!(
            "rtt min/avg/max = {:.3}/{:.3}/{:.3} ms",
            min.as_secs_f64() * 1e3,
            avg.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
    let _ = client.close().await;
    if times.is_empty() {
        return Err(err(netproto::ServiceError::ConnectionClosed));
    }
    Ok(())
}

pub(crate) async fn call(
    endpoint: &str,
    opcode: &str,
    payload: Option<String>,
    trust: &Trust,
) -> Result<(), Failure> {
    let client = connect(endpoint, trust).await?;
    let payload = payload.unwrap_or_default();
    let request = match opcode {
        "PING" => Message::Ping,
        "ECHO" => Message::Echo(payload),
        "DATA" => Message::Data(payload.into_bytes()),
        command => Message::Custom {
            command: command.to_owned(),
            payload: payload.into_bytes(),
        },
    };
    let started = Instant::now();
    let result = client.call(request).await;
    let elapsed = started.elapsed();
    let _ = client.close().await;
    let answer = match result {
        Ok(answer) => answer,
        Err(e) => {
            if let ServiceError::Remote { code, .. } = &e {
                eprintln!("hint: {}", remote_hint(*code));
            }
            return Err(err(e));
        }
    };
    println!("{answer:?}  ({:.3} ms)", elapsed.as_secs_f64() * 1e3);
    Ok(())
}

/// What to do about an ERR code the server answered with.
fn remote_hint(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::UNKNOWN_OPCODE => {
            "the server has no handler for this opcode (`netproto serve` answers PING, ECHO and DATA)"
        }
        ErrorCode::BAD_REQUEST => "the server could not decode the request payload",
        ErrorCode::BUSY => "the server is at its connection limit; try again later",
        ErrorCode::TOO_LARGE => "a size limit was exceeded (the server's max_message_size, or ours for the reply)",
        ErrorCode::SHUTTING_DOWN => "the server is shutting down; try again on a new connection",
        ErrorCode::TIMEOUT => "the request or the connection timed out on the server",
        ErrorCode::PROTOCOL => "the server saw a protocol violation (see docs/WIRE.md)",
        _ => "the handler failed on the server (see the server's log)",
    }
}
