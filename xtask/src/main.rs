//! Maintainer tasks for the netproto workspace.
//!
//! * `cargo xtask ci` — everything CI checks, in order, stopping at the first
//!   failure: installs `openssl` if missing (the TLS interop tests run it),
//!   fmt, clippy, tests (unit, integration, doc; the crypto suite again with
//!   the portable AEAD backend), rustdoc, the
//!   `no_std` builds for `thumbv7em-none-eabihf`, and a compile check of the
//!   fuzz targets.
//! * `cargo xtask fuzz <target> <seconds>` — runs one cargo-fuzz target on the
//!   nightly toolchain, installing cargo-fuzz first if it is missing.
//! * `cargo xtask fuzz-all <seconds>` — runs every fuzz target, one after the
//!   other, for that long each.
//! * `cargo xtask bench [args]` — the perf harness, `netproto bench`, in a
//!   release build (`--quick`, `--runs N`, `--json FILE`, `--only W1,W3`).
//! * `cargo xtask criterion [criterion args]` — every criterion benchmark.
//! * `cargo xtask deny` — cargo-deny's license, ban and source checks
//!   (installing cargo-deny first if it is missing).

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// The embedded target every `no_std` crate must build for.
const NO_STD_TARGET: &str = "thumbv7em-none-eabihf";
/// Crates that promise `no_std` + `alloc` with default features off.
const NO_STD_CRATES: &[&str] = &["netproto-wire", "netproto-crypto"];
/// Fuzz targets in `fuzz/fuzz_targets/`.
const FUZZ_TARGETS: &[&str] = &[
    "packet_decode",
    "frame_decode",
    "reassembly",
    "handshake_messages",
    "datagram_session",
    "core_input",
    "udp_endpoint",
    "udp_items",
];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("fuzz") => fuzz(&args[1..]),
        Some("fuzz-all") => fuzz_all(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("criterion") => criterion(&args[1..]),
        Some("deny") => deny(),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | fuzz <target> <seconds> | fuzz-all <seconds> | bench [args] | criterion [args] | deny>\n\
                 fuzz targets: {}",
                FUZZ_TARGETS.join(", ")
            );
            Err("unknown task".into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    // xtask/ sits directly under the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo() -> Command {
    let mut c = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

struct Step {
    name: String,
    cmd: Command,
}

fn step(name: &str, cmd: Command) -> Step {
    Step {
        name: name.to_owned(),
        cmd,
    }
}

fn cargo_step(name: &str, args: &[&str]) -> Step {
    let mut c = cargo();
    c.args(args);
    step(name, c)
}

fn run_steps(steps: Vec<Step>) -> Result<(), String> {
    let total = Instant::now();
    let count = steps.len();
    for (i, mut s) in steps.into_iter().enumerate() {
        println!("==> [{}/{count}] {}", i + 1, s.name);
        let started = Instant::now();
        let status = s
            .cmd
            .status()
            .map_err(|e| format!("{}: could not start: {e}", s.name))?;
        let secs = started.elapsed().as_secs_f64();
        if !status.success() {
            println!("<== {} FAILED after {secs:.1}s", s.name);
            return Err(format!("step '{}' failed ({status})", s.name));
        }
        println!("<== {} ok in {secs:.1}s", s.name);
    }
    println!(
        "all {count} steps passed in {:.1}s",
        total.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Whether a program runs (`prog --version`-style probe).
fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The TLS interoperability tests drive the system's `openssl`; install it
/// (Debian/Ubuntu) when missing, as root or through sudo.
fn openssl_install_step() -> Option<Step> {
    if runs("openssl", "version") {
        return None;
    }
    let script = "set -e; s=''; [ \"$(id -u)\" = 0 ] || s=sudo; \
                  $s apt-get update -qq && \
                  DEBIAN_FRONTEND=noninteractive $s apt-get install -y -qq openssl";
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    Some(step("install openssl (TLS interop tests)", cmd))
}

fn ci() -> Result<(), String> {
    let mut steps: Vec<Step> = openssl_install_step().into_iter().collect();
    steps.extend([
        cargo_step("fmt", &["fmt", "--all", "--", "--check"]),
        cargo_step(
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ],
        ),
    ]);
    for krate in NO_STD_CRATES {
        steps.push(cargo_step(
            &format!("clippy {krate} (no default features)"),
            &[
                "clippy",
                "-p",
                krate,
                "--no-default-features",
                "--locked",
                "--",
                "-D",
                "warnings",
            ],
        ));
    }
    steps.push(cargo_step("test", &["test", "--workspace", "--locked"]));
    // The workspace build turns on netproto-crypto's `ring` backend; the
    // portable backend (the no_std one) gets the crypto suite on its own.
    steps.push(cargo_step(
        "crypto tests, portable AEAD backend",
        &["test", "-p", "netproto-crypto", "--locked"],
    ));
    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps", "--locked"])
        .env("RUSTDOCFLAGS", "-D warnings");
    steps.push(step("doc", doc));
    for krate in NO_STD_CRATES {
        steps.push(cargo_step(
            &format!("no_std build {krate} ({NO_STD_TARGET})"),
            &[
                "build",
                "-p",
                krate,
                "--no-default-features",
                "--target",
                NO_STD_TARGET,
                "--locked",
            ],
        ));
    }
    // The fuzz targets live outside the workspace and run on nightly; make sure
    // they still compile against today's API (on stable, sharing `target/`).
    steps.push(cargo_step(
        "check fuzz targets",
        &[
            "check",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--bins",
            "--locked",
            "--target-dir",
            "target",
        ],
    ));
    run_steps(steps)
}

fn cargo_has(subcommand: &str) -> bool {
    cargo()
        .args([subcommand, "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn deny() -> Result<(), String> {
    let mut steps = Vec::new();
    if !cargo_has("deny") {
        steps.push(cargo_step(
            "install cargo-deny",
            &["install", "cargo-deny", "--locked"],
        ));
    }
    steps.push(cargo_step(
        "cargo deny (licenses, bans, sources)",
        &["deny", "check", "licenses", "bans", "sources"],
    ));
    run_steps(steps)
}

fn has_nightly() -> bool {
    Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn fuzz(args: &[String]) -> Result<(), String> {
    let (Some(target), Some(secs)) = (args.first(), args.get(1)) else {
        return Err(format!(
            "usage: cargo xtask fuzz <target> <seconds>; targets: {}",
            FUZZ_TARGETS.join(", ")
        ));
    };
    if !FUZZ_TARGETS.contains(&target.as_str()) {
        return Err(format!(
            "unknown fuzz target '{target}'; targets: {}",
            FUZZ_TARGETS.join(", ")
        ));
    }
    let secs: u64 = secs
        .parse()
        .map_err(|_| format!("'{secs}' is not a number of seconds"))?;
    run_steps(fuzz_steps(&[target.as_str()], secs)?)
}

fn fuzz_all(args: &[String]) -> Result<(), String> {
    let Some(secs) = args.first() else {
        return Err("usage: cargo xtask fuzz-all <seconds per target>".into());
    };
    let secs: u64 = secs
        .parse()
        .map_err(|_| format!("'{secs}' is not a number of seconds"))?;
    run_steps(fuzz_steps(FUZZ_TARGETS, secs)?)
}

/// Installing cargo-fuzz if needed, then one run per target.
fn fuzz_steps(targets: &[&str], secs: u64) -> Result<Vec<Step>, String> {
    if !has_nightly() {
        return Err(
            "cargo-fuzz needs a nightly toolchain (rustup toolchain install nightly)".into(),
        );
    }
    let have_fuzz = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut steps = Vec::new();
    if !have_fuzz {
        let mut install = Command::new("cargo");
        install.args(["+nightly", "install", "cargo-fuzz", "--locked"]);
        steps.push(step("install cargo-fuzz", install));
    }
    for target in targets {
        let mut run = Command::new("cargo");
        run.current_dir(root().join("fuzz")).args([
            "+nightly",
            "fuzz",
            "run",
            target,
            "--",
            &format!("-max_total_time={secs}"),
            "-rss_limit_mb=2048",
        ]);
        steps.push(step(&format!("fuzz {target} for {secs}s"), run));
    }
    Ok(steps)
}

fn criterion(args: &[String]) -> Result<(), String> {
    // `cargo xtask criterion -- --foo` hands us the separator too.
    let args = args.strip_prefix(&["--".to_owned()]).unwrap_or(args);
    let mut c = cargo();
    c.args(["bench", "-p", "netproto-benches", "--"]).args(args);
    run_steps(vec![step("criterion benches", c)])
}

fn bench(args: &[String]) -> Result<(), String> {
    let args = args.strip_prefix(&["--".to_owned()]).unwrap_or(args);
    let mut c = cargo();
    c.args(["run", "--release", "-p", "netproto-cli", "--", "bench"])
        .args(args);
    run_steps(vec![step("netproto bench (the perf harness)", c)])
}
