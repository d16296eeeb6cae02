//! The frames daemon and worker exchange over their channel: a tag byte, then the body.
//!
//! | tag | direction | body |
//! |-----|-----------|------|
//! | `C` | daemon → worker | a command word (`pause`, `stop`, any custom word), UTF-8, to the end |
//! | `Q` | daemon → worker | a request: ticket (`u64` LE), then a value |
//! | `A` | worker → daemon | an answer: ticket, then a value |
//! | `F` | worker → daemon | a fault: ticket, code (`i32` LE), message (a length and UTF-8), then `0` (no data) or `1` and the data value |
//! | `U` | worker → daemon | a message up, unasked: a value |
//!
//! A value is a tag byte, then its body; every integer is little endian, every length a `u32`:
//!
//! | tag | value | body |
//! |-----|-------|------|
//! | `n` | `Nil` | — |
//! | `f`, `t` | `Bool(false)`, `Bool(true)` | — |
//! | `i` | `Int` | the `i64`, 8 bytes |
//! | `d` | `Double` | the `f64`'s bits, 8 bytes (NaN payloads and `-0.0` survive) |
//! | `s` | `String` | length, UTF-8 bytes |
//! | `b` | `Base64` | length, the raw bytes |
//! | `D` | `DateTime` | length, the text as it came (UTF-8) |
//! | `[` | `Array` | count, then each value |
//! | `{` | `Struct` | count, then each member: name (length, UTF-8), value |
//!
//! The encoding is lossless: every [`Value`] decodes to an equal value of the same variant
//! (which JSON, the previous body, could not do for bytes, date-times, NaN and infinities),
//! struct members keep their order and repeated names, and a frame that decodes re-encodes to
//! the same bytes.
//!
//! Lengths and counts are fixed-width `u32`s rather than LEB128 varints: one bounds check and
//! one load to read, and no over-long forms to reject (a varint can spell the same number in
//! several ways, which would break "re-encodes to the same bytes"). The 3 bytes a varint would
//! save on a short string do not matter on a shared-memory ring.
//!
//! Frames come from another process, which may be buggy, so [`Frame::decode`] never panics
//! and returns `None` for anything malformed: an unknown tag, a truncated body, invalid UTF-8,
//! trailing bytes, nesting deeper than [`Frame::MAX_DEPTH`]. Nor does it allocate more than
//! the input justifies: a string or byte string is allocated once its bytes are known to be
//! there, and the elements a container declares are charged to a budget of the frame's length
//! before any room is reserved for them (see `Reader::claim`).
//!
//! Encoding never writes what decoding refuses as too deep where it can say so instead: an
//! answer (or a fault's data) nesting deeper than [`Frame::MAX_DEPTH`] is sent as a −32603
//! fault answer to its ticket, so the worker that made it is not killed for a malformed frame.

use tomte_rpc::{Fault, Value};

const NIL: u8 = b'n';
const FALSE: u8 = b'f';
const TRUE: u8 = b't';
const INT: u8 = b'i';
const DOUBLE: u8 = b'd';
const STRING: u8 = b's';
const BASE64: u8 = b'b';
const DATETIME: u8 = b'D';
const ARRAY: u8 = b'[';
const STRUCT: u8 = b'{';

/// The fewest bytes an array element takes: its tag.
const MIN_ELEMENT: usize = 1;
/// The fewest bytes a struct member takes: its name's length and its value's tag.
const MIN_MEMBER: usize = 4 + 1;

/// One decoded frame.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// Daemon → worker: a command word (`pause`, `resume`, `stop`, or the worker's own).
    Command(String),
    /// Daemon → worker: a request, with the ticket its answer will carry.
    Request(u64, Value),
    /// Worker → daemon: the answer to the request of this ticket, a value or a fault.
    Answer(u64, Result<Value, Fault>),
    /// Worker → daemon: a message the worker sends unasked.
    Up(Value),
    /// Worker → daemon: its status word (spinup, looping, paused, spindown) just changed; the
    /// frame only wakes the daemon, which reads the word and reports the new state.
    Status,
}

impl Frame {
    /// How deep a decoded value may nest: a scalar at the top is at depth 0, the elements of a
    /// top-level array at depth 1. Anything deeper is refused, so that decoding (and dropping)
    /// a value from a peer recurses at most this far.
    pub const MAX_DEPTH: usize = 512;

    /// Writes the frame into `out` (cleared first), without any other allocation.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Frame::Command(word) => {
                out.push(b'C');
                out.extend_from_slice(word.as_bytes());
            }
            Frame::Request(ticket, v) => {
                out.push(b'Q');
                out.extend_from_slice(&ticket.to_le_bytes());
                put_value(out, v, 0);
            }
            Frame::Answer(ticket, Ok(v)) => {
                out.push(b'A');
                out.extend_from_slice(&ticket.to_le_bytes());
                if !put_value(out, v, 0) {
                    too_deep(*ticket, out);
                }
            }
            Frame::Answer(ticket, Err(f)) => {
                out.push(b'F');
                out.extend_from_slice(&ticket.to_le_bytes());
                out.extend_from_slice(&f.code.to_le_bytes());
                put_bytes(out, f.message.as_bytes());
                match &f.data {
                    None => out.push(0),
                    Some(data) => {
                        out.push(1);
                        if !put_value(out, data, 0) {
                            too_deep(*ticket, out);
                        }
                    }
                }
            }
            Frame::Up(v) => {
                out.push(b'U');
                put_value(out, v, 0);
            }
            Frame::Status => out.push(b'S'),
        }
    }

    /// Decodes a frame; `None` for anything malformed (the peer is then treated as broken).
    pub fn decode(bytes: &[u8]) -> Option<Frame> {
        let (&tag, body) = bytes.split_first()?;
        if tag == b'C' {
            return Some(Frame::Command(std::str::from_utf8(body).ok()?.to_owned()));
        }
        if tag == b'S' {
            return body.is_empty().then_some(Frame::Status);
        }
        let mut r = Reader { rest: body, budget: body.len() };
        let frame = match tag {
            b'Q' => Frame::Request(r.u64()?, r.value(0)?),
            b'A' => Frame::Answer(r.u64()?, Ok(r.value(0)?)),
            b'F' => {
                let ticket = r.u64()?;
                let code = i32::from_le_bytes(r.array()?);
                let message = r.string()?;
                let data = match r.byte()? {
                    0 => None,
                    1 => Some(r.value(0)?),
                    _ => return None,
                };
                Frame::Answer(ticket, Err(Fault { code, message, data }))
            }
            b'U' => Frame::Up(r.value(0)?),
            _ => return None,
        };
        r.rest.is_empty().then_some(frame)
    }
}

/// Writes a length or count. A frame longer than the largest ring (1 GiB) can never be sent,
/// so a length beyond `u32` never reaches a peer: it is saturated here rather than panicking.
#[inline]
fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

#[inline]
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// An answer nesting deeper than [`Frame::MAX_DEPTH`], which the daemon would refuse as
/// malformed (and kill the worker for): the frame in `out` becomes a fault answer instead.
fn too_deep(ticket: u64, out: &mut Vec<u8>) {
    let why =
        format!("the answer nests deeper than {} levels, which the worker channel cannot carry", Frame::MAX_DEPTH);
    Frame::Answer(ticket, Err(Fault::internal(why))).encode(out);
}

/// Writes `v` at `depth` (as [`Frame::decode`] counts it); false, with `out` part-written, when
/// it nests deeper than a peer decodes. Recursive only that far: the values sent are the
/// decoders' (bounded) or a worker's own (of any depth).
fn put_value(out: &mut Vec<u8>, v: &Value, depth: usize) -> bool {
    if depth > Frame::MAX_DEPTH {
        return false;
    }
    match v {
        Value::Nil => out.push(NIL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Int(i) => {
            out.push(INT);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Double(d) => {
            out.push(DOUBLE);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Value::String(s) => {
            out.push(STRING);
            put_bytes(out, s.as_bytes());
        }
        Value::Base64(b) => {
            out.push(BASE64);
            put_bytes(out, b);
        }
        Value::DateTime(s) => {
            out.push(DATETIME);
            put_bytes(out, s.as_bytes());
        }
        Value::Array(items) => {
            out.push(ARRAY);
            put_len(out, items.len());
            for item in items {
                if !put_value(out, item, depth + 1) {
                    return false;
                }
            }
        }
        Value::Struct(members) => {
            out.push(STRUCT);
            put_len(out, members.len());
            for (name, value) in members {
                put_bytes(out, name.as_bytes());
                if !put_value(out, value, depth + 1) {
                    return false;
                }
            }
        }
    }
    true
}

/// A cursor over a frame's body.
struct Reader<'a> {
    rest: &'a [u8],
    /// Bytes not yet claimed by a container's declared elements (see [`Reader::claim`]).
    budget: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(taken)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (taken, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*taken)
    }

    #[inline]
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    #[inline]
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    #[inline]
    fn len(&mut self) -> Option<usize> {
        usize::try_from(u32::from_le_bytes(self.array()?)).ok()
    }

    /// A length, then that many bytes, borrowed: nothing is allocated before they are known to
    /// be there.
    #[inline]
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }

    /// A length and UTF-8 text, checked, then copied: one allocation.
    #[inline]
    fn string(&mut self) -> Option<String> {
        Some(std::str::from_utf8(self.bytes()?).ok()?.to_owned())
    }

    /// Charges `count` elements of at least `min` bytes each to the budget, or refuses them.
    ///
    /// Every element of every container in a well-formed frame takes bytes of its own (an
    /// array element its tag, a struct member its name's length and its value's tag), so the
    /// counts declared across the whole frame, times those minimums, never exceed its length.
    /// A declaration that would is malformed, and refused before room is reserved for it: the
    /// room reserved for all containers together is thus bounded by the frame's length times
    /// the size of an element, even for a frame that turns out broken further on.
    #[inline]
    fn claim(&mut self, count: usize, min: usize) -> Option<()> {
        let need = count.checked_mul(min)?;
        self.budget = self.budget.checked_sub(need)?;
        Some(())
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > Frame::MAX_DEPTH {
            return None;
        }
        Some(match self.byte()? {
            NIL => Value::Nil,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            INT => Value::Int(i64::from_le_bytes(self.array()?)),
            DOUBLE => Value::Double(f64::from_bits(self.u64()?)),
            STRING => Value::String(self.string()?),
            BASE64 => Value::Base64(self.bytes()?.to_vec()),
            DATETIME => Value::DateTime(self.string()?),
            ARRAY => {
                let count = self.len()?;
                self.claim(count, MIN_ELEMENT)?;
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            STRUCT => {
                let count = self.len()?;
                self.claim(count, MIN_MEMBER)?;
                let mut members = Vec::with_capacity(count);
                for _ in 0..count {
                    let name = self.string()?;
                    members.push((name, self.value(depth + 1)?));
                }
                Value::Struct(members)
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `frame`, checks that it decodes to an equal frame, and returns the bytes.
    fn round_trip(frame: &Frame) -> Vec<u8> {
        let mut buf = Vec::new();
        frame.encode(&mut buf);
        let back = Frame::decode(&buf).unwrap_or_else(|| panic!("{frame:?} does not decode"));
        assert_eq!(&back, frame);
        let mut again = Vec::new();
        back.encode(&mut again);
        assert_eq!(again, buf, "{frame:?} re-encodes differently");
        buf
    }

    /// Every variant, nested, with the edge cases of each.
    fn rich() -> Value {
        Value::Array(vec![
            Value::Nil,
            Value::Bool(false),
            Value::Bool(true),
            Value::Int(0),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Double(1.5),
            Value::Double(-0.0),
            Value::Double(f64::INFINITY),
            Value::Double(f64::NEG_INFINITY),
            Value::Double(f64::MIN_POSITIVE / 2.0),
            Value::String(String::new()),
            Value::String("grüße, 世界, 🦀".into()),
            Value::Base64(vec![]),
            Value::Base64(vec![0, 1, 0xff]),
            Value::DateTime("20261202T10:11:12".into()),
            Value::Array(vec![]),
            Value::Struct(vec![]),
            Value::Struct(vec![
                ("a".into(), Value::Int(1)),
                ("ü".into(), Value::Array(vec![Value::Struct(vec![("".into(), Value::Nil)])])),
                // A repeated name is kept as it was: the channel is not a decoder of client input.
                ("a".into(), Value::String("again".into())),
            ]),
        ])
    }

    #[test]
    fn every_frame_kind_round_trips() {
        for f in [
            Frame::Command("pause".into()),
            Frame::Command(String::new()),
            Frame::Command("café".into()),
            Frame::Request(7, Value::from("count")),
            Frame::Request(u64::MAX, rich()),
            Frame::Answer(7, Ok(Value::Int(42))),
            Frame::Answer(0, Ok(rich())),
            Frame::Answer(8, Err(Fault::internal("boom"))),
            Frame::Up(Value::from(vec![1, 2])),
            Frame::Up(rich()),
        ] {
            round_trip(&f);
        }
    }

    #[test]
    fn every_value_variant_round_trips_exactly() {
        let Value::Array(items) = rich() else { unreachable!() };
        for v in items {
            let frame = Frame::Up(v);
            round_trip(&frame);
        }
        // Large bytes, every byte value.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 256) as u8).collect();
        round_trip(&Frame::Answer(1, Ok(Value::Base64(big))));
        let long: String = "ß€𝄞a".repeat(10_000);
        round_trip(&Frame::Request(2, Value::String(long)));
    }

    #[test]
    fn doubles_keep_their_bits() {
        let nans = [f64::NAN, -f64::NAN, f64::from_bits(0x7ff0_0000_0000_0001), f64::from_bits(0xfff8_dead_beef_0042)];
        for d in nans.into_iter().chain([-0.0, 0.0, f64::MAX, f64::MIN, 5e-324, f64::EPSILON]) {
            let mut buf = Vec::new();
            Frame::Up(Value::Double(d)).encode(&mut buf);
            let Some(Frame::Up(Value::Double(back))) = Frame::decode(&buf) else { panic!("{d} does not decode") };
            assert_eq!(back.to_bits(), d.to_bits(), "{d}");
        }
    }

    #[test]
    fn base64_and_datetime_keep_their_variant() {
        let mut buf = Vec::new();
        Frame::Up(Value::Base64(b"abc".to_vec())).encode(&mut buf);
        assert_eq!(Frame::decode(&buf), Some(Frame::Up(Value::Base64(b"abc".to_vec()))));
        Frame::Up(Value::DateTime("19980717T14:08:55".into())).encode(&mut buf);
        assert_eq!(Frame::decode(&buf), Some(Frame::Up(Value::DateTime("19980717T14:08:55".into()))));
        assert_ne!(Frame::decode(&buf), Some(Frame::Up(Value::String("19980717T14:08:55".into()))));
    }

    #[test]
    fn faults_keep_code_message_and_data() {
        for fault in [
            Fault { code: i32::MIN, message: String::new(), data: None },
            Fault { code: i32::MAX, message: "ça ne va pas".into(), data: Some(Value::Nil) },
            Fault { code: -32603, message: "Internal error".into(), data: Some(rich()) },
            Fault::new(1, "x").with_data("detail"),
        ] {
            let frame = Frame::Answer(99, Err(fault));
            round_trip(&frame);
        }
        // `Some(Nil)` and `None` stay apart.
        let mut none = Vec::new();
        Frame::Answer(1, Err(Fault::new(1, "x"))).encode(&mut none);
        let mut nil = Vec::new();
        Frame::Answer(1, Err(Fault::new(1, "x").with_data(()))).encode(&mut nil);
        assert_ne!(none, nil);
    }

    #[test]
    fn the_layout_is_as_documented() {
        let mut buf = Vec::new();
        Frame::Request(1, Value::Array(vec![Value::from("hi"), Value::Int(-2), Value::Bool(true)])).encode(&mut buf);
        let mut want = vec![b'Q', 1, 0, 0, 0, 0, 0, 0, 0, b'[', 3, 0, 0, 0, b's', 2, 0, 0, 0, b'h', b'i', b'i'];
        want.extend_from_slice(&(-2i64).to_le_bytes());
        want.push(b't');
        assert_eq!(buf, want);
        Frame::Answer(2, Err(Fault::new(-1, "no").with_data(1.5))).encode(&mut buf);
        let mut want = vec![b'F', 2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, b'n', b'o', 1, b'd'];
        want.extend_from_slice(&1.5f64.to_bits().to_le_bytes());
        assert_eq!(buf, want);
    }

    #[test]
    fn every_truncation_is_refused() {
        for frame in [
            Frame::Request(3, rich()),
            Frame::Answer(4, Err(Fault::internal("boom").with_data(rich()))),
            Frame::Answer(5, Err(Fault::new(2, "no data"))),
            Frame::Up(rich()),
        ] {
            let buf = round_trip(&frame);
            for cut in 0..buf.len() {
                assert_eq!(Frame::decode(&buf[..cut]), None, "{cut} of {} bytes of {frame:?}", buf.len());
            }
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        for frame in [
            Frame::Request(3, rich()),
            Frame::Answer(4, Ok(Value::Int(1))),
            Frame::Answer(5, Err(Fault::new(2, "x"))),
            Frame::Answer(5, Err(Fault::new(2, "x").with_data(rich()))),
            Frame::Up(Value::Nil),
        ] {
            let mut buf = Vec::new();
            frame.encode(&mut buf);
            for garbage in [&[0u8][..], b"n", b"garbage"] {
                let mut long = buf.clone();
                long.extend_from_slice(garbage);
                assert_eq!(Frame::decode(&long), None, "{frame:?} + {garbage:?}");
            }
        }
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let bad: &[&[u8]] = &[
            b"",
            b"Z",
            b"Qshort",
            b"Q\0\0\0\0\0\0\0\0",                       // no value
            b"Q\0\0\0\0\0\0\0\0x",                      // unknown value tag
            b"U\0",                                     // unknown value tag
            b"Ui\0\0\0",                                // short int
            b"Us\x02\0\0\0\xc3\x28",                    // invalid UTF-8
            b"UD\x01\0\0\0\xff",                        // invalid UTF-8 in a date-time
            b"U{\x01\0\0\0\x01\0\0\0\xffn",             // invalid UTF-8 in a member name
            b"F\0\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\x02", // data flag neither 0 nor 1
            b"F\0\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0",     // no data flag
            b"C\xff",                                   // a command that is not UTF-8
        ];
        for bytes in bad {
            assert_eq!(Frame::decode(bytes), None, "{bytes:?}");
        }
        assert_eq!(Frame::decode(b"Ub\x01\0\0\0\xff"), Some(Frame::Up(Value::Base64(vec![0xff]))));
    }

    /// `depth` arrays nested, the innermost empty: its depth (as the fuzz checks measure it)
    /// is `depth - 1`.
    fn nested(depth: usize) -> Vec<u8> {
        let mut buf = vec![b'U'];
        for i in 0..depth {
            buf.push(ARRAY);
            buf.extend_from_slice(&u32::from(i + 1 < depth).to_le_bytes());
        }
        buf
    }

    #[test]
    fn nesting_is_bounded() {
        let limit = Frame::MAX_DEPTH;
        assert!(Frame::decode(&nested(limit + 1)).is_some(), "the deepest value allowed");
        assert_eq!(Frame::decode(&nested(limit + 2)), None);
        // A bomb: a million levels declared, refused without recursing that far.
        assert_eq!(Frame::decode(&nested(1_000_000)), None);
        // A scalar at the limit, in arrays and in structs.
        let mut buf = vec![b'U'];
        for _ in 0..limit {
            buf.extend_from_slice(&[STRUCT, 1, 0, 0, 0, 1, 0, 0, 0, b'k']);
        }
        buf.push(NIL);
        assert!(Frame::decode(&buf).is_some());
        buf.pop();
        buf.extend_from_slice(&[STRUCT, 1, 0, 0, 0, 1, 0, 0, 0, b'k', NIL]);
        assert_eq!(Frame::decode(&buf), None);
    }

    /// A worker's answer deeper than the daemon decodes goes as a fault answer to its ticket,
    /// which the daemon decodes (a malformed frame would get the worker killed); one at the
    /// limit goes as it is.
    #[test]
    fn an_answer_too_deep_to_decode_is_sent_as_a_fault() {
        let deep = |levels: usize| (0..levels).fold(Value::Nil, |v, _| Value::Array(vec![v]));
        round_trip(&Frame::Answer(4, Ok(deep(Frame::MAX_DEPTH))));
        let mut buf = Vec::new();
        for frame in [
            Frame::Answer(5, Ok(deep(Frame::MAX_DEPTH + 1))),
            Frame::Answer(5, Err(Fault::internal("x").with_data(deep(100_000)))),
        ] {
            frame.encode(&mut buf);
            // Not dropped: that would recurse 100 000 deep, more than a test thread's stack.
            std::mem::forget(frame);
            let Some(Frame::Answer(5, Err(f))) = Frame::decode(&buf) else { panic!("a fault answer to ticket 5") };
            assert_eq!(f.code, tomte_rpc::fault::INTERNAL_ERROR);
            assert!(f.full_message().contains("nests deeper than 512 levels"), "{f:?}");
        }
    }

    /// Frames declaring `u32::MAX` elements or bytes, with 10 bytes of input after it.
    const HUGE_DECLARATIONS: [&[u8]; 6] = [
        b"U[\xff\xff\xff\xffnnnnnnnnnn",
        b"U{\xff\xff\xff\xffnnnnnnnnnn",
        b"Us\xff\xff\xff\xffaaaaaaaaaa",
        b"Ub\xff\xff\xff\xffaaaaaaaaaa",
        b"UD\xff\xff\xff\xffaaaaaaaaaa",
        b"F\0\0\0\0\0\0\0\0\0\0\0\0\xff\xff\xff\xffaaaaaaaaaa",
    ];

    #[test]
    fn declared_lengths_beyond_the_input_are_refused() {
        for bytes in HUGE_DECLARATIONS {
            assert_eq!(Frame::decode(bytes), None, "{bytes:?}");
        }
        // Counts that the input could hold one level at a time, but not all together: the
        // outer array claims every byte, so the inner one is refused at once.
        let mut buf = b"U[\x40\0\0\0[\x3f\0\0\0".to_vec();
        buf.resize(buf.len() + 58, NIL);
        assert_eq!(Frame::decode(&buf), None);
        // And the same counts, honestly filled, decode.
        let mut ok = b"U[\x02\0\0\0[\x3f\0\0\0".to_vec();
        ok.resize(ok.len() + 0x3f, NIL);
        ok.push(NIL);
        assert!(Frame::decode(&ok).is_some());
    }

    /// The same refusals allocate nothing large: they run in a child whose address space may
    /// grow by 256 MiB at most, where reserving room for what the frames declare (4 GiB of
    /// bytes, 128 GiB of values) fails, which aborts the child.
    #[test]
    fn declared_lengths_beyond_the_input_allocate_nothing() {
        use crate::sys::shm::fork_test::fork_child;
        use rustix::process::{setrlimit, Resource, Rlimit};

        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmSize in /proc/self/status");
        let limit = (kib << 10) + (256 << 20);
        let (child, ()) = fork_child((), move |()| {
            if setrlimit(Resource::As, Rlimit { current: Some(limit), maximum: None }).is_err() {
                return 3;
            }
            // Nothing here may allocate (see `fork_child`): refusing these frames does not.
            match HUGE_DECLARATIONS.iter().all(|bytes| Frame::decode(bytes).is_none()) {
                true => 0,
                false => 4,
            }
        });
        assert_eq!(child.wait(std::time::Duration::from_secs(20)), 0);
    }
}
