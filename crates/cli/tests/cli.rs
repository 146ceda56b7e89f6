//! The `netproto` binary end to end: `serve` in one process, `ping` and `call`
//! from others, over TCP and a Unix socket; `keygen`; `config`; exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_netproto");

struct Daemon {
    child: Child,
    endpoint: String,
    endpoints: Vec<String>,
    key: String,
    /// `host:port` of the metrics endpoint, with `--metrics`.
    metrics: Option<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(address: &str) -> Daemon {
    serve_with(address, &[])
}

fn serve_with(address: &str, args: &[&str]) -> Daemon {
    serve_env(address, args, &[])
}

fn serve_env(address: &str, args: &[&str], env: &[(&str, &str)]) -> Daemon {
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

fn run(args: &[&str]) -> (i32, String, String) {
    run_env(args, &[])
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
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

fn exercise(daemon: &Daemon) {
    let (code, out, err) = run(&[
        "ping",
        &daemon.endpoint,
        "-c",
        "3",
        "-i",
        "10",
        "--server-key",
        &daemon.key,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 sent, 3 received, 0 lost"), "{out}");
    let (code, out, err) = run(&[
        "call",
        &daemon.endpoint,
        "ECHO",
        "hello there",
        "--server-key",
        &daemon.key,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Echo(\"hello there\")"), "{out}");
    // An opcode the daemon does not serve: a clear one-line error, exit 1.
    let (code, _, err) = run(&[
        "call",
        &daemon.endpoint,
        "NOPE",
        "--server-key",
        &daemon.key,
    ]);
    assert_eq!(code, 1);
    // The code by its WIRE.md name, and what to do about it.
    assert!(err.contains("server error UNKNOWN_OPCODE (4)"), "{err}");
    assert!(err.contains("hint: the server has no handler"), "{err}");
    // A wrong pinned key is refused.
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let (code, _, err) = run(&["call", &daemon.endpoint, "PING", "--server-key", wrong]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn serve_ping_call_over_tcp() {
    let daemon = serve("127.0.0.1:0");
    assert!(daemon.endpoint.starts_with("tcp://"));
    exercise(&daemon);
}

#[test]
fn serve_ping_call_over_udp() {
    let daemon = serve("udp://127.0.0.1:0");
    assert!(daemon.endpoint.starts_with("udp://"), "{}", daemon.endpoint);
    exercise(&daemon);
}

/// One daemon, two carriers: `--address` repeated.
#[test]
fn one_daemon_serves_tcp_and_udp_at_once() {
    let mut daemon = serve_with(
        "127.0.0.1:0",
        &[
            "--address",
            "tcp://127.0.0.1:0",
            "--address",
            "udp://127.0.0.1:0",
        ],
    );
    assert_eq!(daemon.endpoints.len(), 2, "{:?}", daemon.endpoints);
    assert!(daemon.endpoints[0].starts_with("tcp://"));
    assert!(daemon.endpoints[1].starts_with("udp://"));
    exercise(&daemon);
    daemon.endpoint = daemon.endpoints[1].clone();
    exercise(&daemon);
}

#[cfg(unix)]
#[test]
fn serve_ping_call_over_unix_socket() {
    let path = std::env::temp_dir().join(format!("netproto-cli-{}.sock", std::process::id()));
    let daemon = serve(&format!("unix://{}", path.display()));
    assert!(daemon.endpoint.starts_with("unix://"));
    exercise(&daemon);
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("netproto-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn cert_and_serve_over_tls_with_a_pin() {
    let dir = temp_dir("tls");
    let out = dir.to_str().unwrap();
    let (code, stdout, err) = run(&["cert", "--out", out]);
    assert_eq!(code, 0, "{stdout}{err}");
    let pin = stdout
        .lines()
        .find_map(|l| l.strip_prefix("pin  "))
        .expect("pin printed")
        .to_owned();
    // Refuses to overwrite without --force.
    let (code, _, err) = run(&["cert", "--out", out]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--force"), "{err}");

    let cert = dir.join("server.pem");
    let key = dir.join("server.key");
    let daemon = serve_with(
        "tls://127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(daemon.endpoint.starts_with("tls://"), "{}", daemon.endpoint);
    let (code, out, err) = run(&[
        "ping",
        &daemon.endpoint,
        "-c",
        "2",
        "-i",
        "10",
        "--ca",
        cert.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 sent, 2 received"), "{out}");
    // Pinned, with the compiled-in roots (which do not know this cert):
    // refused as an unknown CA; with --pins-only: served.
    let (code, _, err) = run(&["call", &daemon.endpoint, "ECHO", "x", "--pin", &pin]);
    assert_eq!(code, 1);
    assert!(err.contains("trusted CA"), "{err}");
    let (code, out, err) = run(&[
        "call",
        &daemon.endpoint,
        "ECHO",
        "pinned",
        "--pin",
        &pin,
        "--pins-only",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Echo(\"pinned\")"), "{out}");
    // A wrong pin: refused with its own message.
    let wrong = "spki-sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let (code, _, err) = run(&[
        "call",
        &daemon.endpoint,
        "PING",
        "--pin",
        wrong,
        "--pins-only",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("pin"), "{err}");
    drop(daemon);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mutual_tls_from_the_command_line() {
    let dir = temp_dir("mtls");
    let (code, out, err) = run(&["cert", "--ca", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let p = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let daemon = serve_with(
        "tls://127.0.0.1:0",
        &[
            "--tls-cert",
            &p("server.pem"),
            "--tls-key",
            &p("server.key"),
            "--client-ca",
            &p("ca.pem"),
        ],
    );
    let (code, out, err) = run(&[
        "call",
        &daemon.endpoint,
        "PING",
        "--ca",
        &p("ca.pem"),
        "--client-cert",
        &p("client.pem"),
        "--client-key",
        &p("client.key"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Pong"), "{out}");
    let (code, _, err) = run(&["call", &daemon.endpoint, "PING", "--ca", &p("ca.pem")]);
    assert_eq!(code, 1);
    assert!(err.contains("client certificate is required"), "{err}");
    drop(daemon);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn trust_on_first_use_remembers_the_server() {
    let daemon = serve("127.0.0.1:0");
    let known = std::env::temp_dir().join(format!("netproto-cli-known-{}", std::process::id()));
    let _ = std::fs::remove_file(&known);
    let k = known.display().to_string();
    let (code, out, err) = run(&["call", &daemon.endpoint, "PING", "--known-hosts", &k]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(std::fs::read_to_string(&known)
        .unwrap()
        .contains(&daemon.key));
    let (code, _, _) = run(&["call", &daemon.endpoint, "PING", "--known-hosts", &k]);
    assert_eq!(code, 0, "the recorded key is accepted again");
    // A different server (new key) on the same address is refused.
    let endpoint = daemon.endpoint.clone();
    drop(daemon);
    let impostor = serve(endpoint.trim_start_matches("tcp://"));
    assert_eq!(impostor.endpoint, endpoint);
    let (code, _, err) = run(&["call", &endpoint, "PING", "--known-hosts", &k]);
    assert_eq!(code, 1);
    assert!(err.contains("KEY CHANGED"), "{err}");
    std::fs::remove_file(&known).unwrap();
}

#[test]
fn without_home_trust_on_first_use_needs_an_explicit_file() {
    // No HOME and no --known-hosts: no shared fallback such as /tmp.
    let out = Command::new(BIN)
        .args(["ping", "tcp://127.0.0.1:9"])
        .env_remove("HOME")
        .env_remove("NP_KNOWN_HOSTS")
        .env_remove("NP_SERVER_KEY")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("HOME is not set") && err.contains("--known-hosts"),
        "{err}"
    );
}

#[test]
fn keygen_and_config_commands() {
    let dir = std::env::temp_dir().join(format!("netproto-cli-keygen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("id.key");
    let (code, out, _) = run(&["keygen", "--out", &key.display().to_string()]);
    assert_eq!(code, 0);
    assert!(out.contains("fingerprint SHA256:"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Refuses to overwrite.
    assert_eq!(run(&["keygen", "--out", &key.display().to_string()]).0, 1);

    let (code, example, _) = run(&["config", "example"]);
    assert_eq!(code, 0);
    let file = dir.join("good.toml");
    std::fs::write(&file, &example).unwrap();
    assert_eq!(run(&["config", "check", &file.display().to_string()]).0, 0);
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[server]\nmax_connections = -1\n").unwrap();
    let (code, _, err) = run(&["config", "check", &bad.display().to_string()]);
    assert_eq!(code, 3, "configuration errors exit with 3: {err}");
    assert!(err.contains("max_connections"), "{err}");
    assert_eq!(run(&["no-such-command"]).0, 2, "usage errors exit with 2");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `netproto demo`, the README's first command: every row runs and checks
/// itself (the lossy-UDP row fails the command unless every message
/// arrived exactly once).
#[test]
fn demo_runs_every_row() {
    let (code, out, err) = run(&["demo", "--round-trips", "50"]);
    assert_eq!(code, 0, "{out}{err}");
    for row in ["\ntcp ", "\nunix ", "\ntls ", "\nudp "] {
        assert!(out.contains(row), "row {row:?} missing:\n{out}");
    }
    assert!(
        out.contains("4 × 512 KiB sent, 4 delivered exactly once (0 duplicates, 0 damaged)"),
        "lossy row:\n{out}"
    );
    assert!(out.contains("cluster   5 nodes"), "cluster row:\n{out}");
}

/// The harness's quick mode: checks that every workload runs against every
/// system and that the JSON has its stable keys (not the speed: no timing
/// is asserted).
#[test]
fn bench_quick_runs_every_workload() {
    let json = std::env::temp_dir().join(format!("netproto-bench-{}.json", std::process::id()));
    let (code, out, err) = run(&["bench", "--quick", "--json", json.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    for figure in [
        "W1 p50",
        "W2 msg/s",
        "W3 MB/s",
        "W4 sequential",
        "W5 RSS/idle conn",
        "W6 req/s",
        "W7 MB/s",
        "W8 goodput 5 % loss",
        "W9 p50",
        "W9 calls/s",
        "W9 64 KiB ×4",
    ] {
        assert!(out.contains(figure), "{figure} missing:\n{out}");
    }
    let text = std::fs::read_to_string(&json).unwrap();
    for key in [
        "\"measurements\"",
        "\"ratios\"",
        "\"targets\"",
        "\"median\"",
        "\"netproto-tls\"",
        "\"rustls-chacha\"",
        "\"snow-tcp\"",
        "\"raw-udp\"",
        "\"quinn\"",
        "\"netproto-udp\"",
        "\"netproto-client\"",
    ] {
        assert!(text.contains(key), "{key} missing from the JSON");
    }
    std::fs::remove_file(json).unwrap();
}

/// Two `netproto cluster join` processes on loopback: the second joins
/// through the first, both print the other as up, and the first reports
/// the second's clean leave.
#[test]
fn two_cluster_nodes_see_each_other_and_the_leave() {
    let mut first = Command::new(BIN)
        .args([
            "cluster",
            "join",
            "--bind",
            "127.0.0.1:0",
            "--table",
            "0",
            "--for",
            "12",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(first.stdout.take().unwrap()).lines();
    let banner = lines.next().expect("a banner").unwrap();
    // "joined as SHA256:…@127.0.0.1:PORT#GEN (public key …)"
    let addr = banner
        .split('@')
        .nth(1)
        .and_then(|s| s.split('#').next())
        .expect("an address in the banner")
        .to_owned();
    let second = Command::new(BIN)
        .args([
            "cluster",
            "join",
            "--bind",
            "127.0.0.1:0",
            "--table",
            "0",
            "--for",
            "6",
            "--seed",
            &addr,
        ])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let second_out = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{second_out}");
    assert!(
        second_out
            .lines()
            .any(|l| l.starts_with("up ") && l.contains(&addr)),
        "{second_out}"
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let _ = first.wait();
    assert!(rest.iter().any(|l| l.starts_with("up ")), "{rest:?}");
    assert!(rest.iter().any(|l| l.starts_with("left ")), "{rest:?}");
    assert!(rest.iter().any(|l| l == "left the cluster"), "{rest:?}");
}

/// Every environment variable the command line documents works, and none
/// is mistaken for a configuration key (issue #21).
#[test]
fn the_command_lines_own_environment_variables_work() {
    let daemon = serve("127.0.0.1:0");
    let ep = daemon.endpoint.as_str();
    // NP_SERVER_KEY pins the server like --server-key ...
    let (code, out, err) = run_env(&["call", ep, "PING"], &[("NP_SERVER_KEY", &daemon.key)]);
    assert_eq!(code, 0, "{out}{err}");
    // ... and is really used: a wrong key is refused.
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let (code, _, err) = run_env(&["call", ep, "PING"], &[("NP_SERVER_KEY", wrong)]);
    assert_eq!(code, 1, "{err}");
    // NP_KNOWN_HOSTS chooses the trust-on-first-use file.
    let dir = std::env::temp_dir().join(format!("np-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hosts = dir.join("known_hosts");
    let hosts_str = hosts.to_str().unwrap();
    let (code, out, err) = run_env(&["call", ep, "PING"], &[("NP_KNOWN_HOSTS", hosts_str)]);
    assert_eq!(code, 0, "{out}{err}");
    let written = std::fs::read_to_string(&hosts).unwrap();
    assert!(written.contains(&daemon.key), "{written}");
    // NP_CONFIG names serve's file: a bad value in it is reported by key
    // (exit 3), which shows the file was read, not taken for a key.
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[server]\nmax_connections = 0\n").unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .env("NP_CONFIG", &file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a serve that starts would run until killed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(3), "{err}");
    assert!(err.contains("server.max_connections"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One HTTP request to the metrics endpoint; the whole answer.
fn http(addr: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// `serve --metrics` answers scrapes in the Prometheus text format with
/// request, connection and handshake-failure series (issue #21).
#[test]
fn serve_exposes_metrics_to_a_scraper() {
    // `metrics.listen` through the environment (`--metrics` does the same).
    let daemon = serve_env("127.0.0.1:0", &[], &[("NP_METRICS_LISTEN", "127.0.0.1:0")]);
    let addr = daemon.metrics.clone().expect("metrics address printed");
    let ep = daemon.endpoint.as_str();
    let key = daemon.key.as_str();
    let (code, _, err) = run(&["call", ep, "ECHO", "x", "--server-key", key]);
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = run(&["call", ep, "NOPE", "--server-key", key]);
    assert_eq!(code, 1);
    // A client that speaks something else: a failed handshake.
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(ep.trim_start_matches("tcp://")).unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n");
    }
    let wanted = [
        "# TYPE netproto_requests_total counter",
        "netproto_requests_total{opcode=\"ECHO\",outcome=\"ok\"} 1",
        "netproto_requests_total{opcode=\"unknown\",outcome=\"error\"} 1",
        "netproto_handshakes_total{outcome=\"ok\"}",
        "netproto_handshakes_total{outcome=\"failed\"}",
        "# TYPE netproto_connections_open gauge",
        "netproto_request_duration_seconds",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = http(&addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        if wanted.iter().all(|w| page.contains(w)) || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    for w in wanted {
        assert!(page.contains(w), "{w} missing from:\n{page}");
    }
    // Anything else is refused, and a scraper cannot send an endless head.
    assert!(http(&addr, b"GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(http(&addr, b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    // One byte over the 8 KiB limit (all of it read: no reset races the
    // answer).
    let huge = [b'a'; 8 * 1024 + 1];
    assert!(http(&addr, &huge).starts_with("HTTP/1.1 431"));
    // The flag does the same as the key.
    let flagged = serve_with("127.0.0.1:0", &["--metrics", "127.0.0.1:0"]);
    let at = flagged
        .metrics
        .clone()
        .expect("--metrics printed its address");
    assert!(http(&at, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
}

/// The daemon's log lines up to "server listening", with `env` set.
fn first_log_lines(env: &[(&str, &str)]) -> String {
    let mut child = Command::new(BIN)
        .args(["serve", "--address", "tcp://127.0.0.1:0"])
        .env("NP_LOGGING_LOG_LEVEL", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // A watchdog ends the daemon (and so the pipe) if it never logs.
    let child = std::sync::Arc::new(std::sync::Mutex::new(child));
    let watched = child.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(20));
        let _ = watched.lock().unwrap().kill();
    });
    let mut seen = Vec::new();
    while seen.len() < 40 {
        let Some(Ok(line)) = lines.next() else { break };
        let done = line.contains("server listening");
        seen.push(line);
        if done {
            break;
        }
    }
    {
        let mut child = child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
    seen.join("\n")
}

/// Logs written to a pipe carry no colour codes, and `[logging] format`
/// picks the layout (issue #21).
#[test]
fn logs_to_a_pipe_are_plain_and_formatted_as_configured() {
    let text = first_log_lines(&[]);
    assert!(text.contains("server listening"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
    let json = first_log_lines(&[("NP_LOGGING_FORMAT", "json")]);
    let line = json
        .lines()
        .find(|l| l.contains("server listening"))
        .unwrap_or_else(|| panic!("{json}"));
    assert!(
        line.starts_with('{') && line.contains("\"level\":\"INFO\""),
        "{line}"
    );
    let compact = first_log_lines(&[("NP_LOGGING_FORMAT", "compact")]);
    assert!(compact.contains("server listening"), "{compact}");
    assert!(!compact.starts_with('{'), "{compact}");
}
