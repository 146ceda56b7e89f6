//! Running it in production: the command line's own environment
//! variables, the metrics endpoint, log formats.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

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
