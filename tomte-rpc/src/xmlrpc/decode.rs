//! Reading XML-RPC: the hardened decoder of calls and responses, on a streaming `quick-xml`
//! reader, with the limits the module documentation lists.

use std::borrow::Cow;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use quick_xml::events::{BytesRef, Event};
use quick_xml::Reader;

use super::MAX_DEPTH;
use crate::encoding::{self, DecodeError};
use crate::fault::{self, Fault};
use crate::structure;
use crate::value::Value;

/// Base64 as clients write it: standard alphabet, padding optional.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

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
