//! What the command-line tests share: the binary, running it, a `serve`
//! daemon that is killed when dropped, temporary directories.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_netproto");

pub struct Daemon {
    pub child: Child,
    pub endpoint: String,
    pub endpoints: Vec<String>,
    pub key: String,
    /// `host:port` of the metrics endpoint, with `--metrics`.
    pub metrics: Option<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(address: &str) -> Daemon {
    serve_with(address, &[])
}

pub fn serve_with(address: &str, args: &[&str]) -> Daemon {
    serve_env(address, args, &[])
}

pub fn serve_env(address: &str, args: &[&str], env: &[(&str, &str)]) -> Daemon {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .env("NP_SERVER_ADDRESS", address)
        .env("NP_LOGGING_LOG_LEVEL", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut key, mut endpoint, mut metrics) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while endpoint.is_none() && Instant::now() < deadline {
        let line = lines.next().expect("serve printed its banner").unwrap();
        if let Some(rest) = line.strip_prefix("metrics at http://") {
            metrics = rest.strip_suffix("/metrics").map(str::to_owned);
        }
        if let Some(rest) = line.strip_prefix("server key ") {
            key = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(at) = line.find(" on ") {
            let listed = line[at + 4..].split(" (").next().unwrap_or_default();
            endpoint = Some(listed.split(", ").map(str::to_owned).collect::<Vec<_>>());
        }
    }
    let endpoints = endpoint.expect("endpoint printed");
    Daemon {
        child,
        endpoint: endpoints[0].clone(),
        endpoints,
        key: key.expect("key printed"),
        metrics,
    }
}

/// `netproto serve` on `tls://127.0.0.1:0` with the certificate and key
/// that `netproto cert --out dir` wrote (`server.pem`, `server.key`), and
/// `extra` arguments.
pub fn serve_tls(dir: &std::path::Path, extra: &[&str]) -> Daemon {
    let cert = dir.join("server.pem");
    let key = dir.join("server.key");
    let mut args = vec![
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    serve_with("tls://127.0.0.1:0", &args)
}

pub fn run(args: &[&str]) -> (i32, String, String) {
    run_env(args, &[])
}

pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("netproto-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
