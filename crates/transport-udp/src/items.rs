//! The plaintext of a datagram session record: a sequence of items.
//!
//! ```text
//! PADDING 0x00                       the rest of the record is padding
//! PIECE   0x01 flags u8              bit 0 RELIABLE, bit 1 ORDERED; bits 2-7 reserved (zero)
//!              message_id varint | [order varint, if ORDERED] | count varint | index varint
//!              len varint | data     piece `index` of `count` of the message
//! ACK     0x02 largest varint        largest acknowledged record counter
//!              delay varint          microseconds the receiver held the ACK
//!              range_count varint    extra ranges after the first (≤ 64)
//!              first varint          counters below `largest` also acknowledged
//!              (gap varint | len varint)*  as in QUIC (RFC 9000 §19.3.1)
//! ```
//! A message is one encoded wire frame, cut into `count` pieces of
//! consecutive bytes. Decoding never allocates more than the ranges it
//! returns (at most 65).

use bytes::BufMut;
use netproto_wire::varint;

use crate::config::{MAX_ACK_RANGES, MAX_PIECES};
use crate::error::{RecordViolation, Result, UdpError};

const PADDING: u8 = 0x00;
const PIECE: u8 = 0x01;
const ACK: u8 = 0x02;
const RELIABLE: u8 = 0x01;
const ORDERED: u8 = 0x02;

/// One piece of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    /// Whether the sender retransmits it until acknowledged.
    pub reliable: bool,
    /// The message id (per session, direction and delivery mode, from 0).
    pub message_id: u64,
    /// Ordered messages: the position among the sender's ordered messages
    /// (from 0); only with `reliable`.
    pub order: Option<u64>,
    /// Pieces of the message.
    pub count: u64,
    /// This piece's index.
    pub index: u64,
    /// Its bytes.
    pub data: &'a [u8],
}

impl Piece<'_> {
    /// Bytes the item takes.
    pub fn encoded_len(&self) -> usize {
        2 + varint::encoded_len(self.message_id)
            + self.order.map_or(0, varint::encoded_len)
            + varint::encoded_len(self.count)
            + varint::encoded_len(self.index)
            + varint::encoded_len(self.data.len() as u64)
            + self.data.len()
    }

    /// Appends the item.
    pub fn encode<B: BufMut + ?Sized>(&self, out: &mut B) {
        out.put_u8(PIECE);
        let ordered = if self.order.is_some() { ORDERED } else { 0 };
        out.put_u8(if self.reliable { RELIABLE | ordered } else { 0 });
        varint::encode(self.message_id, out);
        if let (true, Some(order)) = (self.reliable, self.order) {
            varint::encode(order, out);
        }
        varint::encode(self.count, out);
        varint::encode(self.index, out);
        varint::encode(self.data.len() as u64, out);
        out.put_slice(self.data);
    }
}

/// Bytes a PIECE item adds to its data, at most.
pub(crate) const fn piece_overhead(message_id: u64, order: Option<u64>, count: u64) -> usize {
    // type, flags, id, order, count, index (≤ count's length), data length
    // (≤ 3 bytes: a piece is smaller than a record).
    let order = match order {
        Some(o) => varint::encoded_len(o),
        None => 0,
    };
    2 + varint::encoded_len(message_id) + order + 2 * varint::encoded_len(count) + 3
}

/// An acknowledgement of record counters, largest range first; every range
/// is inclusive (`(low, high)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Microseconds between receiving the largest counter and sending this.
    pub delay_micros: u64,
    /// Descending, disjoint, non-adjacent ranges.
    pub ranges: Vec<(u64, u64)>,
}

impl Ack {
    /// Bytes the item takes.
    pub fn encoded_len(&self) -> usize {
        let mut out = Vec::new();
        self.encode(&mut out);
        out.len()
    }

    /// Appends the item. `ranges` must be descending and disjoint with a
    /// gap of at least one between them (as a receiver keeps them);
    /// at most 65 are written.
    pub fn encode<B: BufMut + ?Sized>(&self, out: &mut B) {
        let Some(&(first_low, largest)) = self.ranges.first() else {
            return;
        };
        let ranges = &self.ranges[..self.ranges.len().min(MAX_ACK_RANGES + 1)];
        out.put_u8(ACK);
        varint::encode(largest, out);
        varint::encode(self.delay_micros, out);
        varint::encode(ranges.len() as u64 - 1, out);
        varint::encode(largest - first_low, out);
        let mut smallest = first_low;
        for &(low, high) in &ranges[1..] {
            varint::encode(smallest - high - 2, out);
            varint::encode(high - low, out);
            smallest = low;
        }
    }

    /// Whether `counter` is acknowledged.
    pub fn contains(&self, counter: u64) -> bool {
        self.ranges
            .iter()
            .any(|&(low, high)| (low..=high).contains(&counter))
    }
}

/// One decoded item.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Item<'a> {
    /// A message piece.
    Piece(Piece<'a>),
    /// An acknowledgement.
    Ack(Ack),
}

/// Iterates over the items of a record's plaintext; stops at PADDING or the
/// end; yields an error and then stops at the first violation.
#[derive(Debug, Clone)]
pub struct Items<'a> {
    rest: &'a [u8],
}

/// The items of `plaintext`.
pub fn items(plaintext: &[u8]) -> Items<'_> {
    Items { rest: plaintext }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64> {
        let (v, used) = varint::decode(self.buf).map_err(|e| match e {
            netproto_wire::WireError::Truncated { .. } => {
                UdpError::Record(RecordViolation::Truncated)
            }
            other => UdpError::Wire(other),
        })?;
        self.buf = &self.buf[used..];
        Ok(v)
    }

    fn byte(&mut self) -> Result<u8> {
        let (&b, rest) = self.buf.split_first().ok_or(RecordViolation::Truncated)?;
        self.buf = rest;
        Ok(b)
    }

    fn bytes(&mut self, len: u64) -> Result<&'a [u8]> {
        let len = usize::try_from(len).map_err(|_| RecordViolation::Truncated)?;
        if len > self.buf.len() {
            return Err(RecordViolation::Truncated.into());
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }
}

fn piece<'a>(r: &mut Reader<'a>) -> Result<Piece<'a>> {
    let flags = r.byte()?;
    let known = if flags & RELIABLE != 0 {
        RELIABLE | ORDERED
    } else {
        0
    };
    if flags & !known != 0 {
        return Err(RecordViolation::PieceFlags(flags & !known).into());
    }
    let message_id = r.varint()?;
    let order = if flags & ORDERED != 0 {
        Some(r.varint()?)
    } else {
        None
    };
    let count = r.varint()?;
    let index = r.varint()?;
    if count == 0 || count > MAX_PIECES || index >= count {
        return Err(RecordViolation::BadPiece { index, count }.into());
    }
    let len = r.varint()?;
    let data = r.bytes(len)?;
    Ok(Piece {
        reliable: flags & RELIABLE != 0,
        message_id,
        order,
        count,
        index,
        data,
    })
}

fn ack(r: &mut Reader<'_>) -> Result<Ack> {
    let largest = r.varint()?;
    let delay_micros = r.varint()?;
    let extra = r.varint()?;
    if extra > MAX_ACK_RANGES as u64 {
        return Err(RecordViolation::TooManyRanges(extra).into());
    }
    let first = r.varint()?;
    let mut low = largest
        .checked_sub(first)
        .ok_or(RecordViolation::AckUnderflow)?;
    let mut ranges = Vec::with_capacity(usize::try_from(extra).unwrap_or(0) + 1);
    ranges.push((low, largest));
    for _ in 0..extra {
        let gap = r.varint()?;
        let len = r.varint()?;
        let high = low
            .checked_sub(gap)
            .and_then(|v| v.checked_sub(2))
            .ok_or(RecordViolation::AckUnderflow)?;
        low = high.checked_sub(len).ok_or(RecordViolation::AckUnderflow)?;
        ranges.push((low, high));
    }
    Ok(Ack {
        delay_micros,
        ranges,
    })
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<Item<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut r = Reader { buf: self.rest };
        let result = match r.byte().ok()? {
            PADDING => return None,
            PIECE => piece(&mut r).map(Item::Piece),
            ACK => ack(&mut r).map(Item::Ack),
            other => Err(RecordViolation::UnknownItem(other).into()),
        };
        self.rest = if result.is_ok() { r.buf } else { &[] };
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ack_ranges_round_trip() {
        let ack = Ack {
            delay_micros: 1500,
            ranges: vec![(90, 100), (50, 80), (3, 3), (0, 1)],
        };
        let mut buf = Vec::new();
        ack.encode(&mut buf);
        assert_eq!(buf.len(), ack.encoded_len());
        let got: Vec<_> = items(&buf).collect::<Result<_>>().unwrap();
        assert_eq!(got, vec![Item::Ack(ack)]);
    }

    #[test]
    fn underflowing_ack_is_refused() {
        // largest 5, first 6.
        let buf = [ACK, 5, 0, 0, 6];
        assert!(matches!(
            items(&buf).next(),
            Some(Err(UdpError::Record(RecordViolation::AckUnderflow)))
        ));
        // largest 5, first 0, one range with gap 4: high = 5 - 4 - 2 < 0.
        let buf = [ACK, 5, 0, 1, 0, 4, 0];
        assert!(matches!(
            items(&buf).next(),
            Some(Err(UdpError::Record(RecordViolation::AckUnderflow)))
        ));
    }

    #[test]
    fn bad_pieces_are_refused() {
        for (count, index) in [(0u8, 0u8), (2, 2)] {
            let buf = [PIECE, 1, 0, count, index, 0];
            assert!(matches!(
                items(&buf).next(),
                Some(Err(UdpError::Record(RecordViolation::BadPiece { .. })))
            ));
        }
        let buf = [PIECE, 2, 0, 1, 0, 0];
        assert!(matches!(
            items(&buf).next(),
            Some(Err(UdpError::Record(RecordViolation::PieceFlags(2))))
        ));
        let buf = [PIECE, 1, 0, 1, 0, 5, 1];
        assert!(matches!(
            items(&buf).next(),
            Some(Err(UdpError::Record(RecordViolation::Truncated)))
        ));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            for item in items(&bytes) {
                let _ = item;
            }
        }

        #[test]
        fn pieces_round_trip(
            reliable: bool,
            id in 0u64..1 << 40,
            (count, index) in (1u64..=MAX_PIECES).prop_flat_map(|c| (Just(c), 0..c)),
            data in proptest::collection::vec(any::<u8>(), 0..1200),
        ) {
            let p = Piece { reliable, message_id: id, order: reliable.then_some(id / 3), count, index, data: &data };
            let mut buf = Vec::new();
            p.encode(&mut buf);
            prop_assert_eq!(buf.len(), p.encoded_len());
            prop_assert!(p.encoded_len() <= data.len() + piece_overhead(id, p.order, count));
            let got: Vec<_> = items(&buf).collect::<Result<_>>().unwrap();
            prop_assert_eq!(got, vec![Item::Piece(p)]);
        }
    }
}
