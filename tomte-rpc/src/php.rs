//! The subset of PHP's `serialize()` format that comodojo/daemon frames use: arrays, byte
//! strings, booleans, null, integers and doubles. Objects, references and everything else are
//! refused, so hostile input can never name a class or build a cycle.
//!
//! [`serialize`] writes exactly the bytes PHP ≥ 7.1 writes (doubles included, with the default
//! `serialize_precision = -1`; one rare power-of-two case is noted at `write_double`).
//! [`parse`] is strict: one value, no trailing bytes, exact string lengths, bounded nesting.

use std::fmt;
use std::io::Write as _;

/// Arrays nested deeper than this are refused by [`parse`].
pub const MAX_DEPTH: usize = 64;

/// An array key: PHP arrays are keyed by integers or byte strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// `i:<n>;` as a key.
    Int(i64),
    /// `s:<byte length>:"<bytes>";` as a key.
    String(Vec<u8>),
}

impl Key {
    /// The key as text, if it is a string key holding UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Key::String(s) => std::str::from_utf8(s).ok(),
            Key::Int(_) => None,
        }
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Key {
        Key::String(s.as_bytes().to_vec())
    }
}
impl From<i64> for Key {
    fn from(i: i64) -> Key {
        Key::Int(i)
    }
}

/// One PHP value of the supported subset.
#[derive(Clone, Debug, PartialEq)]
pub enum PhpValue {
    /// `N;`
    Null,
    /// `b:0;` / `b:1;`
    Bool(bool),
    /// `i:<n>;`
    Int(i64),
    /// `d:<x>;` (`INF`, `-INF` and `NAN` included, as PHP has them).
    Double(f64),
    /// `s:<byte length>:"<bytes>";` — PHP strings are bytes, not text.
    String(Vec<u8>),
    /// `a:<n>:{<key><value>…}`, in order.
    Array(Vec<(Key, PhpValue)>),
}

impl PhpValue {
    /// The member `key` of an array, if this is an array that has it.
    pub fn get(&self, key: &str) -> Option<&PhpValue> {
        match self {
            PhpValue::Array(items) => {
                items.iter().find(|(k, _)| matches!(k, Key::String(s) if s == key.as_bytes())).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// The PHP type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            PhpValue::Null => "null",
            PhpValue::Bool(_) => "bool",
            PhpValue::Int(_) => "int",
            PhpValue::Double(_) => "float",
            PhpValue::String(_) => "string",
            PhpValue::Array(_) => "array",
        }
    }
}

impl From<&str> for PhpValue {
    fn from(s: &str) -> PhpValue {
        PhpValue::String(s.as_bytes().to_vec())
    }
}

/// Why a serialized text was refused: what, and at which byte of the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct PhpError {
    /// The byte of the input at which the text was refused, from 0.
    pub offset: usize,
    /// What was wrong there.
    pub kind: PhpErrorKind,
}

/// The reasons [`parse`] refuses an input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PhpErrorKind {
    /// The input ended where the named thing was expected.
    #[error("unexpected end of input (expected {0})")]
    UnexpectedEnd(&'static str),
    /// A byte other than the one expected.
    #[error("unexpected {found} (expected {expected})")]
    Unexpected {
        /// The byte that was there.
        found: Found,
        /// What was expected instead.
        expected: &'static str,
    },
    /// A construct outside the subset: objects, references, enums, escaped strings.
    #[error("{0} are refused")]
    Refused(&'static str),
    /// A number too large for its type: an integer beyond 64 bits, a length beyond `usize`.
    #[error("number out of range")]
    OutOfRange,
    /// The input ends before the declared length of a string (the length).
    #[error("string is shorter than its declared length {0}")]
    ShortString(usize),
    /// An array key of another type than int or string (the type is named).
    #[error("array key must be an int or a string, not {0}")]
    BadKey(&'static str),
    /// Arrays nested deeper than [`MAX_DEPTH`].
    #[error("arrays nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Bytes after the one value (how many).
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
}

/// A byte seen where another was expected, printed readably.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found(pub u8);

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b @ 0x21..=0x7e => write!(f, "'{}'", b as char),
            b => write!(f, "byte 0x{b:02x}"),
        }
    }
}

/// Parses one serialized value; the whole input must be that value.
pub fn parse(input: &[u8]) -> Result<PhpValue, PhpError> {
    let mut p = Parser { input, pos: 0 };
    let v = p.value(0)?;
    if p.pos != input.len() {
        return Err(p.error(PhpErrorKind::Trailing(input.len() - p.pos)));
    }
    Ok(v)
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, kind: PhpErrorKind) -> PhpError {
        PhpError { offset: self.pos, kind }
    }

    fn peek(&self, expected: &'static str) -> Result<u8, PhpError> {
        self.input.get(self.pos).copied().ok_or_else(|| self.error(PhpErrorKind::UnexpectedEnd(expected)))
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), PhpError> {
        let b = self.peek(expected)?;
        if b != byte {
            return Err(self.error(PhpErrorKind::Unexpected { found: Found(b), expected }));
        }
        self.pos += 1;
        Ok(())
    }

    /// Reads bytes while `accept` holds; at least one is required.
    fn span(&mut self, accept: impl Fn(u8) -> bool, expected: &'static str) -> Result<&[u8], PhpError> {
        let start = self.pos;
        while self.input.get(self.pos).is_some_and(|&b| accept(b)) {
            self.pos += 1;
        }
        if self.pos == start {
            let b = self.peek(expected)?;
            return Err(self.error(PhpErrorKind::Unexpected { found: Found(b), expected }));
        }
        Ok(&self.input[start..self.pos])
    }

    /// An unsigned length or count (`[0-9]+`).
    fn length(&mut self) -> Result<usize, PhpError> {
        let start = self.pos;
        let digits = self.span(|b| b.is_ascii_digit(), "a digit")?;
        digits
            .iter()
            .try_fold(0usize, |n, &d| n.checked_mul(10)?.checked_add(usize::from(d - b'0')))
            .ok_or(PhpError { offset: start, kind: PhpErrorKind::OutOfRange })
    }

    /// A signed integer (`[+-]?[0-9]+`), as PHP's `i:` reads it.
    fn integer(&mut self) -> Result<i64, PhpError> {
        let start = self.pos;
        let negative = match self.peek("an integer")? {
            b'-' => {
                self.pos += 1;
                true
            }
            b'+' => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        let digits = self.span(|b| b.is_ascii_digit(), "a digit")?;
        // Accumulate negatively so that i64::MIN is representable.
        let n = digits.iter().try_fold(0i64, |n, &d| n.checked_mul(10)?.checked_sub(i64::from(d - b'0')));
        let n = if negative { n } else { n.and_then(i64::checked_neg) };
        n.ok_or(PhpError { offset: start, kind: PhpErrorKind::OutOfRange })
    }

    /// A double as PHP writes or reads it: `1`, `-0.5`, `.5`, `5.`, `1.0E+25`, `INF`, `-INF`, `NAN`.
    fn double(&mut self) -> Result<f64, PhpError> {
        let start = self.pos;
        let rest = &self.input[self.pos..];
        for (word, v) in [(&b"NAN"[..], f64::NAN), (b"INF", f64::INFINITY), (b"-INF", f64::NEG_INFINITY)] {
            if rest.starts_with(word) {
                self.pos += word.len();
                return Ok(v);
            }
        }
        let mut digits = 0;
        if matches!(self.peek("a number")?, b'+' | b'-') {
            self.pos += 1;
        }
        while self.input.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
            digits += 1;
        }
        if self.input.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            while self.input.get(self.pos).is_some_and(u8::is_ascii_digit) {
                self.pos += 1;
                digits += 1;
            }
        }
        if digits == 0 {
            let b = self.peek("a number")?;
            return Err(self.error(PhpErrorKind::Unexpected { found: Found(b), expected: "a number" }));
        }
        if matches!(self.input.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek("an exponent")?, b'+' | b'-') {
                self.pos += 1;
            }
            self.span(|b| b.is_ascii_digit(), "an exponent digit")?;
        }
        // Only [+-0-9.eE] were accepted above, so Rust's parser sees no "inf" or "nan" words.
        let text =
            std::str::from_utf8(&self.input[start..self.pos]).map_err(|_| self.error(PhpErrorKind::OutOfRange))?;
        text.parse::<f64>().map_err(|_| PhpError { offset: start, kind: PhpErrorKind::OutOfRange })
    }

    fn string(&mut self) -> Result<Vec<u8>, PhpError> {
        let len = self.length()?;
        self.expect(b':', "':'")?;
        self.expect(b'"', "'\"'")?;
        let end = self.pos.checked_add(len).filter(|&e| e <= self.input.len());
        let Some(end) = end else {
            return Err(self.error(PhpErrorKind::ShortString(len)));
        };
        let bytes = self.input[self.pos..end].to_vec();
        self.pos = end;
        self.expect(b'"', "'\"' closing the string (wrong length?)")?;
        self.expect(b';', "';'")?;
        Ok(bytes)
    }

    fn value(&mut self, depth: usize) -> Result<PhpValue, PhpError> {
        let tag = self.peek("a value")?;
        let refused = match tag {
            b'O' => Some("objects (O:)"),
            b'C' => Some("custom-serialized objects (C:)"),
            b'r' | b'R' => Some("references (r:, R:)"),
            b'E' => Some("enums (E:)"),
            b'S' => Some("escaped strings (S:)"),
            _ => None,
        };
        if let Some(what) = refused {
            return Err(self.error(PhpErrorKind::Refused(what)));
        }
        if tag == b'N' {
            self.pos += 1;
            self.expect(b';', "';'")?;
            return Ok(PhpValue::Null);
        }
        if !matches!(tag, b'b' | b'i' | b'd' | b's' | b'a') {
            return Err(self.error(PhpErrorKind::Unexpected { found: Found(tag), expected: "one of N, b, i, d, s, a" }));
        }
        self.pos += 1;
        self.expect(b':', "':'")?;
        match tag {
            b'b' => {
                let v = match self.peek("0 or 1")? {
                    b'0' => false,
                    b'1' => true,
                    b => return Err(self.error(PhpErrorKind::Unexpected { found: Found(b), expected: "0 or 1" })),
                };
                self.pos += 1;
                self.expect(b';', "';'")?;
                Ok(PhpValue::Bool(v))
            }
            b'i' => {
                let v = self.integer()?;
                self.expect(b';', "';'")?;
                Ok(PhpValue::Int(v))
            }
            b'd' => {
                let v = self.double()?;
                self.expect(b';', "';'")?;
                Ok(PhpValue::Double(v))
            }
            b's' => Ok(PhpValue::String(self.string()?)),
            _ => self.array(depth),
        }
    }

    fn array(&mut self, depth: usize) -> Result<PhpValue, PhpError> {
        if depth >= MAX_DEPTH {
            return Err(self.error(PhpErrorKind::TooDeep));
        }
        let n = self.length()?;
        self.expect(b':', "':'")?;
        self.expect(b'{', "'{'")?;
        // Never trust `n` for the allocation: with room reserved for what the rest of the input
        // could hold, 64 nested `a:999999999:{` would each reserve ten times the input. A few
        // members up front (frames have two), then the vector grows as members really arrive.
        let mut items = Vec::with_capacity(n.min(8));
        for _ in 0..n {
            if self.peek("an array member")? == b'}' {
                return Err(self.error(PhpErrorKind::Unexpected {
                    found: Found(b'}'),
                    expected: "another member (wrong member count?)",
                }));
            }
            let key_at = self.pos;
            let key = match self.value(depth + 1)? {
                PhpValue::Int(i) => Key::Int(i),
                PhpValue::String(s) => Key::String(s),
                other => return Err(PhpError { offset: key_at, kind: PhpErrorKind::BadKey(other.type_name()) }),
            };
            let v = self.value(depth + 1)?;
            items.push((key, v));
        }
        self.expect(b'}', "'}' (wrong member count?)")?;
        Ok(PhpValue::Array(items))
    }
}

/// Appends the serialized form of `v`, byte for byte as PHP's `serialize()` writes it.
pub fn serialize(v: &PhpValue, out: &mut Vec<u8>) {
    match v {
        PhpValue::Null => write_null(out),
        PhpValue::Bool(b) => write_bool(out, *b),
        PhpValue::Int(i) => write_int(out, *i),
        PhpValue::Double(d) => write_double(out, *d),
        PhpValue::String(s) => write_string(out, s),
        PhpValue::Array(items) => {
            write_array_start(out, items.len());
            for (k, v) in items {
                match k {
                    Key::Int(i) => write_int(out, *i),
                    Key::String(s) => write_string(out, s),
                }
                serialize(v, out);
            }
            write_array_end(out);
        }
    }
}

// Piecewise writers, for callers that frame large payloads without copying them into a
// `PhpValue` first.

pub(crate) fn write_null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"N;");
}

pub(crate) fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"b:1;" } else { b"b:0;" });
}

pub(crate) fn write_int(out: &mut Vec<u8>, i: i64) {
    let _ = write!(out, "i:{i};");
}

pub(crate) fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    let _ = write!(out, "s:{}:\"", s.len());
    out.extend_from_slice(s);
    out.extend_from_slice(b"\";");
}

pub(crate) fn write_array_start(out: &mut Vec<u8>, n: usize) {
    let _ = write!(out, "a:{n}:{{");
}

pub(crate) fn write_array_end(out: &mut Vec<u8>) {
    out.push(b'}');
}

/// `d:<x>;` as PHP writes it: the shortest digits that read back exactly, laid out as
/// `php_gcvt` does in mode 0 — plain notation while the decimal exponent is in −4 < e ≤ 17,
/// else `d.dddE±x`.
///
/// The digits are what PHP's dtoa (mode 0) picks: the fewest that read back to the same double
/// and, among those, the closest to its exact value, ties to even. Checked against PHP 8.2 on
/// 200 000 random doubles plus every power of two.
pub(crate) fn write_double(out: &mut Vec<u8>, d: f64) {
    out.extend_from_slice(b"d:");
    if d.is_nan() {
        out.extend_from_slice(b"NAN");
    } else if d.is_infinite() {
        out.extend_from_slice(if d > 0.0 { &b"INF"[..] } else { b"-INF" });
    } else {
        php_gcvt(d, out);
    }
    out.push(b';');
}

fn php_gcvt(d: f64, out: &mut Vec<u8>) {
    // Rust's `{:e}` gives the shortest round-trip digits ("-1.2345e-7", "0e0"), but when two
    // candidates of that length are equally close it may pick the upper one; `{:.N e}` rounds
    // the exact value, ties to even, as dtoa does. Keep the latter when it reads back.
    let shortest = format!("{d:e}");
    let len = shortest.split('e').next().unwrap_or("").bytes().filter(u8::is_ascii_digit).count();
    let rounded = format!("{:.*e}", len.saturating_sub(1), d);
    let sci = if rounded.parse::<f64>().is_ok_and(|r| r.to_bits() == d.to_bits()) { rounded } else { shortest };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    // PHP's `decpt`: the value is 0.d1d2… × 10^decpt.
    let decpt = exp + 1;
    if negative {
        out.push(b'-');
    }
    if !(-3..=17).contains(&decpt) {
        out.push(digits[0]);
        out.push(b'.');
        if digits.len() > 1 {
            out.extend_from_slice(&digits[1..]);
        } else {
            out.push(b'0');
        }
        let _ = write!(out, "E{}{}", if decpt - 1 < 0 { '-' } else { '+' }, (decpt - 1).unsigned_abs());
    } else if decpt <= 0 {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + decpt.unsigned_abs() as usize, b'0');
        out.extend_from_slice(&digits);
    } else {
        let decpt = decpt as usize;
        if digits.len() <= decpt {
            out.extend_from_slice(&digits);
            out.resize(out.len() + decpt - digits.len(), b'0');
        } else {
            out.extend_from_slice(&digits[..decpt]);
            out.push(b'.');
            out.extend_from_slice(&digits[decpt..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ser(v: &PhpValue) -> String {
        let mut out = Vec::new();
        serialize(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn arr(items: Vec<(Key, PhpValue)>) -> PhpValue {
        PhpValue::Array(items)
    }

    #[test]
    fn serializes_exactly_as_php() {
        let v = arr(vec![("status".into(), PhpValue::Bool(true)), ("message".into(), PhpValue::Null)]);
        assert_eq!(ser(&v), r#"a:2:{s:6:"status";b:1;s:7:"message";N;}"#);
        let greeter = arr(vec![("status".into(), "connected".into()), ("version".into(), "1.0".into())]);
        assert_eq!(ser(&greeter), r#"a:2:{s:6:"status";s:9:"connected";s:7:"version";s:3:"1.0";}"#);
        let list =
            arr(vec![(0.into(), PhpValue::Int(-5)), (1.into(), PhpValue::String("é".into())), (2.into(), arr(vec![]))]);
        assert_eq!(ser(&list), "a:3:{i:0;i:-5;i:1;s:2:\"é\";i:2;a:0:{}}");
        assert_eq!(ser(&PhpValue::Bool(false)), "b:0;");
    }

    #[test]
    fn doubles_as_php_writes_them() {
        for (d, text) in [
            (0.1, "0.1"),
            (1.0, "1"),
            (-0.0, "-0"),
            (0.0, "0"),
            (0.5, "0.5"),
            (-1.25, "-1.25"),
            (0.05, "0.05"),
            (0.0001, "0.0001"),
            (0.00001, "1.0E-5"),
            (1.5e-7, "1.5E-7"),
            (1e10, "10000000000"),
            (1e16, "10000000000000000"),
            (1e17, "1.0E+17"),
            (1e25, "1.0E+25"),
            (123456.789, "123456.789"),
            (f64::MAX, "1.7976931348623157E+308"),
            (2.2250738585072014E-308, "2.2250738585072014E-308"),
            (-1.5e300, "-1.5E+300"),
            (9.223372036854776e18, "9.223372036854776E+18"),
            // Ties between two shortest candidates go to the even digit, as in PHP.
            (193_081_288_969_950.0 + 0.125, "193081288969950.12"),
            (2.9802322387695312e-8, "2.9802322387695312E-8"),
            (-2.8139917764825563e14, "-281399177648255.62"),
            (f64::INFINITY, "INF"),
            (f64::NEG_INFINITY, "-INF"),
            (f64::NAN, "NAN"),
        ] {
            assert_eq!(ser(&PhpValue::Double(d)), format!("d:{text};"), "for {d:e}");
            let back = parse(format!("d:{text};").as_bytes()).unwrap();
            let PhpValue::Double(b) = back else { panic!() };
            assert!(b.to_bits() == d.to_bits() || (b.is_nan() && d.is_nan()), "{d} -> {text} -> {b}");
        }
    }

    #[test]
    fn parses_what_php_accepts() {
        assert_eq!(parse(b"N;").unwrap(), PhpValue::Null);
        assert_eq!(parse(b"i:+5;").unwrap(), PhpValue::Int(5));
        assert_eq!(parse(b"i:05;").unwrap(), PhpValue::Int(5));
        assert_eq!(parse(b"i:-9223372036854775808;").unwrap(), PhpValue::Int(i64::MIN));
        assert_eq!(parse(b"i:9223372036854775807;").unwrap(), PhpValue::Int(i64::MAX));
        for (text, d) in [("d:.5;", 0.5), ("d:5.;", 5.0), ("d:-.5e+1;", -5.0), ("d:1e3;", 1000.0), ("d:+2;", 2.0)] {
            assert_eq!(parse(text.as_bytes()).unwrap(), PhpValue::Double(d), "{text}");
        }
        assert_eq!(parse(b"s:3:\"a\0b\";").unwrap(), PhpValue::String(b"a\0b".to_vec()));
        // The length counts bytes, and the string may contain quotes and semicolons.
        assert_eq!(parse(b"s:4:\"\";\";\";").unwrap(), PhpValue::String(b"\";\";".to_vec()));
        let v = parse(br#"a:2:{s:6:"status";b:1;s:7:"message";N;}"#).unwrap();
        assert_eq!(v.get("status"), Some(&PhpValue::Bool(true)));
        assert_eq!(v.get("message"), Some(&PhpValue::Null));
    }

    #[test]
    fn round_trips() {
        let v = arr(vec![
            (Key::Int(-3), PhpValue::Double(0.1)),
            ("x".into(), arr(vec![(0.into(), PhpValue::String(vec![0, 255, b'"', b';']))])),
            (Key::Int(i64::MIN), PhpValue::Int(i64::MAX)),
            ("".into(), PhpValue::String(Vec::new())),
        ]);
        let mut out = Vec::new();
        serialize(&v, &mut out);
        assert_eq!(parse(&out).unwrap(), v);
    }

    #[test]
    fn refuses_with_a_reason_and_an_offset() {
        let cases: &[(&[u8], usize, &str)] = &[
            (b"", 0, "unexpected end of input"),
            (b"O:8:\"stdClass\":0:{}", 0, "objects (O:) are refused"),
            (b"a:1:{i:0;C:3:\"Foo\":0:{}}", 9, "custom-serialized objects"),
            (b"a:2:{i:0;i:1;i:1;r:2;}", 17, "references"),
            (b"a:1:{i:0;R:1;}", 9, "references"),
            (b"E:7:\"Foo:Bar\";", 0, "enums"),
            (b"b:2;", 2, "expected 0 or 1"),
            (b"i:;", 2, "expected a digit"),
            (b"i:99999999999999999999;", 2, "out of range"),
            (b"s:9:\"abc\";", 5, "shorter than its declared length 9"),
            (b"s:5:\"abc\";", 10, "wrong length"),
            (b"s:2:\"abc\";", 7, "wrong length"),
            (b"s:99999999999999999999999:\"\";", 2, "out of range"),
            (b"a:2:{i:0;N;}", 11, "wrong member count"),
            (b"a:1:{i:0;N;i:1;N;}", 11, "wrong member count"),
            (b"a:1:{N;N;}", 5, "key must be an int or a string, not null"),
            (b"a:1:{a:0:{}N;}", 5, "not array"),
            (b"N;N;", 2, "2 trailing bytes"),
            (b"N; ", 2, "1 trailing bytes"),
            (b"d:abc;", 2, "expected a number"),
            (b"d:inf;", 2, "expected a number"),
            (b"d:1e;", 4, "expected an exponent digit"),
            (b"x", 0, "unexpected 'x'"),
            (b"\xff", 0, "byte 0xff"),
        ];
        for (input, offset, text) in cases {
            let e = parse(input).unwrap_err();
            assert_eq!(e.offset, *offset, "{e} for {:?}", String::from_utf8_lossy(input));
            assert!(e.to_string().contains(text), "{e} for {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| {
            let mut s = "a:1:{i:0;".repeat(n);
            s.push_str("N;");
            s.push_str(&"}".repeat(n));
            s
        };
        assert!(parse(deep(MAX_DEPTH).as_bytes()).is_ok());
        let e = parse(deep(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert_eq!(e.kind, PhpErrorKind::TooDeep);
        // Far deeper than any stack would survive by recursion: refused just as quickly.
        assert_eq!(parse(deep(100_000).as_bytes()).unwrap_err().kind, PhpErrorKind::TooDeep);
        // A huge declared count does not allocate up front.
        assert!(parse(b"a:999999999999:{}").is_err());
    }

    #[test]
    fn never_panics_on_prefixes_and_mutations() {
        let good = br#"a:3:{s:6:"status";b:1;s:7:"message";s:5:"hello";i:7;d:-1.5E-7;}"#;
        assert!(parse(good).is_ok());
        for end in 0..good.len() {
            assert!(parse(&good[..end]).is_err());
        }
        for i in 0..good.len() {
            for b in [0u8, b'0', b'9', b':', b';', b'"', b'{', b'}', b'a', b's', 0xff] {
                let mut m = good.to_vec();
                m[i] = b;
                let _ = parse(&m);
            }
        }
    }
}
