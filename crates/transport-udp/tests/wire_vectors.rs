//! Checks every `udp-vector` block of docs/WIRE.md ("Datagram sessions"):
//! record items decode to what the spec says and re-encode byte for byte;
//! mac1, cookie, mac2 and the sealed cookie reply match.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    missing_docs
)]

use std::net::SocketAddr;

use netproto_crypto::cookie::{mac, open_cookie, seal_cookie, CookieKeys};
use netproto_crypto::PublicKey;
use netproto_transport_udp::items::{items, Item};
use netproto_transport_udp::{RecordViolation, UdpError};

const SPEC: &str = include_str!("../../../docs/WIRE.md");

#[derive(Debug, Default)]
struct Vector {
    fields: Vec<(String, String)>,
    expect: Vec<String>,
}

impl Vector {
    fn get(&self, key: &str) -> &str {
        let field = self.fields.iter().find(|(k, _)| k == key);
        field.map_or_else(|| panic!("no {key}"), |(_, v)| v.as_str())
    }
}

fn vectors() -> Vec<Vector> {
    let mut out = Vec::new();
    let mut current: Option<Vector> = None;
    for line in SPEC.lines() {
        if line.trim() == "```udp-vector" {
            current = Some(Vector::default());
            continue;
        }
        let Some(v) = current.as_mut() else { continue };
        if line.trim() == "```" {
            out.push(current.take().unwrap());
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            v.fields.last_mut().unwrap().1.push_str(line.trim());
            continue;
        }
        let (key, value) = line.split_once(':').unwrap();
        if key == "expect" {
            v.expect.push(value.trim().to_owned());
        } else {
            v.fields.push((key.to_owned(), value.trim().to_owned()));
        }
    }
    out
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn describe(e: &UdpError) -> String {
    let UdpError::Record(v) = e else {
        panic!("{e}")
    };
    let name = match v {
        RecordViolation::Truncated => "Truncated",
        RecordViolation::UnknownItem(_) => "UnknownItem",
        RecordViolation::PieceFlags(_) => "PieceFlags",
        RecordViolation::BadPiece { .. } => "BadPiece",
        RecordViolation::TooManyRanges(_) => "TooManyRanges",
        RecordViolation::AckUnderflow => "AckUnderflow",
        other => panic!("{other:?}"),
    };
    format!("error {name}")
}

fn check_item(v: &Vector) {
    let bytes = unhex(v.get("hex"));
    let mut got = Vec::new();
    let mut reencoded = Vec::new();
    for item in items(&bytes) {
        match item {
            Ok(Item::Piece(p)) => {
                let reliable = if p.reliable { " reliable" } else { "" };
                got.push(format!(
                    "PIECE{reliable} id={} piece={}/{} data={}",
                    p.message_id,
                    p.index,
                    p.count,
                    hex(p.data)
                ));
                p.encode(&mut reencoded);
            }
            Ok(Item::Ack(a)) => {
                let ranges: Vec<String> =
                    a.ranges.iter().map(|(l, h)| format!("{l}-{h}")).collect();
                got.push(format!(
                    "ACK delay={} ranges={}",
                    a.delay_micros,
                    ranges.join(",")
                ));
                a.encode(&mut reencoded);
            }
            Ok(other) => panic!("{other:?}"),
            Err(e) => got.push(describe(&e)),
        }
    }
    if reencoded.len() < bytes.len() && !got.iter().any(|g| g.starts_with("error")) {
        assert_eq!(bytes[reencoded.len()], 0, "only PADDING may follow");
        got.push("PADDING".into());
    } else if !got.iter().any(|g| g.starts_with("error")) {
        assert_eq!(hex(&reencoded), hex(&bytes), "re-encoding");
    }
    assert_eq!(got, v.expect, "{}", v.get("name"));
}

fn key(v: &Vector) -> CookieKeys {
    let k: [u8; 32] = unhex(v.get("key")).try_into().unwrap();
    if k == [0; 32] {
        CookieKeys::for_responder(None)
    } else {
        CookieKeys::for_responder(Some(&PublicKey::from_bytes(k)))
    }
}

#[test]
fn every_datagram_session_vector_holds() {
    let all = vectors();
    assert!(all.len() >= 10, "vectors found: {}", all.len());
    for v in &all {
        let covered = unhex(v.get("hex"));
        match v.get("kind") {
            "item" => check_item(v),
            "mac" => {
                let mac1 = mac(&key(v).mac1, &[&covered]);
                assert_eq!(
                    v.expect,
                    [format!("mac1={}", hex(&mac1))],
                    "{}",
                    v.get("name")
                );
            }
            "cookie" => {
                let keys = key(v);
                let mac1 = mac(&keys.mac1, &[&covered]);
                let source: SocketAddr = v.get("source").parse().unwrap();
                let SocketAddr::V4(s4) = source else { panic!() };
                let mut addr = s4.ip().octets().to_vec();
                addr.extend_from_slice(&source.port().to_be_bytes());
                let cookie = mac(&unhex(v.get("secret")), &[&addr]);
                let mac2 = mac(&cookie, &[&covered, &mac1]);
                let nonce: [u8; 24] = unhex(v.get("nonce")).try_into().unwrap();
                let sealed = seal_cookie(&keys, &nonce, &cookie, &mac1).unwrap();
                assert_eq!(open_cookie(&keys, &nonce, &sealed, &mac1).unwrap(), cookie);
                let got = vec![
                    format!("cookie={}", hex(&cookie)),
                    format!("mac2={}", hex(&mac2)),
                    format!("sealed={}", hex(&sealed)),
                ];
                assert_eq!(got, v.expect, "{}", v.get("name"));
            }
            other => panic!("unknown kind {other}"),
        }
    }
}
