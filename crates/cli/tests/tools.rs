//! The other commands end to end: `keygen`, `config`, `demo`, `bench
//! --quick`, `cluster join`, `completions` and `--help`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

/// The demo, the harness and the cluster each load both vCPUs for seconds
/// and the cluster test has deadlines: they take turns (run in parallel,
/// the cluster's second node missed its 6 s window).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    let _turn = alone();
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
    let _turn = alone();
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
        "W9-UDS p50",
        "W9-TLS p50",
        "W10 busy p50",
        "W10 busy p50, priorities off",
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
/// the second's clean leave. (The second runs 12 s: in one CI run of the
/// full suite it did not see the first within 6 s; the join itself takes
/// ≈ 0.2 s when the machine is quiet.)
#[test]
fn two_cluster_nodes_see_each_other_and_the_leave() {
    let _turn = alone();
    let mut first = Command::new(BIN)
        .args([
            "cluster",
            "join",
            "--bind",
            "127.0.0.1:0",
            "--table",
            "0",
            "--for",
            "20",
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
            "12",
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

/// `netproto completions SHELL` prints a script that shell loads.
#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_netproto()"),
        ("zsh", "#compdef netproto"),
        ("fish", "complete -c netproto"),
    ] {
        let (code, out, err) = run(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains(marker), "{shell}: no {marker:?} in\n{out}");
        for sub in ["serve", "ping", "call", "completions"] {
            assert!(out.contains(sub), "{shell}: subcommand {sub} missing");
        }
    }
    let (code, _, err) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error");
    assert!(err.contains("bash"), "the error lists the shells: {err}");
}

/// `--help` lists the environment: the command line's own variables, and
/// configuration keys whose every example is a real key of
/// `netproto config example`.
#[test]
fn help_lists_the_environment_variables() {
    let (code, help, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for own in ["NP_CONFIG", "NP_SERVER_KEY", "NP_KNOWN_HOSTS"] {
        assert!(help.contains(own), "{own} missing from --help");
    }
    let (code, example, _) = run(&["config", "example"]);
    assert_eq!(code, 0);
    let mut checked = 0;
    for word in help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        let Some(rest) = word.strip_prefix("NP_") else {
            continue;
        };
        if ["CONFIG", "SERVER_KEY", "KNOWN_HOSTS", ""].contains(&rest) {
            continue;
        }
        let rest = rest.to_ascii_lowercase();
        let (section, key) = rest.split_once('_').unwrap();
        let in_section = example
            .split("\n[")
            .find(|s| s.starts_with(&format!("{section}]")))
            .unwrap_or_else(|| panic!("{word}: no [{section}] section"));
        assert!(
            in_section
                .lines()
                .any(|l| l.starts_with(&format!("{key} "))),
            "{word}: no key {key} in [{section}]"
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} example variables checked");
}
