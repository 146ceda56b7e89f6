//! `netproto serve` in one process, `ping` and `call` from others: over
//! TCP, UDP, a Unix socket and TLS (pins, client certificates), and trust
//! on first use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::process::Command;

use common::*;

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

#[test]
fn serve_ping_call_over_unix_socket() {
    let path = std::env::temp_dir().join(format!("netproto-cli-{}.sock", std::process::id()));
    let daemon = serve(&format!("unix://{}", path.display()));
    assert!(daemon.endpoint.starts_with("unix://"));
    exercise(&daemon);
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
    let daemon = serve_tls(&dir, &[]);
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
    let daemon = serve_tls(&dir, &["--client-ca", &p("ca.pem")]);
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
