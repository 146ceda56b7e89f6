//! `netproto`: try netproto out, run a daemon, talk to one.
//!
//! Exit codes: 0 success, 1 runtime or connection failure, 2 usage error,
//! 3 configuration error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use netproto::{
    AnyPeer, Client, Dispatcher, Error, Keypair, KnownHosts, Message, NetworkConfig, PeerVerifier,
    Pinned, PublicKey, Server,
};

/// Secure message protocol: demo, daemon and client tools.
#[derive(Parser)]
#[command(name = "netproto", version, about)]
struct Cli {
    /// Print the whole error chain on failure.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a server and clients in this process over TCP and a Unix socket,
    /// and print handshake time, round-trip percentiles and throughput.
    Demo {
        /// Round trips measured per transport.
        #[arg(long, default_value_t = 2000)]
        round_trips: usize,
    },
    /// Run an echo/ping daemon (Ctrl-C shuts it down gracefully).
    Serve {
        /// Configuration file (defaults are used for keys it does not set;
        /// NP_* environment variables override both).
        #[arg(long, env = "NP_CONFIG")]
        config: Option<PathBuf>,
        /// Static key file (created with `netproto keygen`); a fresh key is
        /// generated for this run if omitted.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Measure round trips to a server, like ping(8).
    Ping {
        /// `host:port`, `tcp://host:port` or `unix:///path`.
        endpoint: String,
        /// Number of pings.
        #[arg(short = 'c', long, default_value_t = 5)]
        count: u32,
        /// Milliseconds between pings.
        #[arg(short = 'i', long, default_value_t = 1000)]
        interval: u64,
        #[command(flatten)]
        trust: Trust,
    },
    /// Send one request and print the answer.
    Call {
        /// `host:port`, `tcp://host:port` or `unix:///path`.
        endpoint: String,
        /// `PING`, `ECHO`, `DATA`, or a custom command.
        opcode: String,
        /// Text payload (ECHO text, DATA bytes, or the custom command's payload).
        payload: Option<String>,
        #[command(flatten)]
        trust: Trust,
    },
    /// Create a static X25519 identity key file (mode 0600).
    Keygen {
        /// Where to write it.
        #[arg(long, default_value = "netproto.key")]
        out: PathBuf,
    },
    /// Print an example configuration or check a file.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print a commented configuration with every key at its default.
    Example,
    /// Load a file (plus NP_* variables) and report the first problem.
    Check {
        /// The file.
        file: PathBuf,
    },
}

/// How the client decides to trust the server.
#[derive(clap::Args)]
struct Trust {
    /// Pin this server public key (base64); otherwise trust on first use.
    #[arg(long, env = "NP_SERVER_KEY")]
    server_key: Option<String>,
    /// Known-hosts file for trust on first use.
    #[arg(long, env = "NP_KNOWN_HOSTS")]
    known_hosts: Option<PathBuf>,
}

enum Failure {
    Runtime(Error),
    Config(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::Config(_) => Self::Config(e),
            other => Self::Runtime(other),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netproto: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(cli.command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let (code, e) = match failure {
                Failure::Config(e) => (3, e),
                Failure::Runtime(e) => (1, e),
            };
            eprintln!("netproto: {e}");
            if cli.verbose {
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    eprintln!("  caused by: {s}");
                    source = s.source();
                }
            }
            ExitCode::from(code)
        }
    }
}

fn err(e: impl Into<Error>) -> Failure {
    Failure::from(e.into())
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Demo { round_trips } => demo(round_trips).await,
        Command::Serve { config, key } => serve(config.as_deref(), key.as_deref()).await,
        Command::Ping {
            endpoint,
            count,
            interval,
            trust,
        } => ping(&endpoint, count, Duration::from_millis(interval), &trust).await,
        Command::Call {
            endpoint,
            opcode,
            payload,
            trust,
        } => call(&endpoint, &opcode, payload, &trust).await,
        Command::Keygen { out } => keygen(&out),
        Command::Config { action } => match action {
            ConfigAction::Example => {
                print!("{}", netproto::example_config());
                Ok(())
            }
            ConfigAction::Check { file } => {
                let cfg = NetworkConfig::load(Some(&file)).map_err(err)?;
                if !file.exists() {
                    return Err(err(netproto::ConfigError::Io {
                        path: file.display().to_string(),
                        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                    }));
                }
                println!(
                    "{}: ok (server {}, client {})",
                    file.display(),
                    cfg.server.address,
                    cfg.client.address
                );
                Ok(())
            }
        },
    }
}

fn echo_dispatcher() -> Dispatcher {
    let mut d = Dispatcher::new();
    d.register("PING", |_| Ok(Message::Pong));
    d.register("ECHO", Ok);
    d.register("DATA", Ok);
    d
}

async fn serve(config: Option<&Path>, key: Option<&Path>) -> Result<(), Failure> {
    let cfg = NetworkConfig::load(config).map_err(err)?;
    if let Some(p) = config {
        if !p.exists() {
            return Err(err(netproto::ConfigError::Io {
                path: p.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            }));
        }
    }
    netproto::logging::init(&cfg.logging).map_err(err)?;
    let key = match key {
        Some(p) => Keypair::load(p).map_err(err)?,
        None => Keypair::generate(&mut rand::rngs::OsRng),
    };
    println!(
        "server key {} ({})",
        key.public(),
        key.public().fingerprint()
    );
    let server = Server::bind(
        netproto::server_config(&cfg, key, Arc::new(AnyPeer)).map_err(err)?,
        echo_dispatcher(),
    )
    .await
    .map_err(err)?;
    println!(
        "serving PING, ECHO and DATA on {} (Ctrl-C to stop)",
        server.local_endpoint()
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

fn known_hosts_path(explicit: Option<&Path>) -> PathBuf {
    explicit.map_or_else(
        || {
            std::env::var_os("HOME")
                .map_or_else(std::env::temp_dir, PathBuf::from)
                .join(".netproto_known_hosts")
        },
        Path::to_path_buf,
    )
}

fn verifier(trust: &Trust) -> Result<Arc<dyn PeerVerifier>, Failure> {
    if let Some(k) = &trust.server_key {
        return Ok(Arc::new(Pinned(PublicKey::from_base64(k).map_err(err)?)));
    }
    let path = known_hosts_path(trust.known_hosts.as_deref());
    Ok(Arc::new(KnownHosts::open(&path).map_err(err)?))
}

async fn connect(endpoint: &str, trust: &Trust) -> Result<Client, Failure> {
    let cfg = NetworkConfig::from_env().map_err(err)?;
    let endpoint = netproto::endpoint_string(endpoint).parse().map_err(err)?;
    let key = Keypair::generate(&mut rand::rngs::OsRng);
    let client_cfg = netproto::client_config(&cfg, Some(key), verifier(trust)?).map_err(err)?;
    Client::connect(&endpoint, client_cfg).await.map_err(err)
}

async fn ping(
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

async fn call(
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
    let answer = result.map_err(err)?;
    println!("{answer:?}  ({:.3} ms)", elapsed.as_secs_f64() * 1e3);
    Ok(())
}

fn keygen(out: &Path) -> Result<(), Failure> {
    let key = Keypair::generate(&mut rand::rngs::OsRng);
    key.save(out).map_err(err)?;
    println!("wrote {} (mode 0600)", out.display());
    println!("public key  {}", key.public());
    println!("fingerprint {}", key.public().fingerprint());
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn demo(round_trips: usize) -> Result<(), Failure> {
    let socket = std::env::temp_dir().join(format!("netproto-demo-{}.sock", std::process::id()));
    let transports = [
        ("tcp", "127.0.0.1:0".to_owned()),
        ("unix", format!("unix://{}", socket.display())),
    ];
    println!("netproto demo: Noise_XX_25519_ChaChaPoly_SHA256, {round_trips} echo round trips per transport\n");
    println!(
        "{:<9} {:>14} {:>12} {:>12} {:>24}",
        "transport", "handshake", "rtt p50", "rtt p99", "calls/s (64 in flight)"
    );
    for (name, address) in transports {
        let mut cfg = NetworkConfig::default();
        cfg.server.address = address;
        let server_key = Keypair::generate(&mut rand::rngs::OsRng);
        let server_pub = *server_key.public();
        let server = Server::bind(
            netproto::server_config(&cfg, server_key, Arc::new(AnyPeer)).map_err(err)?,
            echo_dispatcher(),
        )
        .await
        .map_err(err)?;
        let handle = server.handle();
        let running = tokio::spawn(server.run());

        let client_cfg = netproto::client_config(
            &cfg,
            Some(Keypair::generate(&mut rand::rngs::OsRng)),
            Arc::new(Pinned(server_pub)),
        )
        .map_err(err)?;
        let started = Instant::now();
        let client = Client::connect(handle.endpoint(), client_cfg)
            .await
            .map_err(err)?;
        let handshake = started.elapsed();

        let mut rtts = Vec::with_capacity(round_trips);
        let text = "x".repeat(64);
        for _ in 0..round_trips {
            let t = Instant::now();
            client
                .call(Message::Echo(text.clone()))
                .await
                .map_err(err)?;
            rtts.push(t.elapsed());
        }
        rtts.sort_unstable();

        let total = 20_000usize;
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..64 {
            let c = client.clone();
            let text = text.clone();
            workers.push(tokio::spawn(async move {
                for _ in 0..total / 64 {
                    c.call(Message::Echo(text.clone())).await?;
                }
                Ok::<_, netproto::ServiceError>(())
            }));
        }
        for w in workers {
            w.await
                .map_err(|_| err(netproto::ServiceError::ConnectionClosed))?
                .map_err(err)?;
        }
        #[allow(clippy::cast_precision_loss)]
        let rate = (total / 64 * 64) as f64 / started.elapsed().as_secs_f64();
        println!(
            "{:<9} {:>11.3} ms {:>9.1} µs {:>9.1} µs {:>24.0}",
            name,
            handshake.as_secs_f64() * 1e3,
            percentile(&rtts, 0.50).as_secs_f64() * 1e6,
            percentile(&rtts, 0.99).as_secs_f64() * 1e6,
            rate
        );
        client.close().await.map_err(err)?;
        handle.shutdown(Some(Duration::from_secs(1)));
        running
            .await
            .map_err(|_| err(netproto::ServiceError::ConnectionClosed))?
            .map_err(err)?;
    }
    println!("\nTLS and UDP rows arrive with those transports.");
    Ok(())
}
