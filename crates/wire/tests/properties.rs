//! Property tests: round-trips, canonical encodings, and "any input gives a
//! value or a typed error, never a panic, never memory beyond the limits".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use netproto_wire::{
    decompress, encode_datagram, encode_packet, fragments, frames, varint, Compression,
    DatagramHeader, DatagramRef, DatagramType, FragmentInfo, Frame, FrameKind, FrameLimits,
    FrameRef, Headers, Message, PacketDecoder, PacketFlags, Reassembled, Reassembler,
    ReassemblyLimits, HEADER_LEN,
};
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = FrameKind> {
    prop_oneof![
        Just(FrameKind::Data),
        Just(FrameKind::Ping),
        Just(FrameKind::Pong),
        Just(FrameKind::Bye),
        Just(FrameKind::Ack),
        Just(FrameKind::Err),
        Just(FrameKind::GoAway),
        Just(FrameKind::Handshake),
        (0x80u8..=0xff).prop_map(FrameKind::Extension),
    ]
}

fn headers() -> impl Strategy<Value = Headers> {
    prop::collection::vec(
        (
            prop::collection::vec(any::<u8>(), 1..=40),
            prop::collection::vec(any::<u8>(), 0..=40),
        ),
        0..6,
    )
    .prop_map(|pairs| {
        pairs
            .into_iter()
            .fold(Headers::builder(), |b, (k, v)| b.insert(k, v).unwrap())
            .build()
    })
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        kind(),
        any::<bool>(),
        any::<u64>(),
        headers(),
        prop::collection::vec(any::<u8>(), 0..600),
    )
        .prop_map(|(k, more, id, h, p)| Frame::new(k, id, p).with_headers(h).with_more(more))
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        Just(Message::Ping),
        Just(Message::Pong),
        ".{0,40}".prop_map(Message::Echo),
        prop::collection::vec(any::<u8>(), 0..100).prop_map(Message::Data),
        ("[A-Z_]{1,12}", prop::collection::vec(any::<u8>(), 0..100))
            .prop_map(|(command, payload)| Message::Custom { command, payload }),
        Just(Message::Disconnect),
        Just(Message::Unknown),
    ]
}

/// Feeds `input` to a decoder in chunks of the given sizes (cycled).
fn feed(
    input: &[u8],
    chunks: &[usize],
    max_body: u32,
) -> (Vec<Bytes>, Option<netproto_wire::WireError>) {
    let mut dec = PacketDecoder::new(max_body);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < input.len() {
        let n = chunks[i % chunks.len()].clamp(1, input.len() - pos);
        i += 1;
        buf.extend_from_slice(&input[pos..pos + n]);
        pos += n;
        loop {
            // Nothing is ever buffered beyond one header and one bounded body.
            assert!(dec.bytes_needed(buf.len()) <= max_body as usize + HEADER_LEN);
            match dec.decode(&mut buf) {
                Ok(Some(p)) => {
                    assert!(p.body.len() <= max_body as usize);
                    out.push(p.body);
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn frame_roundtrip(f in frame()) {
        let mut bytes = Vec::new();
        f.encode(&mut bytes);
        prop_assert_eq!(bytes.len(), f.encoded_len());
        let shared = Bytes::from(bytes);
        let (back, used) = Frame::decode(&shared, &FrameLimits::default()).unwrap();
        prop_assert_eq!(used, shared.len());
        prop_assert_eq!(back, f);
    }

    #[test]
    fn batched_frames_roundtrip(fs in prop::collection::vec(frame(), 0..8)) {
        let mut body = Vec::new();
        for f in &fs {
            f.encode(&mut body);
        }
        let shared = Bytes::from(body);
        let back: Vec<Frame> = frames(&shared, &FrameLimits::default())
            .map(|f| f.unwrap().to_owned_in(&shared))
            .collect();
        prop_assert_eq!(&back, &fs);
        let mut src = shared.clone();
        let mut taken = Vec::new();
        while !src.is_empty() {
            taken.push(Frame::take(&mut src, &FrameLimits::default()).unwrap());
        }
        prop_assert_eq!(taken, fs);
    }

    /// Any bytes: a frame or a typed error; and any frame that decodes has
    /// exactly one encoding, the bytes it came from.
    #[test]
    fn arbitrary_frame_bytes_are_canonical_or_rejected(input in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut limits = FrameLimits::default();
        limits.max_payload = 256;
        limits.max_header_block = 128;
        limits.max_headers = 4;
        if let Ok((f, used)) = FrameRef::decode(&input, &limits) {
            let mut again = Vec::new();
            f.encode(&mut again);
            prop_assert_eq!(&again[..], &input[..used]);
            prop_assert!(f.payload.len() <= 256);
            prop_assert!(f.headers.len() <= 4);
        }
    }

    #[test]
    fn packet_stream_any_chunking(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..6),
        chunks in prop::collection::vec(1usize..64, 1..8),
    ) {
        let mut wire = Vec::new();
        for b in &bodies {
            encode_packet(PacketFlags::default(), b, &mut wire).unwrap();
        }
        let (got, err) = feed(&wire, &chunks, 1024);
        prop_assert!(err.is_none());
        let got: Vec<Vec<u8>> = got.into_iter().map(|b| b.to_vec()).collect();
        prop_assert_eq!(got, bodies);
    }

    #[test]
    fn arbitrary_stream_never_panics(
        mut input in prop::collection::vec(any::<u8>(), 0..400),
        valid_prefix in any::<bool>(),
        chunks in prop::collection::vec(1usize..32, 1..6),
    ) {
        if valid_prefix && input.len() >= 6 {
            input[..6].copy_from_slice(b"NPRO\x01\x00");
        }
        let (got, _err) = feed(&input, &chunks, 64);
        prop_assert!(got.iter().all(|b| b.len() <= 64));
    }

    #[test]
    fn decompress_arbitrary_is_bounded(
        input in prop::collection::vec(any::<u8>(), 0..200),
        codec in prop_oneof![Just(Compression::Lz4), Just(Compression::Zstd)],
        max in 0usize..4096,
    ) {
        let mut out = Vec::new();
        match decompress(codec, &input, max, &mut out) {
            Ok(()) => prop_assert!(out.len() <= max),
            Err(_) => prop_assert!(out.is_empty()),
        }
    }

    #[test]
    fn datagram_roundtrip(
        kind in prop_oneof![Just(DatagramType::Handshake), Just(DatagramType::Record), Just(DatagramType::Plain)],
        session in any::<u32>(),
        counter in any::<u64>(),
        frag in prop::option::of((any::<u32>(), 2u16..2000)),
        index_seed in any::<u16>(),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let fragment = frag.map(|(message_id, count)| FragmentInfo { message_id, index: index_seed % count, count });
        let key_phase = kind == DatagramType::Record && counter % 2 == 1;
        let h = DatagramHeader { kind, session, counter, fragment, key_phase };
        let mut d = Vec::new();
        encode_datagram(&h, &body, &mut d).unwrap();
        let p = DatagramRef::parse(&d).unwrap();
        prop_assert_eq!(p.header, h);
        prop_assert_eq!(p.body, &body[..]);
    }

    #[test]
    fn datagram_arbitrary_never_panics(input in prop::collection::vec(any::<u8>(), 0..100)) {
        if let Ok(p) = DatagramRef::parse(&input) {
            let mut again = Vec::new();
            encode_datagram(&p.header, p.body, &mut again).unwrap();
            prop_assert_eq!(again, input);
        }
    }

    #[test]
    fn message_roundtrip(m in message()) {
        prop_assert_eq!(Message::decode(&m.to_vec().unwrap()).unwrap(), m);
    }

    #[test]
    fn message_arbitrary_never_panics(input in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = Message::decode(&input);
    }

    #[test]
    fn varint_roundtrip(v in any::<u64>()) {
        let mut b = Vec::new();
        varint::encode(v, &mut b);
        prop_assert_eq!(b.len(), varint::encoded_len(v));
        prop_assert_eq!(varint::decode(&b).unwrap(), (v, b.len()));
    }

    #[test]
    fn varint_arbitrary_is_canonical(input in prop::collection::vec(any::<u8>(), 0..12)) {
        if let Ok((v, n)) = varint::decode(&input) {
            let mut b = Vec::new();
            varint::encode(v, &mut b);
            prop_assert_eq!(&b[..], &input[..n]);
        }
    }

    /// Shuffled, duplicated and dropped fragments: the message completes
    /// exactly once iff no piece was lost, and limits always hold.
    #[test]
    fn reassembly_shuffled_duplicated_dropped(
        msg in prop::collection::vec(any::<u8>(), 1..5000),
        piece in 50usize..1200,
        order_seed in prop::collection::vec(any::<u32>(), 0..200),
        dup_mask in any::<u64>(),
        drop_one in prop::option::of(any::<u16>()),
    ) {
        let pieces: Vec<(Option<FragmentInfo>, Vec<u8>)> = fragments(77, &msg, piece, 1024)
            .unwrap()
            .map(|(i, p)| (i, p.to_vec()))
            .collect();
        prop_assume!(pieces.len() >= 2);
        let mut deliveries: Vec<usize> = (0..pieces.len()).collect();
        for i in 0..pieces.len() {
            if dup_mask & (1 << (i % 64)) != 0 {
                deliveries.push(i);
            }
        }
        let dropped = drop_one.map(|d| usize::from(d) % pieces.len());
        deliveries.retain(|i| Some(*i) != dropped);
        // A deterministic shuffle driven by the generated seeds.
        for (k, s) in order_seed.iter().enumerate() {
            let a = k % deliveries.len();
            let b = (*s as usize) % deliveries.len();
            deliveries.swap(a, b);
        }
        let limits = ReassemblyLimits::default();
        let mut r = Reassembler::new(limits);
        let mut completed = Vec::new();
        for i in deliveries {
            let (info, data) = &pieces[i];
            match r.push(Duration::ZERO, 1, info.unwrap(), Bytes::copy_from_slice(data)).unwrap() {
                Reassembled::Complete(m) => completed.push(m),
                Reassembled::Incomplete | Reassembled::Duplicate => {}
                _ => unreachable!(),
            }
            prop_assert!(r.buffered() <= limits.max_buffered);
            prop_assert!(r.pending() <= limits.max_pending);
        }
        if dropped.is_some() {
            prop_assert!(completed.is_empty());
            prop_assert_eq!(r.pending(), 1);
            prop_assert_eq!(r.expire(limits.timeout), 1);
            prop_assert_eq!(r.buffered(), 0);
        } else {
            // A duplicate that arrives after completion starts a new partial
            // message (reassembly keeps no history), so a fully duplicated
            // stream may complete a second time, never more, never wrong.
            prop_assert!(!completed.is_empty() && completed.len() <= 2);
            for m in &completed {
                prop_assert_eq!(&m[..], &msg[..]);
            }
            if dup_mask == 0 {
                prop_assert_eq!(completed.len(), 1);
            }
        }
    }

    /// Random fragments from many messages and sessions never break the limits.
    #[test]
    fn reassembly_hostile_input_stays_bounded(
        frags in prop::collection::vec((0u32..4, 0u32..50, any::<u16>(), 2u16..40, 0usize..3000), 0..300),
    ) {
        let mut limits = ReassemblyLimits::default();
        limits.max_fragments = 32;
        limits.max_message_len = 20_000;
        limits.max_pending = 8;
        limits.max_buffered = 40_000;
        let mut r = Reassembler::new(limits);
        for (t, (session, id, index, count, len)) in frags.into_iter().enumerate() {
            let info = FragmentInfo { message_id: id, index: index % count, count };
            let _ = r.push(Duration::from_millis(t as u64 * 50), session, info, Bytes::from(vec![0u8; len]));
            prop_assert!(r.buffered() <= limits.max_buffered);
            prop_assert!(r.pending() <= limits.max_pending);
        }
    }
}
