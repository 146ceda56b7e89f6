//! `netproto`: try netproto out, run a daemon, talk to one.
//!
//! Exit codes: 0 success, 1 runtime or connection failure, 2 usage error,
//! 3 configuration error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod cluster;
mod demo;
mod metrics;

use clap::{Parser, Subcommand};
use netproto::{
    AnyPeer, Client, DevCa, Dispatcher, Error, ErrorCode, Keypair, KnownHosts, Message,
    NetworkConfig, PeerVerifier, Pinned, PublicKey, Server, ServiceError, Validity,
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
    /// Start a server and clients in this process over TCP, a Unix socket,
    /// TLS (with a generated development certificate) and UDP, and print
    /// handshake time, round-trip percentiles and throughput; then large
    /// messages over UDP sockets that drop 5 % of their datagrams (each must
    /// arrive exactly once) and a five-node cluster.
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
        /// Listen here instead of `server.address` (`host:port`,
        /// `tcp://host:port`, `unix:///path`, `tls://host:port`,
        /// `udp://host:port`). Repeat it to serve several at once (TCP and
        /// UDP from one daemon, for example).
        #[arg(long)]
        address: Vec<String>,
        /// TLS certificate chain (PEM) for a `tls://` address (`tls.cert_path`).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// Its private key (PEM) (`tls.key_path`).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Require client certificates issued by this CA (mutual TLS).
        #[arg(long)]
        client_ca: Option<PathBuf>,
        /// Serve every metric in the Prometheus text format at
        /// `http://ADDR/metrics` (for example `127.0.0.1:9100`; port 0
        /// picks a free one, printed at start; `metrics.listen`).
        /// docs/METRICS.md lists them.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Measure round trips to a server, like ping(8).
    Ping {
        /// `host:port`, `tcp://host:port`, `unix:///path` or `tls://host:port`.
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
        /// `host:port`, `tcp://host:port`, `unix:///path` or `tls://host:port`.
        endpoint: String,
        /// `PING`, `ECHO`, `DATA`, or a custom command.
        opcode: String,
        /// Text payload (ECHO text, DATA bytes, or the custom command's payload).
        payload: Option<String>,
        #[command(flatten)]
        trust: Trust,
    },
    /// Cluster membership: join a cluster and watch it.
    Cluster {
        #[command(subcommand)]
        action: cluster::ClusterAction,
    },
    /// Create a static X25519 identity key file (mode 0600).
    Keygen {
        /// Where to write it.
        #[arg(long, default_value = "netproto.key")]
        out: PathBuf,
    },
    /// Create development TLS certificates: a self-signed server
    /// certificate, or (with --ca) a CA with a server and a client
    /// certificate for mutual TLS.
    Cert {
        /// Directory to write the PEM files to (created if missing).
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// DNS names and IP addresses the server certificate is valid for.
        #[arg(long = "san", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()])]
        sans: Vec<String>,
        /// Also create a dev CA (ca.pem) that signs server.pem and client.pem.
        #[arg(long)]
        ca: bool,
        /// Days the certificates are valid.
        #[arg(long, default_value_t = 365)]
        days: u64,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Run the performance harness: every workload against netproto and
    /// against baselines measured in the same run (docs/BENCHMARKS.md).
    Bench {
        /// Passes per figure (the table shows the median and min–max);
        /// default 3, or 1 with --quick.
        #[arg(long)]
        runs: Option<usize>,
        /// Tiny sizes and durations: checks that the harness works (seconds),
        /// measures nothing.
        #[arg(long)]
        quick: bool,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Run only these workloads (W1 … W9), comma-separated.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Run only these systems (raw-tcp, raw-uds, snow-tcp, rustls-aes,
        /// rustls-chacha, raw-udp, quinn, netproto-tcp, netproto-uds,
        /// netproto-tls, netproto-udp, netproto-client).
        #[arg(long, value_delimiter = ',')]
        systems: Vec<String>,
    },
    /// The child server of the W5 benchmark (used by `bench`).
    #[command(hide = true)]
    BenchPeer,
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
    /// TLS: CA bundle to trust (default: `tls.ca_path`, else the Mozilla roots).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// TLS: certificate pin the server must match (repeatable).
    #[arg(long = "pin")]
    pins: Vec<String>,
    /// TLS: trust the pins alone, without CA validation.
    #[arg(long, requires = "pins")]
    pins_only: bool,
    /// TLS: client certificate for mutual TLS (PEM).
    #[arg(long, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// TLS: its private key (PEM).
    #[arg(long, requires = "client_cert")]
    client_key: Option<PathBuf>,
}

enum Failure {
    Runtime(Error),
    Config(Error),
    Bench(String),
    /// A demo row whose check failed (what it saw).
    Demo(String),
    Metrics(metrics::MetricsError),
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
                Failure::Bench(message) => {
                    eprintln!("netproto: bench: {message}");
                    return ExitCode::from(1);
                }
                Failure::Demo(message) => {
                    eprintln!("netproto: demo: {message}");
                    return ExitCode::from(1);
                }
                Failure::Metrics(e) => {
                    eprintln!("netproto: {e}");
                    return ExitCode::from(1);
                }
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
        Command::Demo { round_trips } => demo::demo(round_trips).await,
        Command::Serve {
            config,
            key,
            address,
            tls_cert,
            tls_key,
            client_ca,
            metrics,
        } => {
            let overrides = ServeOverrides {
                address,
                tls_cert,
                tls_key,
                client_ca,
                metrics,
            };
            serve(config.as_deref(), key.as_deref(), overrides).await
        }
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
        Command::Cluster { action } => cluster::run(action).await,
        Command::Keygen { out } => keygen(&out),
        Command::Bench {
            runs,
            quick,
            json,
            only,
            systems,
        } => bench(runs, quick, json.as_deref(), only, systems).await,
        Command::BenchPeer => netproto_bench::run_peer()
            .await
            .map_err(|e| Failure::Bench(e.to_string())),
        Command::Cert {
            out,
            sans,
            ca,
            days,
            force,
        } => cert(&out, &sans, ca, days, force),
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

struct ServeOverrides {
    address: Vec<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    metrics: Option<std::net::SocketAddr>,
}

fn path_string(p: &Path) -> String {
    p.display().to_string()
}

async fn serve(
    config: Option<&Path>,
    key: Option<&Path>,
    overrides: ServeOverrides,
) -> Result<(), Failure> {
    let mut cfg = NetworkConfig::load(config).map_err(err)?;
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
    if let Some(p) = config {
        if !p.exists() {
            return Err(err(netproto::ConfigError::Io {
                path: p.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            }));
        }
    }
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

async fn connect(endpoint: &str, trust: &Trust) -> Result<Client, Failure> {
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

fn keygen(out: &Path) -> Result<(), Failure> {
    let key = Keypair::generate(&mut rand::rngs::OsRng);
    key.save(out).map_err(err)?;
    println!("wrote {} (mode 0600)", out.display());
    println!("public key  {}", key.public());
    println!("fingerprint {}", key.public().fingerprint());
    Ok(())
}

async fn bench(
    runs: Option<usize>,
    quick: bool,
    json: Option<&Path>,
    only: Vec<String>,
    systems: Vec<String>,
) -> Result<(), Failure> {
    let mut opts = if quick {
        netproto_bench::Options::quick()
    } else {
        netproto_bench::Options::full()
    };
    if let Some(n) = runs {
        opts.runs = n;
    }
    opts.only = only;
    opts.systems = systems;
    opts.peer_exe = std::env::current_exe().ok();
    let bar = demo::progress("bench", "starting", 0);
    let report = netproto_bench::run(&opts, &|step| {
        bar.set_length(step.total as u64);
        bar.set_position(step.done as u64);
        bar.set_message(step.label);
    })
    .await
    .map_err(|e| Failure::Bench(e.to_string()))?;
    bar.finish_and_clear();
    print!("{}", report.table());
    if let Some(path) = json {
        let text = report
            .to_json()
            .map_err(|e| Failure::Bench(e.to_string()))?;
        std::fs::write(path, text)
            .map_err(|e| Failure::Bench(format!("{}: {e}", path.display())))?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}

fn refuse_overwrite(paths: &[PathBuf], force: bool) -> Result<(), Failure> {
    if force {
        return Ok(());
    }
    if let Some(p) = paths.iter().find(|p| p.exists()) {
        return Err(err(netproto::TlsError::File {
            path: p.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists; pass --force to overwrite",
            ),
        }));
    }
    Ok(())
}

fn cert(out: &Path, sans: &[String], with_ca: bool, days: u64, force: bool) -> Result<(), Failure> {
    std::fs::create_dir_all(out).map_err(|source| {
        err(netproto::TlsError::File {
            path: out.to_path_buf(),
            source,
        })
    })?;
    let validity = Validity::days(days);
    let (server_pem, server_key) = (out.join("server.pem"), out.join("server.key"));
    if !with_ca {
        refuse_overwrite(&[server_pem.clone(), server_key.clone()], force)?;
        let generated = netproto::self_signed(
            sans.first().map_or("localhost", String::as_str),
            sans,
            validity,
        )
        .map_err(err)?;
        generated.write(&server_pem, &server_key).map_err(err)?;
        println!(
            "wrote {} and {} (key mode 0600)",
            server_pem.display(),
            server_key.display()
        );
        if let Some(pin) = generated.spki_pin() {
            println!("pin  {pin}");
        }
        println!(
            "serve:   netproto serve --address tls://127.0.0.1:9443 --tls-cert {} --tls-key {}",
            server_pem.display(),
            server_key.display()
        );
        println!(
            "connect: netproto ping tls://localhost:9443 --ca {}",
            server_pem.display()
        );
        return Ok(());
    }
    let (ca_pem, client_pem, client_key) = (
        out.join("ca.pem"),
        out.join("client.pem"),
        out.join("client.key"),
    );
    refuse_overwrite(
        &[
            ca_pem.clone(),
            server_pem.clone(),
            server_key.clone(),
            client_pem.clone(),
            client_key.clone(),
        ],
        force,
    )?;
    let ca = DevCa::new("netproto development CA").map_err(err)?;
    let server = ca.issue_server(sans, validity).map_err(err)?;
    let client = ca.issue_client("netproto client", validity).map_err(err)?;
    std::fs::write(&ca_pem, &ca.certificate().cert_pem).map_err(|source| {
        err(netproto::TlsError::File {
            path: ca_pem.clone(),
            source,
        })
    })?;
    server.write(&server_pem, &server_key).map_err(err)?;
    client.write(&client_pem, &client_key).map_err(err)?;
    for p in [&ca_pem, &server_pem, &server_key, &client_pem, &client_key] {
        println!("wrote {}", p.display());
    }
    println!("(the CA's private key is not kept: run again to issue more)");
    if let Some(pin) = server.spki_pin() {
        println!("server pin  {pin}");
    }
    println!(
        "serve:   netproto serve --address tls://127.0.0.1:9443 --tls-cert {} --tls-key {} --client-ca {}",
        server_pem.display(),
        server_key.display(),
        ca_pem.display()
    );
    println!(
        "connect: netproto ping tls://localhost:9443 --ca {} --client-cert {} --client-key {}",
        ca_pem.display(),
        client_pem.display(),
        client_key.display()
    );
    Ok(())
}
