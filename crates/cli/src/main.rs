//! `netproto`: try netproto out, run a daemon, talk to one.
//!
//! Exit codes: 0 success, 1 runtime or connection failure, 2 usage error,
//! 3 configuration error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

mod bench;
mod client;
mod cluster;
mod demo;
mod keys;
mod metrics;
mod serve;

use clap::{Parser, Subcommand};
use netproto::{Error, NetworkConfig};

/// What `netproto --help` says about the environment.
const ENVIRONMENT: &str = "\
Environment:
  NP_CONFIG               configuration file (as --config)
  NP_SERVER_KEY           server public key to pin (as --server-key)
  NP_KNOWN_HOSTS          known-hosts file (as --known-hosts)
  NP_<SECTION>_<KEY>      any configuration key, over the file: NP_SERVER_ADDRESS,
                          NP_SERVER_MAX_CONNECTIONS, NP_CLIENT_RESPONSE_TIMEOUT,
                          NP_TRANSPORT_COMPRESSION_ENABLED, NP_TLS_CERT_PATH,
                          NP_UDP_MAX_DATAGRAM, NP_LOGGING_LOG_LEVEL,
                          NP_LOGGING_FORMAT, NP_METRICS_LISTEN, ... (every key:
                          netproto config example)";

/// Secure message protocol: demo, daemon and client tools.
#[derive(Parser)]
#[command(name = "netproto", version, about, after_help = ENVIRONMENT)]
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
        /// Run only these workloads (W1 … W10), comma-separated.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Run only these systems (raw-tcp, raw-uds, snow-tcp, rustls-aes,
        /// rustls-chacha, raw-udp, quinn, netproto-tcp, netproto-tcp-chacha,
        /// netproto-uds, netproto-tls, netproto-udp, netproto-client).
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    /// to standard output, e.g. `netproto completions bash >
    /// /etc/bash_completion.d/netproto`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
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
pub(crate) struct Trust {
    /// Pin this server public key (base64); otherwise trust on first use.
    #[arg(long, env = "NP_SERVER_KEY")]
    pub(crate) server_key: Option<String>,
    /// Known-hosts file for trust on first use.
    #[arg(long, env = "NP_KNOWN_HOSTS")]
    pub(crate) known_hosts: Option<PathBuf>,
    /// TLS: CA bundle to trust (default: `tls.ca_path`, else the Mozilla roots).
    #[arg(long)]
    pub(crate) ca: Option<PathBuf>,
    /// TLS: certificate pin the server must match (repeatable).
    #[arg(long = "pin")]
    pub(crate) pins: Vec<String>,
    /// TLS: trust the pins alone, without CA validation.
    #[arg(long, requires = "pins")]
    pub(crate) pins_only: bool,
    /// TLS: client certificate for mutual TLS (PEM).
    #[arg(long, requires = "client_key")]
    pub(crate) client_cert: Option<PathBuf>,
    /// TLS: its private key (PEM).
    #[arg(long, requires = "client_cert")]
    pub(crate) client_key: Option<PathBuf>,
}

pub(crate) enum Failure {
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

/// A path as the configuration stores it.
pub(crate) fn path_string(p: &Path) -> String {
    p.display().to_string()
}

pub(crate) fn err(e: impl Into<Error>) -> Failure {
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
            let overrides = serve::ServeOverrides {
                address,
                tls_cert,
                tls_key,
                client_ca,
                metrics,
            };
            serve::serve(config.as_deref(), key.as_deref(), overrides).await
        }
        Command::Ping {
            endpoint,
            count,
            interval,
            trust,
        } => client::ping(&endpoint, count, Duration::from_millis(interval), &trust).await,
        Command::Call {
            endpoint,
            opcode,
            payload,
            trust,
        } => client::call(&endpoint, &opcode, payload, &trust).await,
        Command::Cluster { action } => cluster::run(action).await,
        Command::Keygen { out } => keys::keygen(&out),
        Command::Bench {
            runs,
            quick,
            json,
            only,
            systems,
        } => bench::bench(runs, quick, json.as_deref(), only, systems).await,
        Command::BenchPeer => netproto_bench::run_peer()
            .await
            .map_err(|e| Failure::Bench(e.to_string())),
        Command::Cert {
            out,
            sans,
            ca,
            days,
            force,
        } => keys::cert(&out, &sans, ca, days, force),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "netproto",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Config { action } => match action {
            ConfigAction::Example => {
                print!("{}", netproto::example_config());
                Ok(())
            }
            ConfigAction::Check { file } => {
                let cfg = NetworkConfig::load_existing(Some(&file)).map_err(err)?;
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
