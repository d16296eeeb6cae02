//! comodojo/daemon 1.x frames, byte for byte: a frame is base64 (standard alphabet, padded, no
//! line breaks) of a PHP-serialized array, followed by `\r\n`.
//!
//! * On accept the server sends the greeter `{status: "connected", version: "1.0"}`.
//! * A request is `{content_type: string|null, message: string}`; `message` is the raw RPC
//!   payload. `application/json` (any case, parameters after `;` ignored) selects JSON-RPC,
//!   anything else XML-RPC — chosen per request: the original switched its one shared server
//!   to JSON for good after the first JSON request, which is not reproduced.
//! * A response is `{status: bool, message: string|null}`: `true` with the RPC response (RPC
//!   faults included), `null` when a JSON-RPC request had nothing to answer (notifications);
//!   `false` with an error text when the frame itself could not be read, or when its one call
//!   was refused for want of a permission ("Permission denied: …"). The connection stays open
//!   either way.
//!
//! Only the PHP-serialize subset of [`crate::php`] is parsed — never objects — and unknown keys
//! are refused, as the original's models do. Finding the line (and limiting its length) is the
//! caller's job; these functions take a line without its terminator.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::php::{self, Key, PhpError, PhpValue};
use crate::registry::Registry;
use crate::served::Served;

/// The protocol version the greeter announces and clients check.
pub const VERSION: &str = "1.0";

/// The frame terminator.
pub const EOL: &[u8] = b"\r\n";

/// A request frame, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `None` when the client sent `null` or no `content_type` at all.
    pub content_type: Option<String>,
    /// The RPC payload, as bytes.
    pub message: Vec<u8>,
}

/// Why a frame could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The line holds nothing but whitespace.
    #[error("empty frame")]
    Empty,
    /// The line is not base64.
    #[error("not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The decoded bytes are not PHP-serialized data of the subset [`crate::php`] reads.
    #[error("not PHP-serialized data: {0}")]
    Php(#[from] PhpError),
    /// The serialized value is not an array (its PHP type is named).
    #[error("the frame holds a {0}, not an array")]
    NotAnArray(&'static str),
    /// A key other than the frame's own (an int key, or one not in UTF-8, included).
    #[error("unknown key {0}")]
    UnknownKey(String),
    /// A key given twice.
    #[error("key {0} appears twice")]
    DuplicateKey(&'static str),
    /// A key the frame must have is absent.
    #[error("key {0} is missing")]
    MissingKey(&'static str),
    /// A value of the wrong PHP type for its key.
    #[error("key {key} must be {expected}, not {found}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// The types its value may have.
        expected: &'static str,
        /// The PHP type its value has.
        found: &'static str,
    },
    /// The `content_type` string is not UTF-8.
    #[error("content_type is not UTF-8")]
    ContentTypeNotUtf8,
    /// The greeter's status is not `connected` (the status is given).
    #[error("server greeted with status {0:?}, not \"connected\"")]
    NotConnected(String),
    /// The greeter announces another version than [`VERSION`] (the version is given).
    #[error("server speaks protocol version {0:?}, not \"1.0\"")]
    VersionMismatch(String),
}

// ---------------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------------

/// Appends the greeter frame a server sends on accept.
pub fn greeter(out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(64);
    php::write_array_start(&mut body, 2);
    php::write_string(&mut body, b"status");
    php::write_string(&mut body, b"connected");
    php::write_string(&mut body, b"version");
    php::write_string(&mut body, VERSION.as_bytes());
    php::write_array_end(&mut body);
    frame(&body, out);
}

/// Decodes a request frame (the line without its terminator; surrounding whitespace is
/// ignored, as the original's `trim()` does).
pub fn decode_request(line: &[u8]) -> Result<Request, FrameError> {
    let members = decode_array(line)?;
    let mut content_type = None;
    let mut message = None;
    for (key, value) in members {
        match key_name(&key)? {
            "content_type" => {
                if content_type.is_some() {
                    return Err(FrameError::DuplicateKey("content_type"));
                }
                content_type = Some(match value {
                    PhpValue::Null => None,
                    PhpValue::String(s) => Some(String::from_utf8(s).map_err(|_| FrameError::ContentTypeNotUtf8)?),
                    other => return Err(wrong("content_type", "a string or null", &other)),
                });
            }
            "message" => {
                if message.is_some() {
                    return Err(FrameError::DuplicateKey("message"));
                }
                message = Some(match value {
                    PhpValue::String(s) => s,
                    other => return Err(wrong("message", "a string", &other)),
                });
            }
            other => return Err(FrameError::UnknownKey(format!("{other:?}"))),
        }
    }
    Ok(Request { content_type: content_type.flatten(), message: message.ok_or(FrameError::MissingKey("message"))? })
}

/// Appends a response frame: `status` and the RPC response, `None` for PHP's `null`.
pub fn encode_response(status: bool, message: Option<&[u8]>, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(48 + message.map_or(0, <[u8]>::len));
    php::write_array_start(&mut body, 2);
    php::write_string(&mut body, b"status");
    php::write_bool(&mut body, status);
    php::write_string(&mut body, b"message");
    match message {
        Some(m) => php::write_string(&mut body, m),
        None => php::write_null(&mut body),
    }
    php::write_array_end(&mut body);
    frame(&body, out);
}

/// Whether a request's `content_type` selects JSON-RPC: `application/json`, in any case, with
/// or without parameters (`; charset=utf-8`).
pub fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let media = ct.split(';').next().unwrap_or("");
        media.trim().eq_ignore_ascii_case("application/json")
    })
}

/// Serves one request frame (the line without its terminator) and appends the response frame.
/// A frame that cannot be read is answered with `status: false` and the reason.
///
/// A handler that defers makes it [`Served::Later`], with nothing appended.
pub fn serve<C>(registry: &Registry<C>, ctx: &mut C, line: &[u8], out: &mut Vec<u8>) -> Served {
    let request = match decode_request(line) {
        Ok(r) => r,
        Err(e) => {
            encode_response(false, Some(format!("invalid frame: {e}").as_bytes()), out);
            return Served::Answered;
        }
    };
    let mut payload = Vec::new();
    registry.take_refused();
    let json = is_json(request.content_type.as_deref());
    let served = if json {
        crate::jsonrpc::serve(registry, ctx, &request.message, &mut payload)
    } else {
        crate::xmlrpc::serve(registry, ctx, &request.message, &mut payload)
    };
    // A frame whose one call the caller may not make is refused as a whole, as comodojo's
    // server refuses what it will not serve: status false with the reason. Inside a batch or
    // a multicall, each refused entry stays an error in place.
    if let Some(why) = registry.take_refused() {
        let single = if json { request.message.trim_ascii_start().first() == Some(&b'{') } else { is_fault(&payload) };
        if single {
            encode_response(false, Some(why.as_bytes()), out);
            return Served::Answered;
        }
    }
    match served {
        Served::Later(p) => return Served::Later(p.in_comodojo_frame()),
        Served::Answered => encode_response(true, Some(&payload), out),
        Served::Nothing => encode_response(true, None, out),
    }
    Served::Answered
}

/// Whether an XML-RPC answer is a fault (a whole-call failure), not a multicall's results.
fn is_fault(payload: &[u8]) -> bool {
    payload.windows(23).any(|w| w == b"<methodResponse><fault>")
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/// Checks a server's greeter frame (the line without its terminator), as the PHP client does:
/// status `connected`, version `1.0`.
pub fn decode_greeter(line: &[u8]) -> Result<(), FrameError> {
    let mut status = None;
    let mut version = None;
    for (key, value) in decode_array(line)? {
        let (slot, name) = match key_name(&key)? {
            "status" => (&mut status, "status"),
            "version" => (&mut version, "version"),
            other => return Err(FrameError::UnknownKey(format!("{other:?}"))),
        };
        if slot.is_some() {
            return Err(FrameError::DuplicateKey(name));
        }
        *slot = Some(match value {
            PhpValue::String(s) => String::from_utf8_lossy(&s).into_owned(),
            PhpValue::Null => String::new(),
            other => return Err(wrong(name, "a string", &other)),
        });
    }
    let status = status.unwrap_or_default();
    if status != "connected" {
        return Err(FrameError::NotConnected(status));
    }
    match version {
        Some(v) if v == VERSION => Ok(()),
        Some(v) => Err(FrameError::VersionMismatch(v)),
        None => Err(FrameError::MissingKey("version")),
    }
}

/// Appends a request frame.
pub fn encode_request(content_type: &str, message: &[u8], out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(64 + content_type.len() + message.len());
    php::write_array_start(&mut body, 2);
    php::write_string(&mut body, b"content_type");
    php::write_string(&mut body, content_type.as_bytes());
    php::write_string(&mut body, b"message");
    php::write_string(&mut body, message);
    php::write_array_end(&mut body);
    frame(&body, out);
}

/// Decodes a response frame (the line without its terminator): the status and the message
/// (`None` for `null`).
pub fn decode_response(line: &[u8]) -> Result<(bool, Option<Vec<u8>>), FrameError> {
    let mut status = None;
    let mut message = None;
    for (key, value) in decode_array(line)? {
        match key_name(&key)? {
            "status" => {
                if status.is_some() {
                    return Err(FrameError::DuplicateKey("status"));
                }
                status = Some(match value {
                    PhpValue::Bool(b) => b,
                    other => return Err(wrong("status", "a bool", &other)),
                });
            }
            "message" => {
                if message.is_some() {
                    return Err(FrameError::DuplicateKey("message"));
                }
                message = Some(match value {
                    PhpValue::Null => None,
                    PhpValue::String(s) => Some(s),
                    other => return Err(wrong("message", "a string or null", &other)),
                });
            }
            other => return Err(FrameError::UnknownKey(format!("{other:?}"))),
        }
    }
    Ok((status.ok_or(FrameError::MissingKey("status"))?, message.flatten()))
}

// ---------------------------------------------------------------------------------------------

/// base64 of `body`, then CRLF.
fn frame(body: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    // encoded_len overflows only for inputs larger than memory.
    let len = base64::encoded_len(body.len(), true).unwrap_or(0);
    out.resize(start + len, 0);
    let written = STANDARD.encode_slice(body, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
    out.extend_from_slice(EOL);
}

/// Trims, base64-decodes and parses a frame that must hold an array.
fn decode_array(line: &[u8]) -> Result<Vec<(Key, PhpValue)>, FrameError> {
    // PHP's trim(): space, tab, LF, CR, NUL, vertical tab.
    let kept = |b: &u8| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0 | 0x0b);
    let line = match (line.iter().position(kept), line.iter().rposition(kept)) {
        (Some(start), Some(end)) => &line[start..=end],
        _ => &[],
    };
    if line.is_empty() {
        return Err(FrameError::Empty);
    }
    let bytes = STANDARD.decode(line)?;
    match php::parse(&bytes)? {
        PhpValue::Array(members) => Ok(members),
        other => Err(FrameError::NotAnArray(other.type_name())),
    }
}

fn key_name(key: &Key) -> Result<&str, FrameError> {
    match key {
        Key::String(_) => key.as_str().ok_or_else(|| FrameError::UnknownKey("(not UTF-8)".to_owned())),
        Key::Int(i) => Err(FrameError::UnknownKey(i.to_string())),
    }
}

fn wrong(key: &'static str, expected: &'static str, found: &PhpValue) -> FrameError {
    FrameError::WrongType { key, expected, found: found.type_name() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::{Method, Type};
    use crate::value::Value;

    // Wire bytes captured from the PHP daemon (comodojo-live.md §2.1), base64 lines without CRLF.
    const GREETER: &str = "YToyOntzOjY6InN0YXR1cyI7czo5OiJjb25uZWN0ZWQiO3M6NzoidmVyc2lvbiI7czozOiIxLjAiO30=";
    const JSON_ECHO_REQUEST: &str = "YToyOntzOjEyOiJjb250ZW50X3R5cGUiO3M6MTY6ImFwcGxpY2F0aW9uL2pzb24iO3M6NzoibWVzc2FnZSI7czo2MjoieyJqc29ucnBjIjoiMi4wIiwibWV0aG9kIjoibXkuZWNobyIsInBhcmFtcyI6WyJoZWxsbyJdLCJpZCI6MX0iO30=";
    const JSON_ECHO_RESPONSE: &str = "YToyOntzOjY6InN0YXR1cyI7YjoxO3M6NzoibWVzc2FnZSI7czo0MToieyJqc29ucnBjIjoiMi4wIiwicmVzdWx0IjoiaGVsbG8iLCJpZCI6MX0iO30=";
    const XML_LIST_REQUEST: &str = "YToyOntzOjEyOiJjb250ZW50X3R5cGUiO3M6ODoidGV4dC94bWwiO3M6NzoibWVzc2FnZSI7czoxMDc6Ijw/eG1sIHZlcnNpb249IjEuMCI/Pgo8bWV0aG9kQ2FsbD48bWV0aG9kTmFtZT5zeXN0ZW0ubGlzdE1ldGhvZHM8L21ldGhvZE5hbWU+PHBhcmFtcz48L3BhcmFtcz48L21ldGhvZENhbGw+Ijt9";
    const XML_LIST_RESPONSE: &str = concat!(
        "YToyOntzOjY6InN0YXR1cyI7YjoxO3M6NzoibWVzc2FnZSI7czo2NjU6Ijw/eG1sIHZlcnNpb249IjEuMCIgZW5jb2Rpbmc9",
        "IlVURi04Ij8+CjxtZXRob2RSZXNwb25zZT48cGFyYW1zPjxwYXJhbT48dmFsdWU+PGFycmF5PjxkYXRhPjx2YWx1ZT48c3Ry",
        "aW5nPnN5c3RlbS5nZXRDYXBhYmlsaXRpZXM8L3N0cmluZz48L3ZhbHVlPjx2YWx1ZT48c3RyaW5nPnN5c3RlbS5saXN0TWV0",
        "aG9kczwvc3RyaW5nPjwvdmFsdWU+PHZhbHVlPjxzdHJpbmc+c3lzdGVtLm1ldGhvZEhlbHA8L3N0cmluZz48L3ZhbHVlPjx2",
        "YWx1ZT48c3RyaW5nPnN5c3RlbS5tZXRob2RTaWduYXR1cmU8L3N0cmluZz48L3ZhbHVlPjx2YWx1ZT48c3RyaW5nPnN5c3Rl",
        "bS5tdWx0aWNhbGw8L3N0cmluZz48L3ZhbHVlPjx2YWx1ZT48c3RyaW5nPmRhZW1vbi5zaHV0ZG93bjwvc3RyaW5nPjwvdmFs",
        "dWU+PHZhbHVlPjxzdHJpbmc+d29ya2VyLmxpc3Q8L3N0cmluZz48L3ZhbHVlPjx2YWx1ZT48c3RyaW5nPndvcmtlci5zdGF0",
        "dXM8L3N0cmluZz48L3ZhbHVlPjx2YWx1ZT48c3RyaW5nPndvcmtlci5wYXVzZTwvc3RyaW5nPjwvdmFsdWU+PHZhbHVlPjxz",
        "dHJpbmc+d29ya2VyLnJlc3VtZTwvc3RyaW5nPjwvdmFsdWU+PHZhbHVlPjxzdHJpbmc+bXkuZWNobzwvc3RyaW5nPjwvdmFs",
        "dWU+PC9kYXRhPjwvYXJyYXk+PC92YWx1ZT48L3BhcmFtPjwvcGFyYW1zPjwvbWV0aG9kUmVzcG9uc2U+Ijt9",
    );
    const JSON_NOTIFICATION_REQUEST: &str = "YToyOntzOjEyOiJjb250ZW50X3R5cGUiO3M6MTY6ImFwcGxpY2F0aW9uL2pzb24iO3M6NzoibWVzc2FnZSI7czo1NToieyJqc29ucnBjIjoiMi4wIiwibWV0aG9kIjoibXkuZWNobyIsInBhcmFtcyI6WyJoZWxsbyJdfSI7fQ==";
    const NOTIFICATION_RESPONSE: &str = "YToyOntzOjY6InN0YXR1cyI7YjoxO3M6NzoibWVzc2FnZSI7Tjt9";
    const JSON_UNKNOWN_REQUEST: &str = "YToyOntzOjEyOiJjb250ZW50X3R5cGUiO3M6MTY6ImFwcGxpY2F0aW9uL2pzb24iO3M6NzoibWVzc2FnZSI7czo1NToieyJqc29ucnBjIjoiMi4wIiwibWV0aG9kIjoibm8uc3VjaCIsInBhcmFtcyI6W10sImlkIjoyfSI7fQ==";
    const JSON_UNKNOWN_RESPONSE: &str = "YToyOntzOjY6InN0YXR1cyI7YjoxO3M6NzoibWVzc2FnZSI7czo3NzoieyJqc29ucnBjIjoiMi4wIiwiZXJyb3IiOnsiY29kZSI6LTMyNjAxLCJtZXNzYWdlIjoiTWV0aG9kIG5vdCBmb3VuZCJ9LCJpZCI6Mn0iO30=";
    const XML_UNKNOWN_REQUEST: &str = "YToyOntzOjEyOiJjb250ZW50X3R5cGUiO3M6ODoidGV4dC94bWwiO3M6NzoibWVzc2FnZSI7czo5NjoiPD94bWwgdmVyc2lvbj0iMS4wIj8+CjxtZXRob2RDYWxsPjxtZXRob2ROYW1lPm5vLnN1Y2g8L21ldGhvZE5hbWU+PHBhcmFtcz48L3BhcmFtcz48L21ldGhvZENhbGw+Ijt9";

    /// The echo daemon of the capture: comodojo's built-ins registered before `my.echo`, so
    /// `system.listMethods` lists them in the captured order.
    fn registry() -> Registry<()> {
        let mut r = Registry::new();
        for name in ["daemon.shutdown", "worker.list", "worker.status", "worker.pause", "worker.resume"] {
            r.add(Method::new(name, |_, _| Ok(Value::Nil))).unwrap();
        }
        r.add(
            Method::new("my.echo", |mut p, _| Ok(Value::String(p.take("message")?)))
                .description("I'm here to reply your data")
                .returns(Type::String)
                .param(Type::String, "message"),
        )
        .unwrap();
        r
    }

    fn wire(line: &str) -> Vec<u8> {
        let mut v = line.as_bytes().to_vec();
        v.extend_from_slice(EOL);
        v
    }

    fn serve_line(line: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        serve(&registry(), &mut (), line, &mut out);
        out
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[test]
    fn greeter_is_byte_exact() {
        let mut out = Vec::new();
        greeter(&mut out);
        assert_eq!(text(&out), text(&wire(GREETER)));
        assert_eq!(out.len(), 82);
        assert_eq!(decode_greeter(GREETER.as_bytes()), Ok(()));
    }

    #[test]
    fn json_echo_is_byte_exact() {
        let req = decode_request(JSON_ECHO_REQUEST.as_bytes()).unwrap();
        assert_eq!(req.content_type.as_deref(), Some("application/json"));
        assert_eq!(text(&req.message), r#"{"jsonrpc":"2.0","method":"my.echo","params":["hello"],"id":1}"#);
        // What a client writes is what the PHP client wrote.
        let mut out = Vec::new();
        encode_request("application/json", &req.message, &mut out);
        assert_eq!(text(&out), text(&wire(JSON_ECHO_REQUEST)));
        let resp = serve_line(JSON_ECHO_REQUEST.as_bytes());
        assert_eq!(text(&resp), text(&wire(JSON_ECHO_RESPONSE)));
        assert_eq!(resp.len(), 118);
        let (status, message) = decode_response(JSON_ECHO_RESPONSE.as_bytes()).unwrap();
        assert!(status);
        assert_eq!(text(&message.unwrap()), r#"{"jsonrpc":"2.0","result":"hello","id":1}"#);
    }

    #[test]
    fn xml_list_methods_is_byte_exact() {
        let req = decode_request(XML_LIST_REQUEST.as_bytes()).unwrap();
        assert_eq!(req.content_type.as_deref(), Some("text/xml"));
        let mut out = Vec::new();
        encode_request("text/xml", &req.message, &mut out);
        assert_eq!(text(&out), text(&wire(XML_LIST_REQUEST)));
        let resp = serve_line(XML_LIST_REQUEST.as_bytes());
        assert_eq!(text(&resp), text(&wire(XML_LIST_RESPONSE)));
        assert_eq!(resp.len(), 950);
    }

    #[test]
    fn json_notification_answers_null() {
        let resp = serve_line(JSON_NOTIFICATION_REQUEST.as_bytes());
        assert_eq!(text(&resp), text(&wire(NOTIFICATION_RESPONSE)));
        assert_eq!(resp.len(), 54);
        assert_eq!(decode_response(NOTIFICATION_RESPONSE.as_bytes()), Ok((true, None)));
        let mut out = Vec::new();
        encode_response(true, None, &mut out);
        assert_eq!(out, wire(NOTIFICATION_RESPONSE));
    }

    #[test]
    fn json_unknown_method_is_byte_exact() {
        let resp = serve_line(JSON_UNKNOWN_REQUEST.as_bytes());
        assert_eq!(text(&resp), text(&wire(JSON_UNKNOWN_RESPONSE)));
        assert_eq!(resp.len(), 166);
    }

    #[test]
    fn xml_unknown_method_differs_only_in_the_declaration() {
        // PHP writes faults with `encoding="utf-8"` and no newline; tomte writes every response
        // alike. The fault itself is the same.
        let resp = serve_line(XML_UNKNOWN_REQUEST.as_bytes());
        let (status, message) = decode_response(&resp[..resp.len() - 2]).unwrap();
        assert!(status);
        let message = text(&message.unwrap());
        assert_eq!(
            message,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>-32601</int></value></member><member><name>faultString</name><value><string>Method not found</string></value></member></struct></value></fault></methodResponse>"
        );
    }

    #[test]
    fn protocol_is_chosen_per_request_not_sticky() {
        let r = registry();
        let xml = "<?xml version=\"1.0\"?>\n<methodCall><methodName>my.echo</methodName><params><param><value><string>hello</string></value></param></params></methodCall>";
        let json = r#"{"jsonrpc":"2.0","method":"my.echo","params":["hello"],"id":1}"#;
        for (ct, payload, expected) in [
            ("application/json", json, r#"{"jsonrpc":"2.0","result":"hello","id":1}"#),
            // The original answered this one `{}`: it had switched to JSON for good.
            ("text/xml", xml, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><params><param><value><string>hello</string></value></param></params></methodResponse>"),
            ("Application/JSON; charset=utf-8", json, r#"{"jsonrpc":"2.0","result":"hello","id":1}"#),
            ("application/xml", xml, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><params><param><value><string>hello</string></value></param></params></methodResponse>"),
        ] {
            let mut line = Vec::new();
            encode_request(ct, payload.as_bytes(), &mut line);
            let mut out = Vec::new();
            serve(&r, &mut (), &line[..line.len() - 2], &mut out);
            assert!(out.ends_with(EOL));
            let (status, message) = decode_response(&out[..out.len() - 2]).unwrap();
            assert!(status);
            assert_eq!(text(&message.unwrap()), expected, "content type {ct}");
        }
        assert!(is_json(Some(" application/json ")));
        assert!(!is_json(Some("application/jsonx")));
        assert!(!is_json(None));
    }

    #[test]
    fn missing_or_null_content_type_means_xml() {
        let body = br#"a:1:{s:7:"message";s:74:"<methodCall><methodName>my.echo</methodName><params></params></methodCall>";}"#;
        let line = STANDARD.encode(body);
        let req = decode_request(line.as_bytes()).unwrap();
        assert_eq!(req.content_type, None);
        let body = br#"a:2:{s:12:"content_type";N;s:7:"message";s:0:"";}"#;
        let req = decode_request(STANDARD.encode(body).as_bytes()).unwrap();
        assert_eq!(req, Request { content_type: None, message: Vec::new() });
        // An empty XML-RPC payload is a parse error, answered with status true.
        let out = serve_line(STANDARD.encode(body).as_bytes());
        let (status, message) = decode_response(&out[..out.len() - 2]).unwrap();
        assert!(status);
        assert!(text(&message.unwrap()).contains("<int>-32700</int>"));
    }

    #[test]
    fn bad_frames_answer_status_false_and_keep_going() {
        let b64 = |s: &str| STANDARD.encode(s);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"!!!notbase64!!!".to_vec(), "invalid frame: not base64"),
            (b"aGVsbG8gd29ybGQ=".to_vec(), "invalid frame: not PHP-serialized data"),
            (b64("N;").into_bytes(), "invalid frame: the frame holds a null, not an array"),
            (b64(r#"a:1:{s:12:"content_type";s:8:"text/xml";}"#).into_bytes(), "key message is missing"),
            (b64(r#"a:2:{s:7:"message";s:0:"";s:3:"foo";N;}"#).into_bytes(), "unknown key \"foo\""),
            (b64(r#"a:2:{s:7:"message";s:0:"";i:0;N;}"#).into_bytes(), "unknown key 0"),
            (b64(r#"a:2:{s:7:"message";s:0:"";s:7:"message";s:0:"";}"#).into_bytes(), "key message appears twice"),
            (b64(r#"a:1:{s:7:"message";i:5;}"#).into_bytes(), "key message must be a string, not int"),
            (
                b64(r#"a:2:{s:12:"content_type";b:1;s:7:"message";s:0:"";}"#).into_bytes(),
                "content_type must be a string or null, not bool",
            ),
            (b64(r#"a:1:{s:7:"message";O:8:"stdClass":0:{}}"#).into_bytes(), "objects (O:) are refused"),
            (b"   ".to_vec(), "invalid frame: empty frame"),
        ];
        for (line, expected) in cases {
            let out = serve_line(&line);
            assert!(out.ends_with(EOL));
            let (status, message) = decode_response(&out[..out.len() - 2]).unwrap();
            assert!(!status);
            let message = text(&message.unwrap());
            assert!(message.starts_with("invalid frame: "), "{message}");
            assert!(message.contains(expected), "{message} should contain {expected}");
        }
    }

    #[test]
    fn frames_are_trimmed_like_php_does() {
        let mut line = b" \t\0".to_vec();
        line.extend_from_slice(JSON_ECHO_REQUEST.as_bytes());
        line.extend_from_slice(b"\r\n\x0b ");
        assert_eq!(decode_request(&line), decode_request(JSON_ECHO_REQUEST.as_bytes()));
    }

    #[test]
    fn client_side_round_trip_and_greeter_checks() {
        let mut out = Vec::new();
        encode_response(false, Some(b"Bad validation type"), &mut out);
        assert_eq!(
            STANDARD.decode(&out[..out.len() - 2]).unwrap(),
            br#"a:2:{s:6:"status";b:0;s:7:"message";s:19:"Bad validation type";}"#
        );
        assert_eq!(decode_response(&out), Ok((false, Some(b"Bad validation type".to_vec()))));
        let greet = |body: &str| decode_greeter(STANDARD.encode(body).as_bytes());
        assert_eq!(
            greet(r#"a:2:{s:6:"status";s:4:"busy";s:7:"version";s:3:"1.0";}"#),
            Err(FrameError::NotConnected("busy".into()))
        );
        assert_eq!(
            greet(r#"a:2:{s:6:"status";s:9:"connected";s:7:"version";s:3:"2.0";}"#),
            Err(FrameError::VersionMismatch("2.0".into()))
        );
        assert_eq!(greet(r#"a:1:{s:6:"status";s:9:"connected";}"#), Err(FrameError::MissingKey("version")));
        assert!(matches!(
            decode_response(STANDARD.encode(r#"a:1:{s:7:"message";N;}"#).as_bytes()),
            Err(FrameError::MissingKey("status"))
        ));
        // Binary payloads survive.
        let payload: Vec<u8> = (0..=255).collect();
        out.clear();
        encode_request("text/xml", &payload, &mut out);
        assert_eq!(decode_request(&out).unwrap().message, payload);
    }
}
