//! XML-RPC: `methodCall` in, `methodResponse` out, every type of the spec and its common
//! extensions, on a streaming `quick-xml` reader.
//!
//! # What is read
//!
//! `i4`, `int`, `i8` (and `ex:i8`), `boolean` (`1`/`0`, also `true`/`false`), `string`, `double`
//! (exponents accepted on input), `dateTime.iso8601` (kept as its text), `base64` (whitespace and
//! line breaks inside are ignored, padding optional), `array`, `struct` (members in order; a
//! repeated name keeps its last value in its first place, as the JSON codec does), `nil` and
//! `ex:nil`. A `<value>` without a type element is a string, whitespace included. CDATA sections,
//! comments and processing instructions are allowed wherever text is; a missing `<params>` means
//! no parameters.
//!
//! Documents may be in UTF-8 (as they are, no copy), UTF-16 (with a BOM, or detected from its
//! first bytes) or any encoding the WHATWG Encoding Standard knows, named by the declaration
//! (`encoding="ISO-8859-1"`, `windows-1252`, `Shift_JIS`…): they are decoded to UTF-8 first
//! (a copy at most three times the size of a UTF-16 body). An encoding nobody knows is fault
//! −32701 "Parse error. Unsupported encoding", as the fault-code interoperability spec says.
//!
//! # What is refused (fault −32700 "Parse error", with the reason and byte offset in the detail)
//!
//! Anything that is not well-formed XML; any `<!DOCTYPE` (so no DTD, no external entity, no
//! billion laughs); entity references other than the five predefined ones and numeric character
//! references; characters XML 1.0 forbids (controls other than tab, LF, CR; U+FFFE, U+FFFF);
//! unknown elements; arrays and structs nested more than [`MAX_DEPTH`] deep — refused as soon as
//! the 65th level opens, so a 10 000-deep document costs nothing and the decoder never recurses.
//! The size of a document is the caller's limit to enforce.
//!
//! # What is written
//!
//! `<?xml version="1.0" encoding="UTF-8"?>` and a newline, then the document without
//! indentation. `Int` is `<int>` when it fits 32 bits, else `<i8>`; `Nil` is `<nil/>`; `Double`
//! is written in plain decimal notation (never an exponent, which the spec forbids) with the
//! shortest digits that read back to the same bits. In strings `&`, `<`, `>` and CR (as `&#13;`,
//! so it survives end-of-line normalisation) are escaped.
//!
//! Some values have no XML-RPC form: a NaN or infinite double, a string holding a character
//! XML 1.0 forbids, nesting deeper than [`MAX_DEPTH`]. Encoding them is an [`EncodeError`]; a
//! server answers such a result with fault −32500 "Application error" instead (as comodojo does
//! for values its encoder cannot write). Everything the decoder accepts, the encoder writes back
//! to the same value.

use std::borrow::Cow;
use std::io::Write as _;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use quick_xml::events::{BytesRef, Event};
use quick_xml::Reader;

use crate::encoding::{self, DecodeError};
use crate::fault::{self, Fault};
use crate::registry::{Args, Protocol, Registry};
use crate::served::{Pending, Served};
use crate::structure;
use crate::value::Value;

/// How many arrays and structs may nest inside one another, in documents read and written.
pub const MAX_DEPTH: usize = 64;

const DECLARATION: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Base64 as clients write it: standard alphabet, padding optional.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a value cannot be written as XML-RPC.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("XML-RPC has no representation for the double {0}")]
    NonFinite(f64),
    #[error("XML 1.0 cannot carry the character U+{0:04X} in a string (send such data as base64)")]
    IllegalChar(u32),
    #[error("the value nests arrays and structs deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl From<EncodeError> for Fault {
    fn from(e: EncodeError) -> Fault {
        Fault::new(fault::APPLICATION_ERROR, "Application error").with_data(e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------------------------

/// Serves one XML-RPC request: decodes the `methodCall`, runs it, appends the `methodResponse`
/// (a fault when the request cannot be decoded or the call fails).
///
/// A handler that answers later makes it [`Served::Later`], with nothing appended.
pub fn serve<C>(registry: &Registry<C>, ctx: &mut C, input: &[u8], out: &mut Vec<u8>) -> Served {
    let result = match decode_call(input) {
        Ok((name, params)) => match registry.dispatch(&name, Args::Positional(params), ctx, Protocol::Xml) {
            crate::method::Reply::Now(result) => result,
            crate::method::Reply::Later(future) => return Served::Later(Pending::xml(future)),
        },
        Err(f) => Err(f),
    };
    encode_response(&result, out);
    Served::Answered
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Appends a `methodCall`. On error nothing is appended.
pub fn encode_call(method: &str, params: &[Value], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mark = out.len();
    let result = (|| {
        out.extend_from_slice(DECLARATION);
        out.extend_from_slice(b"<methodCall><methodName>");
        escape(out, method, Chars::Strict)?;
        out.extend_from_slice(b"</methodName><params>");
        for p in params {
            out.extend_from_slice(b"<param>");
            write_value(out, p, 0)?;
            out.extend_from_slice(b"</param>");
        }
        out.extend_from_slice(b"</params></methodCall>");
        Ok(())
    })();
    if result.is_err() {
        out.truncate(mark);
    }
    result
}

/// Appends a `methodResponse`: the value as its one parameter, or the fault. A value that has no
/// XML-RPC form becomes fault −32500 "Application error" saying why.
pub fn encode_response(result: &Result<Value, Fault>, out: &mut Vec<u8>) {
    let fault = match result {
        Ok(v) => {
            let mark = out.len();
            out.extend_from_slice(DECLARATION);
            out.extend_from_slice(b"<methodResponse><params><param>");
            match write_value(out, v, 0) {
                Ok(()) => {
                    out.extend_from_slice(b"</param></params></methodResponse>");
                    return;
                }
                Err(e) => {
                    out.truncate(mark);
                    Fault::from(e)
                }
            }
        }
        Err(f) => f.clone(),
    };
    write_fault(&fault, out);
}

fn write_fault(f: &Fault, out: &mut Vec<u8>) {
    out.extend_from_slice(DECLARATION);
    let _ = write!(
        out,
        "<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>{}</int></value></member><member><name>faultString</name><value><string>",
        f.code
    );
    // A fault must always be writable: characters XML cannot carry become U+FFFD.
    let _ = escape(out, &f.full_message(), Chars::Replace);
    out.extend_from_slice(b"</string></value></member></struct></value></fault></methodResponse>");
}

/// Appends `<value>…</value>`. On error nothing is appended.
pub fn encode_value(v: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mark = out.len();
    let result = write_value(out, v, 0);
    if result.is_err() {
        out.truncate(mark);
    }
    result
}

/// Writes one value; `depth` counts the arrays and structs around it, so recursion is bounded
/// by [`MAX_DEPTH`].
fn write_value(out: &mut Vec<u8>, v: &Value, depth: usize) -> Result<(), EncodeError> {
    out.extend_from_slice(b"<value>");
    match v {
        Value::Nil => out.extend_from_slice(b"<nil/>"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"<boolean>1</boolean>" } else { b"<boolean>0</boolean>" }),
        Value::Int(i) => {
            let _ = match i32::try_from(*i) {
                Ok(small) => write!(out, "<int>{small}</int>"),
                Err(_) => write!(out, "<i8>{i}</i8>"),
            };
        }
        Value::Double(d) => {
            if !d.is_finite() {
                return Err(EncodeError::NonFinite(*d));
            }
            out.extend_from_slice(b"<double>");
            // Rust's Display for f64 never uses an exponent and prints the shortest digits that
            // parse back to the same bits.
            let start = out.len();
            let _ = write!(out, "{d}");
            if !out[start..].contains(&b'.') {
                out.extend_from_slice(b".0");
            }
            out.extend_from_slice(b"</double>");
        }
        Value::String(s) => {
            out.extend_from_slice(b"<string>");
            escape(out, s, Chars::Strict)?;
            out.extend_from_slice(b"</string>");
        }
        Value::Base64(bytes) => {
            out.extend_from_slice(b"<base64>");
            let start = out.len();
            // encoded_len only overflows for inputs larger than memory.
            let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
            out.resize(start + len, 0);
            let written = STANDARD.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
            out.truncate(start + written);
            out.extend_from_slice(b"</base64>");
        }
        Value::DateTime(s) => {
            out.extend_from_slice(b"<dateTime.iso8601>");
            escape(out, s, Chars::Strict)?;
            out.extend_from_slice(b"</dateTime.iso8601>");
        }
        Value::Array(items) => {
            if depth >= MAX_DEPTH {
                return Err(EncodeError::TooDeep);
            }
            out.extend_from_slice(b"<array><data>");
            for item in items {
                write_value(out, item, depth + 1)?;
            }
            out.extend_from_slice(b"</data></array>");
        }
        Value::Struct(members) => {
            if depth >= MAX_DEPTH {
                return Err(EncodeError::TooDeep);
            }
            out.extend_from_slice(b"<struct>");
            for (name, item) in members {
                out.extend_from_slice(b"<member><name>");
                escape(out, name, Chars::Strict)?;
                out.extend_from_slice(b"</name>");
                write_value(out, item, depth + 1)?;
                out.extend_from_slice(b"</member>");
            }
            out.extend_from_slice(b"</struct>");
        }
    }
    out.extend_from_slice(b"</value>");
    Ok(())
}

/// What to do with a character XML 1.0 cannot carry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Chars {
    Strict,
    Replace,
}

/// Appends `s` as XML character data.
fn escape(out: &mut Vec<u8>, s: &str, mode: Chars) -> Result<(), EncodeError> {
    let b = s.as_bytes();
    let mut done = 0;
    let mut i = 0;
    while i < b.len() {
        let (replacement, len): (&[u8], usize) = match b[i] {
            b'&' => (b"&amp;", 1),
            b'<' => (b"&lt;", 1),
            b'>' => (b"&gt;", 1),
            b'\r' => (b"&#13;", 1),
            c if c < 0x20 && c != b'\t' && c != b'\n' => {
                if mode == Chars::Strict {
                    return Err(EncodeError::IllegalChar(u32::from(c)));
                }
                ("\u{FFFD}".as_bytes(), 1)
            }
            // U+FFFE and U+FFFF are EF BF BE and EF BF BF in UTF-8.
            0xEF if b.get(i + 1) == Some(&0xBF) && matches!(b.get(i + 2), Some(0xBE | 0xBF)) => {
                if mode == Chars::Strict {
                    return Err(EncodeError::IllegalChar(if b[i + 2] == 0xBE { 0xFFFE } else { 0xFFFF }));
                }
                ("\u{FFFD}".as_bytes(), 3)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&b[done..i]);
        out.extend_from_slice(replacement);
        i += len;
        done = i;
    }
    out.extend_from_slice(&b[done..]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// Decodes a `methodCall` into its method name and positional parameters.
pub fn decode_call(input: &[u8]) -> Result<(String, Vec<Value>), Fault> {
    as_utf8(input, |input| {
        let mut p = Parser::new(input);
        p.open(Tag::MethodCall)?;
        p.open(Tag::MethodName)?;
        let name = p.text(Tag::MethodName)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(p.fail("empty <methodName>"));
        }
        let name = name.to_owned();
        let params = match p.significant()? {
            Tok::Open(Tag::Params) => {
                let params = p.params()?;
                p.close(Tag::MethodCall)?;
                params
            }
            Tok::Close(Tag::MethodCall) => Vec::new(),
            other => return Err(p.unexpected(&other, "<params> or </methodCall>")),
        };
        p.end()?;
        Ok((name, params))
    })
}

/// Decodes a `methodResponse` (the client side). The outer error means the response could not
/// be read (−32700); the inner one is the fault the server sent.
pub fn decode_response(input: &[u8]) -> Result<Result<Value, Fault>, Fault> {
    as_utf8(input, |input| {
        let mut p = Parser::new(input);
        p.open(Tag::MethodResponse)?;
        let outcome = match p.significant()? {
            Tok::Open(Tag::Params) => {
                let mut params = p.params()?;
                if params.len() > 1 {
                    return Err(p.fail(format!("a response has one parameter, not {}", params.len())));
                }
                // Some servers answer a void method with no parameter at all.
                Ok(params.pop().unwrap_or(Value::Nil))
            }
            Tok::Open(Tag::Fault) => {
                p.open(Tag::Value)?;
                let v = p.value()?;
                p.close(Tag::Fault)?;
                Err(fault_from(v).map_err(|detail| p.fail(detail))?)
            }
            other => return Err(p.unexpected(&other, "<params> or <fault>")),
        };
        p.close(Tag::MethodResponse)?;
        p.end()?;
        Ok(outcome)
    })
}

fn fault_from(v: Value) -> Result<Fault, String> {
    let code = match v.member("faultCode") {
        Some(Value::Int(c)) => i32::try_from(*c).map_err(|_| format!("faultCode {c} is out of range"))?,
        _ => return Err("a fault must be a struct with an int faultCode".to_owned()),
    };
    let message = match v.member("faultString") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err("a fault must be a struct with a string faultString".to_owned()),
    };
    Ok(Fault::new(code, message))
}

/// Runs `f` on the document as UTF-8, decoded first when it is in another encoding (see
/// [`crate::encoding`]). An encoding the decoder does not know is fault −32701.
fn as_utf8<T>(input: &[u8], f: impl FnOnce(&[u8]) -> Result<T, Fault>) -> Result<T, Fault> {
    match encoding::to_utf8(input) {
        Ok(text) => f(&text),
        Err(DecodeError::Unsupported(name)) => {
            Err(Fault::new(fault::UNSUPPORTED_ENCODING, "Parse error. Unsupported encoding")
                .with_data(format!("unsupported encoding {name:?} (send UTF-8)")))
        }
        Err(DecodeError::Malformed(name)) => Err(Fault::parse_error(format!("the document is not valid {name}"))),
    }
}

/// The elements of XML-RPC. Anything else is `Other`, which no rule accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    MethodCall,
    MethodResponse,
    MethodName,
    Params,
    Param,
    Fault,
    Value,
    Array,
    Data,
    Struct,
    Member,
    Name,
    Int,
    I8,
    Boolean,
    String,
    Double,
    DateTime,
    Base64,
    Nil,
    Other,
}

impl Tag {
    fn of(name: &[u8]) -> Tag {
        match name {
            b"methodCall" => Tag::MethodCall,
            b"methodResponse" => Tag::MethodResponse,
            b"methodName" => Tag::MethodName,
            b"params" => Tag::Params,
            b"param" => Tag::Param,
            b"fault" => Tag::Fault,
            b"value" => Tag::Value,
            b"array" => Tag::Array,
            b"data" => Tag::Data,
            b"struct" => Tag::Struct,
            b"member" => Tag::Member,
            b"name" => Tag::Name,
            b"int" | b"i4" => Tag::Int,
            b"i8" | b"ex:i8" => Tag::I8,
            b"boolean" => Tag::Boolean,
            b"string" => Tag::String,
            b"double" => Tag::Double,
            b"dateTime.iso8601" => Tag::DateTime,
            b"base64" => Tag::Base64,
            b"nil" | b"ex:nil" => Tag::Nil,
            _ => Tag::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Tag::MethodCall => "methodCall",
            Tag::MethodResponse => "methodResponse",
            Tag::MethodName => "methodName",
            Tag::Params => "params",
            Tag::Param => "param",
            Tag::Fault => "fault",
            Tag::Value => "value",
            Tag::Array => "array",
            Tag::Data => "data",
            Tag::Struct => "struct",
            Tag::Member => "member",
            Tag::Name => "name",
            Tag::Int => "int",
            Tag::I8 => "i8",
            Tag::Boolean => "boolean",
            Tag::String => "string",
            Tag::Double => "double",
            Tag::DateTime => "dateTime.iso8601",
            Tag::Base64 => "base64",
            Tag::Nil => "nil",
            Tag::Other => "?",
        }
    }
}

/// What the parser sees: elements, text (adjacent text, CDATA and references merged; comments
/// and processing instructions dropped) and the end.
#[derive(Debug)]
enum Tok<'a> {
    Open(Tag),
    Close(Tag),
    Text(Cow<'a, str>),
    Eof,
}

/// Turns quick-xml events into [`Tok`]s, enforcing what XML-RPC needs on the way: no DTD, only
/// predefined entities, legal characters, UTF-8.
struct Lexer<'a> {
    reader: Reader<&'a [u8]>,
    pending: Option<Event<'a>>,
    /// The name of the last `Tag::Other` element seen, for messages.
    other: String,
    in_root: bool,
}

impl<'a> Lexer<'a> {
    #[cold]
    fn fail(&self, detail: impl std::fmt::Display) -> Fault {
        Fault::parse_error(format!("{detail} (at byte {})", self.reader.buffer_position()))
    }

    fn event(&mut self) -> Result<Event<'a>, Fault> {
        if let Some(e) = self.pending.take() {
            return Ok(e);
        }
        match self.reader.read_event() {
            Ok(e) => Ok(e),
            Err(e) => Err(self.ill_formed(e)),
        }
    }

    #[cold]
    #[inline(never)]
    fn ill_formed(&self, e: quick_xml::Error) -> Fault {
        Fault::parse_error(format!("not well-formed XML: {e} (at byte {})", self.reader.error_position()))
    }

    fn tag(&mut self, name: &[u8]) -> Tag {
        let tag = Tag::of(name);
        if tag == Tag::Other {
            self.other = String::from_utf8_lossy(name).into_owned();
        }
        tag
    }

    fn next(&mut self) -> Result<Tok<'a>, Fault> {
        let mut text: Option<Cow<'a, str>> = None;
        loop {
            let event = self.event()?;
            let piece = match event {
                Event::Text(t) => t.xml10_content().map_err(|e| self.fail(format!("not UTF-8: {e}")))?,
                Event::CData(c) => c.xml10_content().map_err(|e| self.fail(format!("not UTF-8: {e}")))?,
                Event::GeneralRef(r) => self.reference(&r)?,
                Event::Comment(_) | Event::PI(_) => continue,
                Event::Decl(_) => {
                    // Its encoding was dealt with before parsing (`as_utf8`).
                    if self.in_root || text.is_some() {
                        return Err(self.fail("XML declaration after the start of the document"));
                    }
                    continue;
                }
                Event::DocType(_) => return Err(self.fail("DTDs (<!DOCTYPE …>) are not allowed")),
                other => {
                    if let Some(t) = text {
                        self.pending = Some(other);
                        return Ok(Tok::Text(t));
                    }
                    return match other {
                        Event::Start(s) => {
                            self.in_root = true;
                            Ok(Tok::Open(self.tag(s.name().as_ref())))
                        }
                        Event::End(e) => Ok(Tok::Close(self.tag(e.name().as_ref()))),
                        Event::Eof => Ok(Tok::Eof),
                        // Empty elements are expanded by the reader's configuration.
                        _ => Err(self.fail("unexpected XML construct")),
                    };
                }
            };
            if let Err(c) = legal(&piece) {
                return Err(self.fail(format!("character U+{c:04X} is not allowed in XML")));
            }
            text = Some(match text {
                None => piece,
                Some(t) => {
                    let mut t = t.into_owned();
                    t.push_str(&piece);
                    Cow::Owned(t)
                }
            });
        }
    }

    /// `&lt;`, `&#60;`, `&#x3C;`… — and nothing else: no entity is ever defined.
    fn reference(&self, r: &BytesRef<'a>) -> Result<Cow<'a, str>, Fault> {
        let fixed = match r.as_ref() {
            b"lt" => "<",
            b"gt" => ">",
            b"amp" => "&",
            b"apos" => "'",
            b"quot" => "\"",
            name if r.is_char_ref() => {
                let c =
                    r.resolve_char_ref().ok().flatten().ok_or_else(|| {
                        self.fail(format!("bad character reference &{};", String::from_utf8_lossy(name)))
                    })?;
                return Ok(Cow::Owned(c.to_string()));
            }
            name => {
                return Err(self.fail(format!(
                    "unknown entity &{}; (only the five predefined ones are allowed)",
                    String::from_utf8_lossy(name)
                )))
            }
        };
        Ok(Cow::Borrowed(fixed))
    }
}

/// Checks the XML 1.0 `Char` production (Rust strings have no surrogates already).
fn legal(s: &str) -> Result<(), u32> {
    // Fast path: no control character and no byte that could start U+FFFE or U+FFFF.
    if s.bytes().all(|b| b >= 0x20 && b != 0xEF) {
        return Ok(());
    }
    for c in s.chars() {
        match c {
            '\t' | '\n' | '\r' => {}
            c if c < ' ' => return Err(u32::from(c)),
            '\u{FFFE}' | '\u{FFFF}' => return Err(u32::from(c)),
            _ => {}
        }
    }
    Ok(())
}

fn is_blank(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// A container being filled while the parser reads its members.
enum Frame {
    Array(Vec<Value>),
    Struct(StructFrame),
}

/// A struct being filled, and the name of the member whose value is being read.
struct StructFrame {
    members: structure::Builder,
    name: String,
}

/// What a `<value>` turned out to hold, once its first element is read.
enum Start {
    /// A complete value, its `</value>` read.
    Scalar(Value),
    /// `<array><data>` read.
    Array,
    /// `<struct>` read.
    Struct,
}

struct Parser<'a> {
    lex: Lexer<'a>,
}

impl<'a> Parser<'a> {
    fn new(input: &'a [u8]) -> Parser<'a> {
        let mut reader = Reader::from_reader(input);
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        config.allow_unmatched_ends = false;
        config.trim_text(false);
        Parser { lex: Lexer { reader, pending: None, other: String::new(), in_root: false } }
    }

    fn fail(&self, detail: impl std::fmt::Display) -> Fault {
        self.lex.fail(detail)
    }

    fn describe(&self, tok: &Tok<'_>) -> String {
        let name = |t: Tag| if t == Tag::Other { self.lex.other.clone() } else { t.name().to_owned() };
        match tok {
            Tok::Open(t) => format!("<{}>", name(*t)),
            Tok::Close(t) => format!("</{}>", name(*t)),
            Tok::Text(s) => {
                let short: String = s.trim().chars().take(24).collect();
                format!("text {short:?}")
            }
            Tok::Eof => "the end of the document".to_owned(),
        }
    }

    fn unexpected(&self, tok: &Tok<'_>, expected: &str) -> Fault {
        self.fail(format!("expected {expected}, found {}", self.describe(tok)))
    }

    /// The next token that is not whitespace between elements.
    fn significant(&mut self) -> Result<Tok<'a>, Fault> {
        loop {
            match self.lex.next()? {
                Tok::Text(t) if is_blank(&t) => continue,
                tok => return Ok(tok),
            }
        }
    }

    fn open(&mut self, tag: Tag) -> Result<(), Fault> {
        match self.significant()? {
            Tok::Open(t) if t == tag => Ok(()),
            other => Err(self.unexpected(&other, &format!("<{}>", tag.name()))),
        }
    }

    fn close(&mut self, tag: Tag) -> Result<(), Fault> {
        match self.significant()? {
            Tok::Close(t) if t == tag => Ok(()),
            other => Err(self.unexpected(&other, &format!("</{}>", tag.name()))),
        }
    }

    /// After the root element: nothing but whitespace, comments and processing instructions.
    fn end(&mut self) -> Result<(), Fault> {
        match self.significant()? {
            Tok::Eof => Ok(()),
            other => Err(self.unexpected(&other, "the end of the document")),
        }
    }

    /// The text of an element whose start tag was just read, through its end tag.
    fn text(&mut self, tag: Tag) -> Result<Cow<'a, str>, Fault> {
        let text = match self.lex.next()? {
            Tok::Close(t) if t == tag => return Ok(Cow::Borrowed("")),
            Tok::Text(s) => s,
            other => return Err(self.unexpected(&other, &format!("text in <{}>", tag.name()))),
        };
        match self.lex.next()? {
            Tok::Close(t) if t == tag => Ok(text),
            other => Err(self.unexpected(&other, &format!("</{}>", tag.name()))),
        }
    }

    /// After `<params>`, through `</params>`.
    fn params(&mut self) -> Result<Vec<Value>, Fault> {
        let mut params = Vec::new();
        loop {
            match self.significant()? {
                Tok::Open(Tag::Param) => {
                    self.open(Tag::Value)?;
                    params.push(self.value()?);
                    self.close(Tag::Param)?;
                }
                Tok::Close(Tag::Params) => return Ok(params),
                other => return Err(self.unexpected(&other, "<param> or </params>")),
            }
        }
    }

    /// A value whose `<value>` was just read, through its `</value>`. Iterative: nesting lives
    /// on `stack`, never on the call stack.
    fn value(&mut self) -> Result<Value, Fault> {
        let mut stack: Vec<Frame> = Vec::new();
        'value: loop {
            // Inside a `<value>` just opened.
            let mut done = match self.value_start()? {
                Start::Scalar(v) => v,
                Start::Array | Start::Struct if stack.len() >= MAX_DEPTH => {
                    return Err(self.fail(format!("arrays and structs nest deeper than {MAX_DEPTH} levels")));
                }
                Start::Array => {
                    stack.push(Frame::Array(Vec::new()));
                    if self.array_next()? {
                        continue 'value;
                    }
                    stack.pop();
                    Value::Array(Vec::new())
                }
                Start::Struct => match self.struct_next()? {
                    Some(name) => {
                        stack.push(Frame::Struct(StructFrame { members: structure::Builder::new(), name }));
                        continue 'value;
                    }
                    None => Value::Struct(Vec::new()),
                },
            };
            // `done` is complete: hand it to its container, and close containers that end.
            loop {
                match stack.last_mut() {
                    None => return Ok(done),
                    Some(Frame::Array(items)) => {
                        items.push(done);
                        if self.array_next()? {
                            continue 'value;
                        }
                    }
                    Some(Frame::Struct(s)) => {
                        let name = std::mem::take(&mut s.name);
                        s.members.insert(name, done);
                        self.close(Tag::Member)?;
                        if let Some(name) = self.struct_next()? {
                            s.name = name;
                            continue 'value;
                        }
                    }
                }
                done = match stack.pop() {
                    Some(Frame::Array(items)) => Value::Array(items),
                    Some(Frame::Struct(s)) => Value::Struct(s.members.finish()),
                    None => return Err(self.fail("internal: container stack underflow")),
                };
            }
        }
    }

    /// Reads the first element of a `<value>`; scalars are read whole.
    fn value_start(&mut self) -> Result<Start, Fault> {
        let tag = match self.lex.next()? {
            Tok::Close(Tag::Value) => return Ok(Start::Scalar(Value::String(String::new()))),
            Tok::Open(tag) => tag,
            Tok::Text(t) => match self.lex.next()? {
                // An untyped value is a string, whitespace and all.
                Tok::Close(Tag::Value) => return Ok(Start::Scalar(Value::String(t.into_owned()))),
                Tok::Open(tag) if is_blank(&t) => tag,
                other => return Err(self.unexpected(&other, "</value> after an untyped string")),
            },
            other @ (Tok::Close(_) | Tok::Eof) => return Err(self.unexpected(&other, "a value type or text")),
        };
        let v = match tag {
            Tag::Array => {
                return match self.significant()? {
                    Tok::Open(Tag::Data) => Ok(Start::Array),
                    // `<array/>`: tolerated as an empty array.
                    Tok::Close(Tag::Array) => {
                        self.close(Tag::Value)?;
                        Ok(Start::Scalar(Value::Array(Vec::new())))
                    }
                    other => Err(self.unexpected(&other, "<data>")),
                };
            }
            Tag::Struct => return Ok(Start::Struct),
            Tag::String => Value::String(self.text(tag)?.into_owned()),
            Tag::Int | Tag::I8 => {
                let t = self.text(tag)?;
                let t = t.trim();
                let i = t
                    .parse::<i64>()
                    .map_err(|_| self.fail(format!("<{}> holds {t:?}, not a 64-bit integer", tag.name())))?;
                Value::Int(i)
            }
            Tag::Boolean => match self.text(tag)?.trim() {
                "1" | "true" => Value::Bool(true),
                "0" | "false" => Value::Bool(false),
                t => return Err(self.fail(format!("<boolean> holds {t:?}, not 0 or 1"))),
            },
            Tag::Double => {
                let t = self.text(tag)?;
                let t = t.trim();
                match parse_double(t) {
                    Some(d) => Value::Double(d),
                    None => return Err(self.fail(format!("<double> holds {t:?}, not a finite number"))),
                }
            }
            Tag::DateTime => Value::DateTime(self.text(tag)?.trim().to_owned()),
            Tag::Base64 => {
                let t = self.text(tag)?;
                let decoded = if t.bytes().any(|b| b.is_ascii_whitespace()) {
                    let compact: Vec<u8> = t.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
                    BASE64_LENIENT.decode(compact)
                } else {
                    BASE64_LENIENT.decode(t.as_bytes())
                };
                Value::Base64(decoded.map_err(|e| self.fail(format!("bad base64: {e}")))?)
            }
            Tag::Nil => {
                let t = self.text(tag)?;
                if !is_blank(&t) {
                    return Err(self.fail("<nil> must be empty"));
                }
                Value::Nil
            }
            Tag::Other => return Err(self.fail(format!("unknown value type <{}>", self.lex.other))),
            other => return Err(self.fail(format!("<{}> is not a value type", other.name()))),
        };
        self.close(Tag::Value)?;
        Ok(Start::Scalar(v))
    }

    /// Inside an array's `<data>`: true when another `<value>` opened, false when the array ended
    /// (`</data></array></value>` read).
    fn array_next(&mut self) -> Result<bool, Fault> {
        match self.significant()? {
            Tok::Open(Tag::Value) => Ok(true),
            Tok::Close(Tag::Data) => {
                self.close(Tag::Array)?;
                self.close(Tag::Value)?;
                Ok(false)
            }
            other => Err(self.unexpected(&other, "<value> or </data>")),
        }
    }

    /// Inside a `<struct>`: the name of the next member, its `<value>` opened; `None` when the
    /// struct ended (`</struct></value>` read).
    fn struct_next(&mut self) -> Result<Option<String>, Fault> {
        match self.significant()? {
            Tok::Open(Tag::Member) => {
                self.open(Tag::Name)?;
                let name = self.text(Tag::Name)?.into_owned();
                self.open(Tag::Value)?;
                Ok(Some(name))
            }
            Tok::Close(Tag::Struct) => {
                self.close(Tag::Value)?;
                Ok(None)
            }
            other => Err(self.unexpected(&other, "<member> or </struct>")),
        }
    }
}

/// `[+-]digits[.digits][(e|E)[+-]digits]`, finite. Exponents are not XML-RPC but common.
fn parse_double(t: &str) -> Option<f64> {
    let b = t.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let mut n = digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        n += digits(&mut i);
    }
    if n == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    t.parse::<f64>().ok().filter(|d| d.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::{Method, Type};

    fn encode(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode_call("t", std::slice::from_ref(v), &mut out).unwrap();
        out
    }

    /// encode → decode gives the value back, and encoding that again gives the same bytes
    /// (which also tells −0.0 from 0.0).
    fn round_trip(v: &Value) {
        let bytes = encode(v);
        let (name, params) =
            decode_call(&bytes).unwrap_or_else(|f| panic!("{f} decoding {}", String::from_utf8_lossy(&bytes)));
        assert_eq!(name, "t");
        assert_eq!(params.len(), 1);
        assert_eq!(&params[0], v, "through {}", String::from_utf8_lossy(&bytes));
        assert_eq!(encode(&params[0]), bytes);
        // The same value as a response.
        let mut resp = Vec::new();
        encode_response(&Ok(v.clone()), &mut resp);
        assert_eq!(decode_response(&resp).unwrap().as_ref(), Ok(v));
    }

    fn call_doc(params: &str) -> String {
        format!("<?xml version=\"1.0\"?><methodCall><methodName>t</methodName><params>{params}</params></methodCall>")
    }

    fn one(value_xml: &str) -> Result<Value, Fault> {
        decode_call(call_doc(&format!("<param>{value_xml}</param>")).as_bytes()).map(|(_, mut p)| p.remove(0))
    }

    fn parse_fault(doc: &[u8]) -> Fault {
        let f = decode_call(doc).unwrap_err();
        assert_eq!(f.code, fault::PARSE_ERROR, "{f}");
        f
    }

    #[test]
    fn hand_built_values_round_trip() {
        let nested = Value::structure([
            ("a", Value::from(vec![Value::Int(1), Value::Nil, Value::from("x")])),
            ("b", Value::structure([("c", Value::Array(vec![Value::Array(vec![])]))])),
            ("", Value::Struct(vec![])),
        ]);
        let values = vec![
            Value::Nil,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(0),
            Value::Int(-1),
            Value::Int(i64::from(i32::MAX)),
            Value::Int(i64::from(i32::MIN)),
            Value::Int(i64::from(i32::MAX) + 1),
            Value::Int(i64::from(i32::MIN) - 1),
            Value::Int(i64::MAX),
            Value::Int(i64::MIN),
            Value::Double(0.0),
            Value::Double(-0.0),
            Value::Double(1.0),
            Value::Double(0.1),
            Value::Double(-2.5e-8),
            Value::Double(1e300),
            Value::Double(f64::MAX),
            Value::Double(f64::MIN_POSITIVE),
            Value::Double(5e-324),
            Value::String(String::new()),
            Value::from("hello"),
            Value::from("  spaces around  "),
            Value::from("<tag> & \"quotes\" 'apos' ]]> &amp;"),
            Value::from("line\r\nbreaks\rand\ttabs\n"),
            Value::from("\r"),
            Value::from("héllo ☃ 日本語 🦀 \u{10FFFF} \u{FFFD}"),
            Value::Base64(Vec::new()),
            Value::Base64((0..=255).collect()),
            Value::Base64(vec![0]),
            Value::DateTime("19980717T14:08:55".into()),
            Value::DateTime("2026-11-25T10:02:31+01:00".into()),
            Value::Array(vec![]),
            Value::Struct(vec![]),
            Value::structure([("z", 1), ("a", 2), ("m", 3)]),
            Value::structure([("<&>", Value::from("\r"))]),
            nested,
        ];
        for v in &values {
            round_trip(v);
        }
        round_trip(&Value::Array(values));
    }

    /// A small deterministic generator: many random values, all of which must round-trip.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn string(&mut self) -> String {
            const PIECES: &[&str] = &[
                "a", "Z", " ", "\t", "\n", "\r", "\r\n", "<", ">", "&", "&amp;", "]]>", "\"", "'", "é", "☃", "🦀",
                "\u{FFFD}", "0",
            ];
            (0..self.below(12)).map(|_| PIECES[self.below(PIECES.len() as u64) as usize]).collect()
        }
        fn value(&mut self, depth: usize) -> Value {
            let kinds = if depth >= 5 { 7 } else { 9 };
            match self.below(kinds) {
                0 => Value::Nil,
                1 => Value::Bool(self.below(2) == 1),
                2 => Value::Int(match self.below(4) {
                    0 => self.next() as i64,
                    1 => i64::from(self.next() as i32),
                    2 => [i64::MIN, i64::MAX, 0, -1][self.below(4) as usize],
                    _ => self.below(1000) as i64 - 500,
                }),
                3 => loop {
                    let d = f64::from_bits(self.next());
                    if d.is_finite() {
                        break Value::Double(d);
                    }
                },
                4 => Value::String(self.string()),
                5 => Value::Base64((0..self.below(40)).map(|_| self.next() as u8).collect()),
                6 => Value::DateTime(format!(
                    "2026{:02}{:02}T{:02}:00:00",
                    1 + self.below(12),
                    1 + self.below(28),
                    self.below(24)
                )),
                7 => Value::Array((0..self.below(5)).map(|_| self.value(depth + 1)).collect()),
                _ => Value::Struct(
                    (0..self.below(5)).map(|i| (format!("{i}{}", self.string()), self.value(depth + 1))).collect(),
                ),
            }
        }
    }

    #[test]
    fn random_values_round_trip() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..3000 {
            round_trip(&rng.value(0));
        }
    }

    #[test]
    fn doubles_are_plain_decimals() {
        for d in [1e300, 1e-300, 5e-324, f64::MAX, 123456789.125, -0.0, 3.0] {
            let mut out = Vec::new();
            encode_value(&Value::Double(d), &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            let inner = text.trim_start_matches("<value><double>").trim_end_matches("</double></value>");
            assert!(inner.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-'), "{inner}");
            assert_eq!(inner.parse::<f64>().unwrap().to_bits(), d.to_bits());
        }
        // Exponents are read, as many clients write them.
        assert_eq!(one("<value><double>1.5e+3</double></value>"), Ok(Value::Double(1500.0)));
        assert_eq!(one("<value><double> -.5 </double></value>"), Ok(Value::Double(-0.5)));
        for bad in ["nan", "inf", "1e999", "", "1.2.3", "0x10", "1e"] {
            parse_fault(call_doc(&format!("<param><value><double>{bad}</double></value></param>")).as_bytes());
        }
    }

    #[test]
    fn values_without_an_xml_rpc_form() {
        let mut out = b"keep".to_vec();
        assert_eq!(
            encode_value(&Value::Double(f64::NAN), &mut out).map_err(|e| e.to_string()),
            Err("XML-RPC has no representation for the double NaN".into())
        );
        assert_eq!(
            encode_value(&Value::from(vec![Value::Double(f64::INFINITY)]), &mut out),
            Err(EncodeError::NonFinite(f64::INFINITY))
        );
        assert_eq!(encode_value(&Value::from("bell\u{7}"), &mut out), Err(EncodeError::IllegalChar(7)));
        assert_eq!(encode_value(&Value::from("\u{FFFE}"), &mut out), Err(EncodeError::IllegalChar(0xFFFE)));
        assert_eq!(encode_call("a\0b", &[], &mut out), Err(EncodeError::IllegalChar(0)));
        let mut deep = Value::Nil;
        for _ in 0..=MAX_DEPTH {
            deep = Value::Array(vec![deep]);
        }
        assert_eq!(encode_value(&deep, &mut out), Err(EncodeError::TooDeep));
        assert_eq!(out, b"keep", "nothing is appended on error");
        // A server turns them into fault −32500, and a fault itself is always writable.
        let mut resp = Vec::new();
        encode_response(&Ok(Value::Double(f64::NAN)), &mut resp);
        let f = decode_response(&resp).unwrap().unwrap_err();
        assert_eq!(f.code, fault::APPLICATION_ERROR);
        assert_eq!(f.message, "Application error: XML-RPC has no representation for the double NaN");
        resp.clear();
        encode_response(&Err(Fault::internal("bad \u{1} byte")), &mut resp);
        let f = decode_response(&resp).unwrap().unwrap_err();
        assert_eq!(f.message, "Internal error: bad \u{FFFD} byte");
        // One level less is fine.
        let Value::Array(mut inner) = deep else { unreachable!() };
        round_trip(&inner.remove(0));
    }

    #[test]
    fn untyped_values_are_strings() {
        assert_eq!(one("<value>plain</value>"), Ok(Value::from("plain")));
        assert_eq!(one("<value>  spaced  </value>"), Ok(Value::from("  spaced  ")));
        assert_eq!(one("<value></value>"), Ok(Value::from("")));
        assert_eq!(one("<value/>"), Ok(Value::from("")));
        assert_eq!(
            one("<value>a &lt;b&gt; &amp; &#233;&#x2603; &quot;&apos;</value>"),
            Ok(Value::from("a <b> & é☃ \"'"))
        );
        assert_eq!(one("<value>  <string> kept </string>  </value>"), Ok(Value::from(" kept ")));
        parse_fault(call_doc("<param><value>text<string>x</string></value></param>").as_bytes());
    }

    #[test]
    fn cdata_comments_and_references() {
        assert_eq!(
            one("<value><string><![CDATA[<not a tag> & ]]></string></value>"),
            Ok(Value::from("<not a tag> & "))
        );
        assert_eq!(
            one("<value><string>a<![CDATA[<b>]]>c&amp;d<!-- gone -->e</string></value>"),
            Ok(Value::from("a<b>c&de"))
        );
        assert_eq!(one("<value><![CDATA[raw]]></value>"), Ok(Value::from("raw")));
        assert_eq!(one("<value><string>a&#13;b\r\nc\rd</string></value>"), Ok(Value::from("a\rb\nc\nd")));
        assert_eq!(one("<value><base64>\n  aGVs\r\n  bG8=\n</base64></value>"), Ok(Value::Base64(b"hello".to_vec())));
        assert_eq!(one("<value><base64>aGVsbG8</base64></value>"), Ok(Value::Base64(b"hello".to_vec())));
    }

    #[test]
    fn all_the_type_spellings() {
        assert_eq!(one("<value><i4>-42</i4></value>"), Ok(Value::Int(-42)));
        assert_eq!(one("<value><int> +7 </int></value>"), Ok(Value::Int(7)));
        assert_eq!(one("<value><i8>-9223372036854775808</i8></value>"), Ok(Value::Int(i64::MIN)));
        assert_eq!(one("<value><ex:i8>5</ex:i8></value>"), Ok(Value::Int(5)));
        assert_eq!(one("<value><boolean>1</boolean></value>"), Ok(Value::Bool(true)));
        assert_eq!(one("<value><boolean>false</boolean></value>"), Ok(Value::Bool(false)));
        assert_eq!(one("<value><nil/></value>"), Ok(Value::Nil));
        assert_eq!(one("<value><nil></nil></value>"), Ok(Value::Nil));
        assert_eq!(one("<value><ex:nil/></value>"), Ok(Value::Nil));
        assert_eq!(
            one(r#"<value><ex:nil xmlns:ex="http://ws.apache.org/xmlrpc/namespaces/extensions"/></value>"#),
            Ok(Value::Nil)
        );
        assert_eq!(one("<value><string/></value>"), Ok(Value::from("")));
        assert_eq!(
            one("<value><dateTime.iso8601> 19980717T14:08:55 </dateTime.iso8601></value>"),
            Ok(Value::DateTime("19980717T14:08:55".into()))
        );
        assert_eq!(one("<value><array/></value>"), Ok(Value::Array(vec![])));
        assert_eq!(one("<value><array><data/></array></value>"), Ok(Value::Array(vec![])));
        assert_eq!(one("<value><struct/></value>"), Ok(Value::Struct(vec![])));
        // A repeated member name keeps its last value, in its first place.
        let s = "<value><struct><member><name>a</name><value>1</value></member><member><name>b</name><value>2</value></member><member><name>a</name><value>3</value></member></struct></value>";
        assert_eq!(one(s), Ok(Value::structure([("a", "3"), ("b", "2")])));
        for bad in [
            "<value><int>1.5</int></value>",
            "<value><int>99999999999999999999</int></value>",
            "<value><int></int></value>",
            "<value><boolean>yes</boolean></value>",
            "<value><nil>x</nil></value>",
            "<value><base64>!!!!</base64></value>",
            "<value><string><b>bold</b></string></value>",
            "<value><array><value>1</value></array></value>",
            "<value><struct><member><value>1</value><name>a</name></member></struct></value>",
            "<value><struct><member><name>a</name></member></struct></value>",
            "<value><string>a</string><string>b</string></value>",
        ] {
            parse_fault(call_doc(&format!("<param>{bad}</param>")).as_bytes());
        }
    }

    #[test]
    fn big_structs_with_repeated_names_stay_linear() {
        let mut doc = String::from("<value><struct>");
        for i in 0..20_000 {
            doc.push_str(&format!("<member><name>k{}</name><value><int>{i}</int></value></member>", i % 10_000));
        }
        doc.push_str("</struct></value>");
        let Ok(Value::Struct(members)) = one(&doc) else { panic!("not a struct") };
        assert_eq!(members.len(), 10_000);
        assert_eq!(members[3], ("k3".to_owned(), Value::Int(10_003)));
    }

    #[test]
    fn unknown_type_tag() {
        let f = parse_fault(call_doc("<param><value><float>1.5</float></value></param>").as_bytes());
        assert!(f.full_message().contains("unknown value type <float>"), "{f}");
        let f = parse_fault(call_doc("<param><value><params/></value></param>").as_bytes());
        assert!(f.full_message().contains("<params> is not a value type"), "{f}");
    }

    #[test]
    fn whitespace_between_tags_as_python_writes_it() {
        let doc = "<?xml version='1.0'?>\n<methodCall>\n<methodName>my.echo</methodName>\n<params>\n<param>\n<value><string>hello</string></value>\n</param>\n<param>\n<value><array><data>\n<value><int>1</int></value>\n<value><struct>\n<member>\n<name>k</name>\n<value><boolean>0</boolean></value>\n</member>\n</struct></value>\n</data></array></value>\n</param>\n</params>\n</methodCall>\n";
        let (name, params) = decode_call(doc.as_bytes()).unwrap();
        assert_eq!(name, "my.echo");
        assert_eq!(
            params,
            vec![Value::from("hello"), Value::Array(vec![Value::Int(1), Value::structure([("k", false)])])]
        );
    }

    #[test]
    fn documents_without_params_bom_and_prolog() {
        assert_eq!(decode_call(b"<methodCall><methodName>a.b</methodName></methodCall>"), Ok(("a.b".into(), vec![])));
        assert_eq!(
            decode_call(b"<methodCall><methodName> a.b </methodName><params/></methodCall>"),
            Ok(("a.b".into(), vec![]))
        );
        let doc = "\u{FEFF}<?xml version=\"1.0\" encoding=\"utf-8\"?><!-- hi --><?pi x?>\n<methodCall><methodName>x</methodName></methodCall><!-- bye -->\n";
        assert_eq!(decode_call(doc.as_bytes()), Ok(("x".into(), vec![])));
        // A Latin-1 document is transcoded (see `encodings` for the others).
        let mut latin = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><methodCall><methodName>x</methodName><params><param><value>caf".to_vec();
        latin.extend_from_slice(b"\xe9</value></param></params></methodCall>");
        assert_eq!(decode_call(&latin), Ok(("x".into(), vec![Value::from("café")])));
        let f = parse_fault(
            b"<methodCall><methodName>x</methodName><params><param><value>\xff</value></param></params></methodCall>",
        );
        assert!(f.full_message().contains("UTF-8"), "{f}");
    }

    #[test]
    fn encodings() {
        let doc = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<methodCall><methodName>my.echo</methodName><params><param><value><string>é 🦀 ☃</string></value></param></params></methodCall>";
        let want = Ok(("my.echo".to_owned(), vec![Value::from("é 🦀 ☃")]));
        let mut le = vec![0xFF, 0xFE];
        le.extend(doc.encode_utf16().flat_map(u16::to_le_bytes));
        let mut be = vec![0xFE, 0xFF];
        be.extend(doc.encode_utf16().flat_map(u16::to_be_bytes));
        assert_eq!(decode_call(&le), want);
        assert_eq!(decode_call(&be), want);
        // Without a BOM, `<?` in 16-bit units tells UTF-16 and its byte order.
        assert_eq!(decode_call(&le[2..]), want);
        assert_eq!(decode_call(&be[2..]), want);
        // ISO-8859-1 by the declaration: é is the single byte 0xE9.
        let latin = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><methodCall><methodName>my.echo</methodName><params><param><value>\xe9t\xe9</value></param></params></methodCall>";
        assert_eq!(decode_call(latin), Ok(("my.echo".to_owned(), vec![Value::from("été")])));
        let cp1252 = b"<?xml version='1.0' encoding='windows-1252'?><methodCall><methodName>x</methodName><params><param><value>\x80 \x93q\x94</value></param></params></methodCall>";
        assert_eq!(decode_call(cp1252), Ok(("x".to_owned(), vec![Value::from("€ \u{201C}q\u{201D}")])));
        // Labelled UTF-16 but plainly 8-bit: read as UTF-8, as libxml2 does.
        let labelled = doc.as_bytes();
        assert_eq!(decode_call(labelled), want);
        // Odd bytes in UTF-16 are a parse error; an unknown encoding is −32701.
        let f = parse_fault(&le[..le.len() - 1]);
        assert!(f.full_message().contains("not valid UTF-16LE"), "{f}");
        for name in ["bogus-enc", "ISO-2022-KR"] {
            let doc = format!(
                "<?xml version=\"1.0\" encoding=\"{name}\"?><methodCall><methodName>x</methodName></methodCall>"
            );
            let f = decode_call(doc.as_bytes()).unwrap_err();
            assert_eq!(f.code, fault::UNSUPPORTED_ENCODING, "{f}");
            assert_eq!(
                f.full_message(),
                format!("Parse error. Unsupported encoding: unsupported encoding {name:?} (send UTF-8)")
            );
            assert_eq!(decode_response(doc.as_bytes()).unwrap_err().code, fault::UNSUPPORTED_ENCODING);
            let mut calls = 0;
            assert_eq!(serve_str(&registry(), &mut calls, &doc).unwrap_err().code, fault::UNSUPPORTED_ENCODING);
        }
        // Served: the answer is UTF-8 whatever the request was in.
        let mut out = Vec::new();
        serve(&registry(), &mut 0, &be, &mut out);
        assert_eq!(decode_response(&out), Ok(Ok(Value::from("é 🦀 ☃"))));
    }

    #[test]
    fn malformed_documents() {
        for (doc, detail) in [
            ("", "expected <methodCall>"),
            ("   ", "expected <methodCall>"),
            ("<?xml version=\"1.0\"?><methodCall><methodName>my.echo</method", "not well-formed"),
            ("<methodCall><methodName>x</methodName>", "expected <params> or </methodCall>"),
            ("<methodCall><methodName>x</methodName></methodCall><methodCall>", "expected the end of the document"),
            ("<methodCall><methodName>x</methodName></methodCall>trailing", "expected the end of the document"),
            ("junk<methodCall><methodName>x</methodName></methodCall>", "expected <methodCall>"),
            ("<methodCall><methodName></methodName></methodCall>", "empty <methodName>"),
            ("<methodCall><methodName>x</methodName><params><param></param></params></methodCall>", "expected <value>"),
            (
                "<methodCall><methodName>x</methodName><params><value>1</value></params></methodCall>",
                "expected <param> or </params>",
            ),
            (
                "<methodCall><methodName>x</methodName><params><param><value>1</wrong></param></params></methodCall>",
                "not well-formed",
            ),
            ("<methodCall><methodName>x</methodName></methodCall></extra>", "not well-formed"),
            ("<methodResponse><params/></methodResponse>", "expected <methodCall>"),
            ("<methodCall><methodName>a &foo; b</methodName></methodCall>", "unknown entity &foo;"),
            ("<methodCall><methodName>a & b</methodName></methodCall>", "not well-formed"),
            ("<methodCall><methodName>&#0;</methodName></methodCall>", "bad character reference"),
            ("<methodCall><methodName>&#1;</methodName></methodCall>", "U+0001 is not allowed"),
            ("<methodCall><methodName>a\u{1}</methodName></methodCall>", "U+0001 is not allowed"),
            ("<methodCall><methodName>&#xFFFE;</methodName></methodCall>", "U+FFFE is not allowed"),
            ("<methodCall><methodName>x</methodName><?xml version=\"1.0\"?></methodCall>", "XML declaration"),
        ] {
            let f = parse_fault(doc.as_bytes());
            assert!(f.full_message().contains(detail), "{doc:?}: {f}");
            assert!(f.full_message().contains("at byte"), "{doc:?}: {f}");
        }
    }

    #[test]
    fn dtds_and_entities_are_refused() {
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><methodCall><methodName>&xxe;</methodName></methodCall>"#;
        let f = parse_fault(xxe.as_bytes());
        assert!(f.full_message().contains("DTDs"), "{f}");
        let mut laughs = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n");
        for i in 1..10 {
            laughs.push_str(&format!(
                "<!ENTITY lol{i} \"{}\">\n",
                format!("&lol{};", if i == 1 { String::new() } else { (i - 1).to_string() }).repeat(10)
            ));
        }
        laughs.push_str("]>\n<methodCall><methodName>x</methodName><params><param><value>&lol9;</value></param></params></methodCall>");
        let f = parse_fault(laughs.as_bytes());
        assert!(f.full_message().contains("DTDs"), "{f}");
        // Without the DTD, the entity is simply unknown.
        let f = parse_fault(call_doc("<param><value>&lol9;</value></param>").as_bytes());
        assert!(f.full_message().contains("unknown entity &lol9;"), "{f}");
        // A DOCTYPE anywhere, not only in the prolog.
        parse_fault(b"<methodCall><!DOCTYPE x><methodName>x</methodName></methodCall>");
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let nest = |levels: usize, open: &str, close: &str| {
            call_doc(&format!("<param><value>{}<nil/>{}</value></param>", open.repeat(levels), close.repeat(levels)))
        };
        let arrays = |n| nest(n, "<array><data><value>", "</value></data></array>");
        let structs = |n| nest(n, "<struct><member><name>m</name><value>", "</value></member></struct>");
        for doc in [arrays(MAX_DEPTH), structs(MAX_DEPTH)] {
            let (_, params) = decode_call(doc.as_bytes()).unwrap();
            round_trip(&params[0]);
        }
        for doc in [arrays(MAX_DEPTH + 1), structs(MAX_DEPTH + 1), arrays(10_000), structs(10_000)] {
            let f = parse_fault(doc.as_bytes());
            assert!(f.full_message().contains("nest deeper than 64 levels"), "{f}");
        }
        // Deep nesting of anything else stops at the first element out of place.
        let junk = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
        parse_fault(junk.as_bytes());
        let junk = call_doc(&format!("<param><value>{}</value></param>", "<x>".repeat(10_000)));
        parse_fault(junk.as_bytes());
    }

    #[test]
    fn never_panics_on_prefixes_and_mutations() {
        let mut doc = Vec::new();
        let v = Value::structure([
            ("a", Value::from(vec![Value::Int(1), Value::Double(-1.5), Value::Nil])),
            ("b", Value::Base64(b"\x00\xff".to_vec())),
            ("c", Value::from("x<&>\r")),
            ("d", Value::DateTime("19980717T14:08:55".into())),
        ]);
        encode_call("m", &[v, Value::Bool(true)], &mut doc).unwrap();
        for end in 0..doc.len() {
            assert!(decode_call(&doc[..end]).is_err());
            let _ = decode_response(&doc[..end]);
        }
        for i in 0..doc.len() {
            for b in [b'<', b'>', b'/', b'&', b';', b'a', b' ', 0, 0xC3, 0xFF] {
                let mut m = doc.clone();
                m[i] = b;
                let _ = decode_call(&m);
            }
        }
    }

    #[test]
    fn responses_and_faults() {
        let mut out = Vec::new();
        encode_response(&Ok(Value::from("hello")), &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><params><param><value><string>hello</string></value></param></params></methodResponse>"
        );
        assert_eq!(decode_response(&out), Ok(Ok(Value::from("hello"))));
        out.clear();
        encode_response(&Err(Fault::method_not_found()), &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>-32601</int></value></member><member><name>faultString</name><value><string>Method not found</string></value></member></struct></value></fault></methodResponse>"
        );
        assert_eq!(decode_response(&out), Ok(Err(Fault::method_not_found())));
        // As comodojo (PHP) writes them: lower-case encoding, no newline, `<nil />`.
        let php = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><methodResponse><fault><value><struct><member><name>faultCode</name><value><int>-32602</int></value></member><member><name>faultString</name><value><string>Invalid params</string></value></member></struct></value></fault></methodResponse>";
        assert_eq!(decode_response(php), Ok(Err(Fault::new(-32602, "Invalid params"))));
        let php = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><params><param><value><nil /></value></param></params></methodResponse>";
        assert_eq!(decode_response(php), Ok(Ok(Value::Nil)));
        assert_eq!(decode_response(b"<methodResponse><params></params></methodResponse>"), Ok(Ok(Value::Nil)));
        for bad in [
            &b"<methodResponse><params><param><value>1</value></param><param><value>2</value></param></params></methodResponse>"[..],
            b"<methodResponse><fault><value><string>oops</string></value></fault></methodResponse>",
            b"<methodResponse><fault><value><struct><member><name>faultCode</name><value><i8>99999999999</i8></value></member><member><name>faultString</name><value>x</value></member></struct></value></fault></methodResponse>",
            b"<methodCall><methodName>x</methodName></methodCall>",
        ] {
            assert_eq!(decode_response(bad).unwrap_err().code, fault::PARSE_ERROR);
        }
    }

    fn registry() -> Registry<u32> {
        let mut r = Registry::new();
        r.add(
            Method::new("my.echo", |mut p, calls: &mut u32| {
                *calls += 1;
                Ok(Value::String(p.take("message")?))
            })
            .description("I'm here to reply your data")
            .returns(Type::String)
            .param(Type::String, "message"),
        )
        .unwrap();
        r.add(Method::new("nan", |_, _| Ok(Value::Double(f64::NAN)))).unwrap();
        r
    }

    fn serve_str(r: &Registry<u32>, calls: &mut u32, doc: &str) -> Result<Value, Fault> {
        let mut out = Vec::new();
        serve(r, calls, doc.as_bytes(), &mut out);
        assert!(out.starts_with(DECLARATION));
        decode_response(&out).expect("the server's response decodes")
    }

    #[test]
    fn serve_dispatches_and_answers_faults() {
        let r = registry();
        let mut calls = 0;
        let echo = "<?xml version=\"1.0\"?>\n<methodCall><methodName>my.echo</methodName><params><param><value><string>hello</string></value></param></params></methodCall>";
        assert_eq!(serve_str(&r, &mut calls, echo), Ok(Value::from("hello")));
        assert_eq!(calls, 1);
        let f = serve_str(&r, &mut calls, "<methodCall><methodName>my.echo</methodName><params><param><value><int>5</int></value></param></params></methodCall>").unwrap_err();
        assert_eq!(f.code, fault::INVALID_PARAMS);
        assert_eq!(f.message, "Invalid params: my.echo expects (string message) -> string");
        let f =
            serve_str(&r, &mut calls, "<?xml version=\"1.0\"?><methodCall><methodName>my.echo</method").unwrap_err();
        assert_eq!(f.code, fault::PARSE_ERROR);
        assert!(f.message.starts_with("Parse error: not well-formed XML"), "{f}");
        let f = serve_str(&r, &mut calls, "<methodCall><methodName>nan</methodName></methodCall>").unwrap_err();
        assert_eq!(f.code, fault::APPLICATION_ERROR);
        assert_eq!(calls, 1);
    }

    #[test]
    fn multicall_through_the_registry() {
        let r = registry();
        let mut calls = 0;
        let entry = |name: &str, params: &str| {
            format!("<value><struct><member><name>methodName</name><value>{name}</value></member><member><name>params</name><value><array><data>{params}</data></array></value></member></struct></value>")
        };
        let doc = call_doc(&format!(
            "<param><value><array><data>{}{}{}{}</data></array></value></param>",
            entry("my.echo", "<value>a</value>"),
            entry("no.such", ""),
            entry("system.multicall", ""),
            entry("my.echo", "<value><int>1</int></value>"),
        ))
        .replace("<methodName>t</methodName>", "<methodName>system.multicall</methodName>");
        let out = serve_str(&r, &mut calls, &doc).unwrap();
        let Value::Array(items) = out else { panic!("{out:?}") };
        assert_eq!(items.len(), 4);
        assert_eq!(items[0], Value::from(vec!["a"]));
        assert_eq!(items[1].member("faultCode"), Some(&Value::Int(-32601)));
        assert_eq!(items[1].member("faultString"), Some(&Value::from("Method not found")));
        assert_eq!(items[2].member("faultCode"), Some(&Value::Int(-31001)));
        assert_eq!(items[3].member("faultCode"), Some(&Value::Int(-32602)));
        assert_eq!(calls, 1);
    }
}
