//! Criterion micro-benchmarks of netproto-wire: frame encode/decode, header
//! parse, varints, and LZ4/Zstd on a JSON-like payload.
//!
//! Run with `cargo xtask criterion` (or `cargo bench -p netproto-benches`).

// Benchmark inputs are built here, not received: a failure is a bug to see at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// criterion_group! generates undocumented items.
#![allow(missing_docs)]
// Ratios printed for the docs; sizes here are far below 2^52.
#![allow(clippy::cast_precision_loss)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use netproto_wire::{
    compress, decompress, encode_packet, varint, Compression, Frame, FrameKind, FrameLimits,
    FrameRef, Header, PacketDecoder, PacketFlags, PacketRef, DEFAULT_MAX_BODY,
};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

fn frame_bytes(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    FrameRef::new(FrameKind::Data, 1234, payload).encode(&mut v);
    v
}

fn frames(c: &mut Criterion) {
    let limits = FrameLimits::default();
    let mut g = c.benchmark_group("frame");
    for size in [64usize, 1024] {
        let payload = vec![0xa5u8; size];
        let encoded = frame_bytes(&payload);
        let mut packet = Vec::new();
        encode_packet(PacketFlags::default(), &encoded, &mut packet).unwrap();
        g.throughput(Throughput::Bytes(size as u64));

        // Packet header + DATA frame, written straight into the output buffer.
        g.bench_with_input(BenchmarkId::new("encode", size), &payload, |b, p| {
            let mut out = Vec::with_capacity(size + 32);
            b.iter(|| {
                out.clear();
                let f = FrameRef::new(FrameKind::Data, black_box(1234), black_box(p));
                Header::for_body(PacketFlags::default(), f.encoded_len())
                    .unwrap()
                    .write(&mut out);
                f.encode(&mut out);
                black_box(out.len())
            });
        });
        // Header parse + borrowed frame view: what a receiver does per message.
        g.bench_with_input(
            BenchmarkId::new("decode_borrowed", size),
            &packet,
            |b, p| {
                b.iter(|| {
                    let (pk, _) = PacketRef::parse(black_box(p), DEFAULT_MAX_BODY).unwrap();
                    let (f, _) = FrameRef::decode(pk.body, &limits).unwrap();
                    black_box(f.payload.len())
                });
            },
        );
        // Through the stream decoder's receive buffer, as a transport uses it.
        g.bench_with_input(BenchmarkId::new("decode_stream", size), &packet, |b, p| {
            let mut dec = PacketDecoder::default();
            let mut buf = BytesMut::with_capacity(p.len());
            b.iter(|| {
                buf.extend_from_slice(p);
                let mut body = dec.decode(&mut buf).unwrap().unwrap().body;
                let f = Frame::take(&mut body, &limits).unwrap();
                black_box(f.payload.len())
            });
        });
        g.bench_with_input(
            BenchmarkId::new("decode_stream_borrowed", size),
            &packet,
            |b, p| {
                let mut dec = PacketDecoder::default();
                let mut buf = BytesMut::with_capacity(p.len());
                b.iter(|| {
                    buf.extend_from_slice(p);
                    let pk = dec.decode(&mut buf).unwrap().unwrap();
                    let (f, _) = FrameRef::decode(&pk.body, &limits).unwrap();
                    black_box(f.payload.len())
                });
            },
        );
        // Baseline in the same run: tokio-util's length-delimited framing (a
        // 4-byte length and the payload; no kind, id or validation), the floor
        // any framing can reach.
        let item = Bytes::copy_from_slice(&payload);
        g.bench_with_input(
            BenchmarkId::new("baseline_ld_encode", size),
            &item,
            |b, item| {
                let mut codec = LengthDelimitedCodec::new();
                let mut out = BytesMut::with_capacity(size + 16);
                b.iter(|| {
                    out.clear();
                    codec.encode(black_box(item.clone()), &mut out).unwrap();
                    black_box(out.len())
                });
            },
        );
        let mut ld_wire = BytesMut::new();
        LengthDelimitedCodec::new()
            .encode(item.clone(), &mut ld_wire)
            .unwrap();
        g.bench_with_input(
            BenchmarkId::new("baseline_ld_decode_stream", size),
            &ld_wire,
            |b, w| {
                let mut codec = LengthDelimitedCodec::new();
                let mut buf = BytesMut::with_capacity(w.len());
                b.iter(|| {
                    buf.extend_from_slice(w);
                    black_box(codec.decode(&mut buf).unwrap().unwrap().len())
                });
            },
        );
    }
    g.finish();
}

fn packets(c: &mut Criterion) {
    let mut wire = Vec::new();
    encode_packet(PacketFlags::default(), &frame_bytes(&[7u8; 64]), &mut wire).unwrap();
    c.bench_function("header_parse", |b| {
        b.iter(|| black_box(Header::parse(black_box(&wire), DEFAULT_MAX_BODY).unwrap()));
    });
    c.bench_function("packet_decoder_64B", |b| {
        let mut dec = PacketDecoder::default();
        let mut buf = BytesMut::with_capacity(wire.len());
        b.iter(|| {
            buf.extend_from_slice(&wire);
            black_box(dec.decode(&mut buf).unwrap().unwrap().body.len())
        });
    });
}

fn varints(c: &mut Criterion) {
    let values: Vec<u64> = (0..64).map(|i| 1u64 << i).collect();
    let mut encoded = Vec::new();
    for v in &values {
        varint::encode(*v, &mut encoded);
    }
    c.bench_function("varint_encode_x64", |b| {
        let mut out = Vec::with_capacity(700);
        b.iter(|| {
            out.clear();
            for v in &values {
                varint::encode(black_box(*v), &mut out);
            }
            black_box(out.len())
        });
    });
    c.bench_function("varint_decode_x64", |b| {
        b.iter(|| {
            let mut rest = black_box(&encoded[..]);
            let mut sum = 0u64;
            while !rest.is_empty() {
                let (v, n) = varint::decode(rest).unwrap();
                sum = sum.wrapping_add(v);
                rest = &rest[n..];
            }
            black_box(sum)
        });
    });
}

/// 64 KiB of JSON-like records, like a typical API payload.
fn json_like() -> Vec<u8> {
    let mut v = Vec::with_capacity(70_000);
    let mut i = 0u32;
    while v.len() < 64 * 1024 {
        v.extend_from_slice(
            format!(
                "{{\"id\":{i},\"user\":\"user{}\",\"active\":{},\"score\":{}.{},\"tags\":[\"a\",\"b{}\"]}},",
                i % 97,
                i.is_multiple_of(2),
                i * 7 % 1000,
                i % 10,
                i % 13
            )
            .as_bytes(),
        );
        i += 1;
    }
    v.truncate(64 * 1024);
    v
}

fn compression(c: &mut Criterion) {
    let input = json_like();
    let mut g = c.benchmark_group("compression_64KiB_json");
    g.throughput(Throughput::Bytes(input.len() as u64));
    for codec in [Compression::Lz4, Compression::Zstd] {
        let mut packed = Vec::new();
        compress(codec, 1, &input, &mut packed).unwrap();
        let name = format!("{codec:?}").to_lowercase();
        eprintln!(
            "{name}: 64 KiB JSON-like -> {} bytes (ratio {:.2})",
            packed.len(),
            input.len() as f64 / packed.len() as f64
        );
        g.bench_function(format!("{name}_compress"), |b| {
            let mut out = Vec::with_capacity(input.len());
            b.iter(|| {
                out.clear();
                compress(codec, 1, black_box(&input), &mut out).unwrap();
                black_box(out.len())
            });
        });
        g.bench_function(format!("{name}_decompress"), |b| {
            let mut out = Vec::with_capacity(input.len());
            b.iter(|| {
                out.clear();
                decompress(codec, black_box(&packed), 1 << 20, &mut out).unwrap();
                black_box(out.len())
            });
        });
    }
    g.finish();
}

criterion_group!(benches, frames, packets, varints, compression);
criterion_main!(benches);
