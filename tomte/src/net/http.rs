//! HTTP/1.1 just enough for RPC: a POST head read with httparse, a response head written.

use std::io::Write as _;

/// What the body of a request is, by its Content-Type (or, without one, by its first byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Xml,
    /// Neither: answered 415.
    Other,
}

/// The parts of a request head that matter here.
#[derive(Debug)]
pub struct Head {
    pub head_len: usize,
    pub post: bool,
    pub content_length: Option<usize>,
    pub chunked: bool,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub kind: Option<BodyKind>,
}

/// Outcome of reading a head from the buffered bytes.
pub enum Parsed {
    Head(Head),
    Partial,
    Invalid(String),
}

pub fn parse_head(bytes: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(e) => return Parsed::Invalid(e.to_string()),
    };
    let http10 = req.version == Some(0);
    let mut head = Head {
        head_len,
        post: req.method == Some("POST"),
        content_length: None,
        chunked: false,
        keep_alive: !http10,
        expect_continue: false,
        kind: None,
    };
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            match value.parse() {
                Ok(n) if head.content_length.is_none_or(|old| old == n) => head.content_length = Some(n),
                _ => return Parsed::Invalid(format!("bad Content-Length '{value}'")),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                head.keep_alive = false;
            } else if v.contains("keep-alive") {
                head.keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case("100-continue");
        } else if h.name.eq_ignore_ascii_case("content-type") {
            let mime = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            head.kind = match mime.as_str() {
                "application/json" | "application/json-rpc" | "application/jsonrequest" => Some(BodyKind::Json),
                "text/xml" | "application/xml" => Some(BodyKind::Xml),
                // curl's default for -d, or nothing said: the body tells.
                "application/x-www-form-urlencoded" | "" => None,
                _ => Some(BodyKind::Other),
            };
        }
    }
    Parsed::Head(head)
}

/// The kind of a body with no usable Content-Type: XML starts with `<`, JSON with `{` or `[`.
pub fn sniff(body: &[u8]) -> BodyKind {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'<') => BodyKind::Xml,
        Some(b'{' | b'[') => BodyKind::Json,
        _ => BodyKind::Json,
    }
}

/// Appends a response head for a body of `len` bytes.
pub fn write_head(out: &mut Vec<u8>, status: u16, content_type: &str, len: usize, keep_alive: bool) {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let _ = write!(out, "HTTP/1.1 {status} {reason}\r\nServer: tomte\r\n");
    if status == 405 {
        out.extend_from_slice(b"Allow: POST\r\n");
    }
    if status != 204 {
        let _ = write!(out, "Content-Type: {content_type}\r\nContent-Length: {len}\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a whole plain-text error response; the connection is closed after it.
pub fn write_error(out: &mut Vec<u8>, status: u16, text: &str) {
    let body = format!("{text}\n");
    write_head(out, status, "text/plain; charset=utf-8", body.len(), false);
    out.extend_from_slice(body.as_bytes());
}
