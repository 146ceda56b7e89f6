//! # netproto-bench
//!
//! The performance harness behind `netproto bench`: each workload runs
//! against netproto (TCP, Unix socket, TLS, UDP) and, in the same run on the
//! same machine, against baselines written here — raw tokio TCP and Unix
//! sockets with `LengthDelimitedCodec` (the floor), `snow` Noise_XX over TCP
//! (u16 framing, one record per message), tokio-rustls (ring; AES-256-GCM
//! and ChaCha20-Poly1305 suites), raw tokio UDP and quinn. Client and server share one process and a
//! multi-threaded runtime, TCP_NODELAY on; W5's and W9's server is a child
//! process (W5 reads its memory on its own; W9 runs client and server as
//! users do).
//!
//! | id | workload | figure |
//! |----|----------|--------|
//! | W1 | ping-pong, 64 B each way, 20,000 round trips after 1,000 warm-up | p50, p99, p99.9 (µs) |
//! | W2 | pipelined echo, 64 B, 128 in flight, one connection, 5 s | messages/s |
//! | W3 | one-way 64 KiB messages, 5 s | MB/s |
//! | W4 | 500 × (connect + handshake + first 64 B echo), sequential and 8 concurrent connectors (XX); netproto-tcp also IK and NK sequential | handshakes/s |
//! | W5 | 10,000 idle connections, then 1,000 of them echoing | server RSS per idle connection, messages/s, p99 |
//! | W6 | `Server` + `Dispatcher` + `Client::call`, 64 concurrent callers on one connection; again with the route behind an empty tower layer | requests/s |
//! | W7 | one-way 1 MiB messages, 8 in flight (raw TCP, quinn, netproto over TCP and UDP) | MB/s |
//! | W8 | W7 over netproto-udp with 5 % of datagrams dropped each way | goodput MB/s |
//! | W9 | sequential 64 B calls, and 64 KiB calls 4 in flight, to a server in a child process: `Client::call` to a `Server`, a bare `Connection`, raw TCP (`W9-UDS`, `W9-TLS`: the same over Unix sockets and TLS, next to raw Unix sockets and tokio-rustls) | p50, p99, p99.9 (µs), calls/s, MB/s |
//! | W10 | urgent 64 B round trips on one connection, idle and while it carries 64 MiB bulk messages (3 in turn): priorities on, on with a 64 KiB `SO_SNDBUF` or a 128 KiB `TCP_NOTSENT_LOWAT` on the sender, off | p50, p99 (µs) |
//!
//! The datagram systems (raw tokio UDP, quinn 0.11 with ring and a
//! self-signed certificate, netproto over UDP) run W1; quinn and
//! netproto-udp also W2–W4 and W7; raw UDP only W1 (it has no delivery
//! guarantee to time anything else with).
//!
//! Every figure is the median of `runs` passes with min–max, and each
//! netproto figure is also given as a ratio to each baseline of the same
//! workload. `quick` shrinks every workload so a pass ends in seconds: it
//! checks that the harness works, not the speed.
//!
//! ```no_run
//! # async fn f() -> Result<(), netproto_bench::BenchError> {
//! let report = netproto_bench::run(&netproto_bench::Options::quick(), &|_| {}).await?;
//! println!("{}", report.table());
//! # Ok(())
//! # }
//! ```

mod calls;
mod datagram;
mod links;
mod lossy;
mod peer;
mod priority;
mod report;
mod scale;
mod systems;
mod workloads;

use std::path::PathBuf;
use std::sync::Arc;

pub use lossy::{lossy_delivery, LossyDelivery};
pub use peer::run_peer;
pub use report::{Measurement, Ratio, Report};
pub use systems::System;

use systems::Fixture;
use workloads::Plan;

/// What went wrong while benchmarking.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// Setting a system up failed (files, certificates, the peer process).
    #[error("setup: {0}")]
    Setup(String),
    /// A connection closed in the middle of a workload.
    #[error("connection closed during the workload")]
    Closed,
    /// I/O.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A netproto connection failed.
    #[error(transparent)]
    Transport(#[from] netproto_transport::TransportError),
    /// A netproto service call failed.
    #[error(transparent)]
    Service(#[from] netproto_service::ServiceError),
    /// TLS settings.
    #[error(transparent)]
    Tls(#[from] netproto_transport_tls::TlsError),
    /// rustls refused a configuration.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The snow baseline failed.
    #[error("snow: {0}")]
    Snow(String),
    /// A netproto UDP endpoint failed.
    #[error(transparent)]
    Udp(#[from] netproto_transport_udp::UdpError),
}

/// Which workloads to run, how often, how big.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Passes per figure (3).
    pub runs: usize,
    /// Small sizes and short durations (a smoke test, not a measurement).
    pub quick: bool,
    /// Workloads to run (`["W1", …]`; empty: all).
    pub only: Vec<String>,
    /// Systems to run (keys such as `netproto-tcp`; empty: all). Ratios
    /// need the baselines in the same run.
    pub systems: Vec<String>,
    /// The `netproto` executable for W5's and W9's child server; both are
    /// skipped without it.
    pub peer_exe: Option<PathBuf>,
}

impl Options {
    /// Three full passes of everything.
    pub fn full() -> Self {
        Self {
            runs: 3,
            quick: false,
            only: Vec::new(),
            systems: Vec::new(),
            peer_exe: None,
        }
    }

    /// One quick pass of everything.
    pub fn quick() -> Self {
        Self {
            runs: 1,
            quick: true,
            ..Self::full()
        }
    }

    fn wants(&self, workload: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|w| w.eq_ignore_ascii_case(workload))
    }

    /// Whether `system` runs `workload` in this run. A quick run skips
    /// quinn's bulk workloads: in a debug build (the CLI test's) its
    /// 64 KiB windowed sends took minutes after the timed window, which is
    /// not understood yet (release runs finish in time).
    fn runs(&self, system: System, workload: &str) -> bool {
        self.wants(workload)
            && system.runs(workload)
            && !(self.quick && system == System::Quinn && matches!(workload, "W3" | "W7"))
    }
}

/// Progress: one call per finished (workload, system, pass).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Step {
    /// Steps finished so far.
    pub done: usize,
    /// Steps in the whole run.
    pub total: usize,
    /// What just finished.
    pub label: String,
}

/// The workloads run once per system (where [`System::runs`] says so).
const W_PER_SYSTEM: [&str; 5] = ["W1", "W2", "W3", "W4", "W7"];

/// The `p` quantile (0.0–1.0, nearest rank) of samples sorted in
/// ascending order; zero for no samples. The harness's and
/// `netproto demo`'s percentiles.
pub fn quantile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// How many (workload, system) steps one pass runs.
fn steps_per_pass(opts: &Options, systems: &[System]) -> usize {
    let with_peer = opts.peer_exe.is_some();
    let per_system = |w: &str| systems.iter().filter(|&&s| opts.runs(s, w)).count();
    W_PER_SYSTEM.iter().map(|w| per_system(w)).sum::<usize>()
        + usize::from(opts.wants("W5") && with_peer)
        + 2 * usize::from(opts.wants("W6"))
        + usize::from(opts.wants("W10"))
        // W4's IK and NK rows.
        + usize::from(systems.contains(&System::NetprotoTcp) && opts.runs(System::NetprotoTcp, "W4"))
        + usize::from(opts.wants("W8") && systems.contains(&System::NetprotoUdp))
        + if with_peer && opts.wants("W9") {
            let selected: Vec<System> = systems
                .iter()
                .copied()
                .filter(|&s| opts.runs(s, "W9"))
                .collect();
            calls::plan(&selected).len()
        } else {
            0
        }
}

/// Runs the selected workloads and returns the figures.
///
/// # Errors
/// The first workload that fails (a benchmark that cannot run is not
/// reported as a number).
pub async fn run(opts: &Options, progress: &(dyn Fn(Step) + Sync)) -> Result<Report, BenchError> {
    let plan = if opts.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let fx = Arc::new(Fixture::new()?);
    let runs = opts.runs.max(1);
    let mut report = Report::new(opts.quick, runs);
    let systems: Vec<System> = System::ALL
        .into_iter()
        .filter(|s| cfg!(unix) || !matches!(s, System::RawUds | System::NetprotoUds))
        .filter(|s| opts.systems.is_empty() || opts.systems.iter().any(|k| k == s.key()))
        .collect();
    let per_pass = steps_per_pass(opts, &systems);
    let total = per_pass * runs;
    let mut done = 0;
    let mut step = |label: String| {
        done += 1;
        progress(Step { done, total, label });
    };
    for pass in 0..runs {
        for &system in &systems {
            if opts.runs(system, "W1") {
                let [p50, p99, p999] = workloads::ping_pong(system, &fx, plan).await?;
                report.record("W1", "p50", "µs", system, pass, p50);
                report.record("W1", "p99", "µs", system, pass, p99);
                report.record("W1", "p99.9", "µs", system, pass, p999);
                step(format!("W1 {}", system.key()));
            }
            if opts.runs(system, "W2") {
                let v = workloads::pipelined(system, &fx, plan).await?;
                report.record("W2", "msg/s", "msg/s", system, pass, v);
                step(format!("W2 {}", system.key()));
            }
            if opts.runs(system, "W3") {
                let v = workloads::bulk(system, &fx, plan).await?;
                report.record("W3", "MB/s", "MB/s", system, pass, v);
                step(format!("W3 {}", system.key()));
            }
            if opts.runs(system, "W4") {
                let [seq, conc] = workloads::handshakes(system, &fx, plan).await?;
                report.record("W4", "sequential", "hs/s", system, pass, seq);
                report.record("W4", "8 concurrent", "hs/s", system, pass, conc);
                step(format!("W4 {}", system.key()));
                if system == System::NetprotoTcp {
                    for (metric, v) in workloads::pattern_handshakes(&fx, plan).await? {
                        report.record("W4", metric, "hs/s", system, pass, v);
                    }
                    step(format!("W4 {} IK and NK", system.key()));
                }
            }
            if opts.runs(system, "W7") {
                let v = workloads::large(system, &fx, plan).await?;
                report.record("W7", "MB/s", "MB/s", system, pass, v);
                step(format!("W7 {}", system.key()));
            }
        }
        if opts.wants("W8") && systems.contains(&System::NetprotoUdp) {
            let v = workloads::lossy(&fx, plan).await?;
            let udp = System::NetprotoUdp;
            report.record("W8", "goodput 5 % loss", "MB/s", udp, pass, v);
            step("W8 netproto-udp".into());
        }
        if let (true, Some(exe)) = (opts.wants("W5"), &opts.peer_exe) {
            scale::record(exe, opts.quick, plan, &mut report, pass).await?;
            step("W5 netproto-tcp".into());
        }
        if let Some(exe) = &opts.peer_exe {
            let w9: Vec<System> = systems
                .iter()
                .copied()
                .filter(|&s| opts.runs(s, "W9"))
                .collect();
            calls::record(exe, &w9, plan, &mut report, pass, &mut step).await?;
        }
        if opts.wants("W6") {
            let v = workloads::dispatcher(&fx, plan, false).await?;
            report.record("W6", "req/s", "req/s", System::NetprotoTcp, pass, v);
            step("W6 netproto-tcp".into());
            let v = workloads::dispatcher(&fx, plan, true).await?;
            report.record("W6", "layered req/s", "req/s", System::NetprotoTcp, pass, v);
            step("W6 netproto-tcp, empty tower layer".into());
        }
        if opts.wants("W10") {
            priority::record(&fx, plan, &mut report, pass).await?;
            step("W10 netproto-tcp".into());
        }
    }
    report.finish();
    Ok(report)
}
