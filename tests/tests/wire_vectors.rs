//! Checks every test vector in docs/WIRE.md: decode, compare with the `expect`
//! lines written in the spec, and re-encode byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use bytes::BytesMut;
use netproto_wire::{
    compress, decompress, encode_datagram, encode_packet, frames, DatagramRef, DatagramType,
    FrameLimits, FrameRef, PacketDecoder, PacketFlags, WireError, DEFAULT_MAX_BODY,
    DEFAULT_ZSTD_LEVEL,
};

use std::fmt::Write as _;

use netproto_testkit::{hex, spec_vectors, unhex};

const SPEC: &str = include_str!("../../docs/WIRE.md");

#[derive(Debug, Default)]
struct Vector {
    name: String,
    kind: String,
    hex: String,
    expect: Vec<String>,
}

fn parse_vectors(spec: &str) -> Vec<Vector> {
    spec_vectors(spec, "vector")
        .into_iter()
        .map(|v| {
            for (key, _) in &v.fields {
                assert!(
                    ["name", "kind", "hex"].contains(&key.as_str()),
                    "unknown vector key {key}"
                );
            }
            Vector {
                name: v.field("name").unwrap_or_default().to_owned(),
                kind: v.field("kind").unwrap_or_default().to_owned(),
                hex: v.field("hex").unwrap_or_default().to_owned(),
                expect: v.expect,
            }
        })
        .collect()
}

/// The variant name of an error, as the spec writes it.
fn error_name(e: &WireError) -> String {
    format!("{e:?}")
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}

fn describe_frame(f: &FrameRef<'_>) -> String {
    let mut s = format!("{} stream={}", f.kind.name(), f.stream_id);
    if f.more {
        s.push_str(" more");
    }
    for (k, v) in f.headers {
        write!(
            s,
            " h:{}={}",
            String::from_utf8_lossy(k),
            String::from_utf8_lossy(v)
        )
        .unwrap();
    }
    write!(s, " payload={}", hex(f.payload)).unwrap();
    s
}

/// Decodes a packet vector fed one byte at a time; returns the descriptions
/// and the re-encoded bytes.
fn run_packet(bytes: &[u8]) -> Result<(Vec<String>, Vec<u8>), WireError> {
    let mut decoder = PacketDecoder::default();
    let mut buf = BytesMut::new();
    let mut packet = None;
    for b in bytes {
        buf.extend_from_slice(&[*b]);
        if let Some(p) = decoder.decode(&mut buf)? {
            assert!(packet.is_none(), "one packet per vector");
            packet = Some(p);
        }
    }
    let Some(packet) = packet else {
        return Err(WireError::Truncated {
            needed: decoder.bytes_needed(buf.len()),
        });
    };
    assert!(buf.is_empty(), "bytes after the packet");
    let flags = packet.flags;
    if flags.encrypted() {
        let mut again = Vec::new();
        encode_packet(flags, &packet.body, &mut again)?;
        let phase = if flags.key_phase() { " phase" } else { "" };
        return Ok((
            vec![format!("ENCRYPTED{phase} body={}", hex(&packet.body))],
            again,
        ));
    }
    let mut body = Vec::new();
    decompress(
        flags.compression(),
        &packet.body,
        DEFAULT_MAX_BODY as usize,
        &mut body,
    )?;
    let mut described = Vec::new();
    let mut plain = Vec::new();
    for f in frames(&body, &FrameLimits::default()) {
        let f = f?;
        described.push(describe_frame(&f));
        f.encode(&mut plain);
    }
    assert_eq!(plain, body, "frames re-encode to the decompressed body");
    let mut packed = Vec::new();
    compress(flags.compression(), DEFAULT_ZSTD_LEVEL, &plain, &mut packed)?;
    let mut again = Vec::new();
    encode_packet(
        PacketFlags::new(flags.compression(), false),
        &packed,
        &mut again,
    )?;
    Ok((described, again))
}

fn run_datagram(bytes: &[u8]) -> Result<(Vec<String>, Vec<u8>), WireError> {
    let d = DatagramRef::parse(bytes)?;
    let h = d.header;
    let kind = match h.kind {
        DatagramType::Handshake => "HANDSHAKE",
        DatagramType::Record => "RECORD",
        DatagramType::Plain => "PLAIN",
        _ => "OTHER",
    };
    let mut s = format!("{kind} session={} counter={}", h.session, h.counter);
    if let Some(f) = h.fragment {
        write!(s, " fragment={}/{}/{}", f.message_id, f.index, f.count).unwrap();
    }
    if h.key_phase {
        s.push_str(" phase");
    }
    write!(s, " body={}", hex(d.body)).unwrap();
    let mut again = Vec::new();
    encode_datagram(&h, d.body, &mut again)?;
    Ok((vec![s], again))
}

#[test]
fn spec_vectors_decode_and_reencode() {
    let vectors = parse_vectors(SPEC);
    assert!(
        vectors.len() >= 20,
        "WIRE.md lost vectors: {}",
        vectors.len()
    );
    let mut names = std::collections::HashSet::new();
    for v in &vectors {
        assert!(
            names.insert(v.name.clone()),
            "duplicate vector name {}",
            v.name
        );
        let bytes = unhex(&v.hex);
        let result = match v.kind.as_str() {
            "packet" => run_packet(&bytes),
            "datagram" => run_datagram(&bytes),
            other => panic!("{}: unknown kind {other}", v.name),
        };
        match (result, v.expect.first()) {
            (Err(e), Some(exp)) if exp.starts_with("error ") => {
                assert_eq!(error_name(&e), exp["error ".len()..], "vector {}", v.name);
            }
            (Err(e), _) => panic!("vector {}: unexpected error {e:?}", v.name),
            (Ok((described, again)), _) => {
                assert_eq!(described, v.expect, "vector {}: decoded meaning", v.name);
                assert_eq!(hex(&again), hex(&bytes), "vector {}: re-encoding", v.name);
            }
        }
    }
}

#[test]
fn vector_parser_sees_every_block() {
    let blocks = SPEC.lines().filter(|l| l.trim() == "```vector").count();
    assert_eq!(parse_vectors(SPEC).len(), blocks);
}
