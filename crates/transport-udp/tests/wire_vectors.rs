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
use netproto_testkit::{hex, spec_vectors, unhex, SpecVector};
use netproto_transport_udp::items::{items, Item};
use netproto_transport_udp::{RecordViolation, UdpError};

const SPEC: &str = include_str!("../../../docs/WIRE.md");

fn get<'a>(v: &'a SpecVector, key: &str) -> &'a str {
    v.field(key).unwrap_or_else(|| panic!("no {key}"))
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

fn check_item(v: &SpecVector) {
    let bytes = unhex(get(v, "hex"));
    let mut got = Vec::new();
    let mut reencoded = Vec::new();
    for item in items(&bytes) {
        match item {
            Ok(Item::Piece(p)) => {
                let reliable = if p.reliable { " reliable" } else { "" };
                let ordered = p.order.map(|o| format!(" ordered={o}")).unwrap_or_default();
                got.push(format!(
                    "PIECE{reliable}{ordered} id={} piece={}/{} data={}",
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
    assert_eq!(got, v.expect, "{}", get(v, "name"));
}

fn key(v: &SpecVector) -> CookieKeys {
    let k: [u8; 32] = unhex(get(v, "key")).try_into().unwrap();
    if k == [0; 32] {
        CookieKeys::for_responder(None)
    } else {
        CookieKeys::for_responder(Some(&PublicKey::from_bytes(k)))
    }
}

#[test]
fn every_datagram_session_vector_holds() {
    let all = spec_vectors(SPEC, "udp-vector");
    assert!(all.len() >= 10, "vectors found: {}", all.len());
    for v in &all {
        let covered = unhex(get(v, "hex"));
        match get(v, "kind") {
            "item" => check_item(v),
            "mac" => {
                let mac1 = mac(&key(v).mac1, &[&covered]);
                assert_eq!(
                    v.expect,
                    [format!("mac1={}", hex(&mac1))],
                    "{}",
                    get(v, "name")
                );
            }
            "cookie" => {
                let keys = key(v);
                let mac1 = mac(&keys.mac1, &[&covered]);
                let source: SocketAddr = get(v, "source").parse().unwrap();
                let SocketAddr::V4(s4) = source else { panic!() };
                let mut addr = s4.ip().octets().to_vec();
                addr.extend_from_slice(&source.port().to_be_bytes());
                let cookie = mac(&unhex(get(v, "secret")), &[&addr]);
                let mac2 = mac(&cookie, &[&covered, &mac1]);
                let nonce: [u8; 24] = unhex(get(v, "nonce")).try_into().unwrap();
                let sealed = seal_cookie(&keys, &nonce, &cookie, &mac1).unwrap();
                assert_eq!(open_cookie(&keys, &nonce, &sealed, &mac1).unwrap(), cookie);
                let got = vec![
                    format!("cookie={}", hex(&cookie)),
                    format!("mac2={}", hex(&mac2)),
                    format!("sealed={}", hex(&sealed)),
                ];
                assert_eq!(got, v.expect, "{}", get(v, "name"));
            }
            other => panic!("unknown kind {other}"),
        }
    }
}
