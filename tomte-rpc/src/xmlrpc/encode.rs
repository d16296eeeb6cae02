//! Writing XML-RPC: calls, responses, faults and values, and the escaping of character data.

use std::io::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::MAX_DEPTH;
use crate::fault::{self, Fault};
use crate::value::Value;

pub(super) const DECLARATION: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Why a value cannot be written as XML-RPC.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A NaN or infinite double.
    #[error("XML-RPC has no representation for the double {0}")]
    NonFinite(f64),
    /// A character XML 1.0 forbids, in a string, a date, a member name or the method name (its
    /// code point).
    #[error("XML 1.0 cannot carry the character U+{0:04X} in a string (send such data as base64)")]
    IllegalChar(u32),
    /// Arrays and structs nested deeper than [`MAX_DEPTH`].
    #[error("the value nests arrays and structs deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl From<EncodeError> for Fault {
    fn from(e: EncodeError) -> Fault {
        Fault::new(fault::APPLICATION_ERROR, "Application error").with_data(e.to_string())
    }
}

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
