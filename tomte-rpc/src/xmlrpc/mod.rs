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

mod decode;
mod encode;
#[cfg(test)]
mod tests;

pub use decode::{decode_call, decode_response};
pub use encode::{encode_call, encode_response, encode_value, EncodeError};

use crate::registry::{Args, Protocol, Registry};
use crate::served::{Pending, Served};

/// How many arrays and structs may nest inside one another, in documents read and written.
pub const MAX_DEPTH: usize = 64;

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
