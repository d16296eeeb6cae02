//! HTTP/1.1 just enough for RPC: a POST head read with httparse, a response head written.

use std::io::Write as _;

use super::HostRule;

/// What the body of a request is, by its Content-Type (or, without one, by its first byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Xml,
    /// Neither: answered 415.
    Other,
}

/// The parts of a request head that matter here.
#[derive(Debug, Clone)]
pub struct Head {
    pub head_len: usize,
    pub post: bool,
    /// A `GET` (served by [`Service::get`](super::Service::get)).
    pub get: bool,
    /// The request target as sent (`/metrics`, `/events?pattern=app.*`).
    pub target: String,
    /// The `Accept` header, when sent (`/metrics` negotiates OpenMetrics with it).
    pub accept: Option<String>,
    pub content_length: Option<usize>,
    pub chunked: bool,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub kind: Option<BodyKind>,
    /// The `Host` header, when sent.
    pub host: Option<String>,
    /// The `Origin` header, when sent (browsers send it on every cross-origin POST).
    pub origin: Option<String>,
    /// The `Sec-Fetch-Site` header, when sent (browsers' own view of who is asking).
    pub fetch_site: Option<String>,
    /// `Sec-Fetch-Mode: navigate` with `Sec-Fetch-Dest: document`: the browser loads a page
    /// the user asked for (a typed URL, a followed link), not a script's request.
    pub navigation: bool,
    /// A `Content-Encoding` other than `identity`.
    pub encoded: Option<String>,
    /// The secret of `Authorization: Bearer SECRET`.
    pub bearer: Option<String>,
}

/// Outcome of reading a head from the buffered bytes.
pub enum Parsed {
    /// A complete head, accepted.
    Head(Head),
    /// The bytes end before the head does.
    Partial,
    /// A head to refuse (the reason is given).
    Invalid(String),
}

/// How far a request head has arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadEnd {
    /// It ends (its empty line included) this many bytes in.
    At(usize),
    /// A line ends in a bare LF: refused (RFC 9112 allows it, intermediaries disagree on it).
    BareLf,
    /// Not yet: search again from here when more arrives.
    Partial(usize),
}

/// Where the head that starts `bytes` ends, searching from `from` (where an earlier search
/// stopped), so that a head dripped byte by byte is scanned once, not once per byte.
pub fn head_end(bytes: &[u8], from: usize) -> HeadEnd {
    let mut at = from;
    while let Some(i) = memchr::memchr(b'\n', &bytes[at..]) {
        let lf = at + i;
        if lf == 0 || bytes[lf - 1] != b'\r' {
            return HeadEnd::BareLf;
        }
        // "\r\n\r\n": the empty line that ends the head.
        if lf >= 3 && &bytes[lf - 3..lf - 1] == b"\r\n" {
            return HeadEnd::At(lf + 1);
        }
        at = lf + 1;
    }
    // Every check looks backwards from a LF, so nothing before the end needs a second look.
    HeadEnd::Partial(bytes.len())
}

/// Parses a complete request head, strictly: what RFC 9112 says to reject, and what proxies
/// could read differently (the request-smuggling cases), is refused.
pub fn parse_head(bytes: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(e) => return Parsed::Invalid(e.to_string()),
    };
    // httparse accepts a bare LF as a line end; intermediaries may not, so neither do we.
    let head = &bytes[..head_len];
    if memchr::memchr_iter(b'\n', head).any(|i| i == 0 || head[i - 1] != b'\r') {
        return Parsed::Invalid("a line of the head ends in a bare LF (CRLF is required)".to_owned());
    }
    let http10 = req.version == Some(0);
    let mut head = Head {
        head_len,
        post: req.method == Some("POST"),
        get: req.method == Some("GET"),
        target: req.path.unwrap_or("/").to_owned(),
        accept: None,
        content_length: None,
        chunked: false,
        keep_alive: !http10,
        expect_continue: false,
        kind: None,
        host: None,
        origin: None,
        fetch_site: None,
        navigation: false,
        encoded: None,
        bearer: None,
    };
    let (mut fetch_mode_navigate, mut fetch_dest_document) = (false, false);
    for h in req.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            // A header this server reads must mean the same to every reader: one with bytes
            // that are not text is refused, not skipped (a proxy might honour it).
            const READ: [&str; 10] = [
                "authorization",
                "content-length",
                "transfer-encoding",
                "host",
                "content-encoding",
                "content-type",
                "connection",
                "expect",
                "origin",
                "sec-fetch-site",
            ];
            if READ.iter().any(|n| h.name.eq_ignore_ascii_case(n)) {
                return Parsed::Invalid(format!("the {} header is not text", h.name));
            }
            continue;
        };
        let value = value.trim_matches([' ', '\t']);
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            match content_length(value) {
                Some(n) if head.content_length.is_none_or(|old| old == n) => head.content_length = Some(n),
                _ => return Parsed::Invalid(format!("bad Content-Length '{value}'")),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = true;
        } else if name.eq_ignore_ascii_case("host") {
            if head.host.is_some() {
                return Parsed::Invalid("more than one Host header".to_owned());
            }
            head.host = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("authorization") {
            let bearer = value.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
            head.bearer = bearer.map(|(_, secret)| secret.trim().to_owned());
        } else if name.eq_ignore_ascii_case("accept") {
            head.accept = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("origin") {
            head.origin = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("sec-fetch-site") {
            head.fetch_site = Some(value.to_ascii_lowercase());
        } else if name.eq_ignore_ascii_case("sec-fetch-mode") {
            fetch_mode_navigate = value.eq_ignore_ascii_case("navigate");
        } else if name.eq_ignore_ascii_case("sec-fetch-dest") {
            fetch_dest_document = value.eq_ignore_ascii_case("document");
        } else if name.eq_ignore_ascii_case("content-encoding") {
            if !value.eq_ignore_ascii_case("identity") {
                head.encoded = Some(value.to_owned());
            }
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                head.keep_alive = false;
            } else if v.contains("keep-alive") {
                head.keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("content-type") {
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
    head.navigation = fetch_mode_navigate && fetch_dest_document;
    if head.chunked && head.content_length.is_some() {
        return Parsed::Invalid("both Transfer-Encoding and Content-Length".to_owned());
    }
    if !http10 && head.host.is_none() {
        return Parsed::Invalid("HTTP/1.1 requires a Host header".to_owned());
    }
    Parsed::Head(head)
}

/// A Content-Length as RFC 9110 writes it: digits only, and no leading zero (which proxies
/// read differently, as octal or not at all).
fn content_length(v: &str) -> Option<usize> {
    let digits = v.as_bytes();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    v.parse().ok()
}

/// Whether a listener with `rule` may serve a request whose Host header is `host` (a name or
/// an address, maybe with a port). A browser tricked by DNS rebinding sends the attacker's name.
pub fn host_allowed(host: &str, rule: HostRule) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, port)) if port.is_empty() || valid_port(port) => ip,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if valid_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let ip = name.parse::<std::net::IpAddr>().ok();
    let loopback = name.eq_ignore_ascii_case("localhost") || ip.is_some_and(|ip| ip.is_loopback());
    match rule {
        HostRule::Any => true,
        HostRule::Loopback => loopback,
        HostRule::ThisMachine => loopback || ip.is_some() || is_host_name(name),
    }
}

/// Whether `name` is this machine's host name (`uname -n`), or its first label.
fn is_host_name(name: &str) -> bool {
    let uname = rustix::system::uname();
    let node = uname.nodename().to_string_lossy();
    let short = node.split('.').next().unwrap_or_default();
    !name.is_empty() && (name.eq_ignore_ascii_case(&node) || name.eq_ignore_ascii_case(short))
}

fn valid_port(p: &str) -> bool {
    let digits = p.strip_prefix(':').unwrap_or(p);
    // RFC 3986: `port = *DIGIT` (empty allowed); no sign, at most 65535.
    digits.is_empty()
        || (digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()) && digits.parse::<u16>().is_ok())
}

/// Why a request that a browser sent on behalf of another site is refused, if it is one: an
/// `Origin` that is not this daemon's own (`http://` + its Host), or `Sec-Fetch-Site` saying
/// cross-site or same-site. Clients that are not browsers send neither.
pub fn cross_site(head: &Head) -> Option<String> {
    // A GET changes nothing, its answer goes to the page the user opened (never to the other
    // site's script), and the dashboard cannot be framed: a link from another site may open it.
    if head.get && head.navigation && head.origin.is_none() {
        return None;
    }
    if let Some(site) = &head.fetch_site {
        if site == "cross-site" || site == "same-site" {
            return Some(format!("Sec-Fetch-Site: {site}"));
        }
    }
    let origin = head.origin.as_deref()?;
    let own = head.host.as_deref().is_some_and(|host| {
        ["http://", "https://"].iter().any(|scheme| {
            let (origin, scheme, host) = (origin.as_bytes(), scheme.as_bytes(), host.as_bytes());
            origin.len() == scheme.len() + host.len()
                && origin[..scheme.len()].eq_ignore_ascii_case(scheme)
                && origin[scheme.len()..].eq_ignore_ascii_case(host)
        })
    });
    (!own).then(|| format!("Origin: {origin}"))
}

/// The kind of a body with no usable Content-Type: XML starts with `<`, JSON with `{` or `[`.
pub fn sniff(body: &[u8]) -> BodyKind {
    // A UTF-16 document (BOM, or `<` with a zero byte beside it) is XML too.
    if matches!(body, [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..] | [b'<', 0, ..] | [0, b'<', ..]) {
        return BodyKind::Xml;
    }
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
        404 => "Not Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
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
        out.extend_from_slice(b"Allow: GET, POST\r\n");
    }
    if status == 401 {
        out.extend_from_slice(b"WWW-Authenticate: Bearer\r\n");
    }
    if status != 204 {
        let _ = write!(out, "Content-Type: {content_type}\r\nContent-Length: {len}\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a whole response to a `GET`: `headers` are extra lines, each ending in CRLF.
pub fn write_page(out: &mut Vec<u8>, status: u16, content_type: &str, headers: &str, body: &[u8], keep_alive: bool) {
    write_head(out, status, content_type, body.len(), keep_alive);
    // The head ends in an empty line: the extra headers go before it.
    out.truncate(out.len() - 2);
    out.extend_from_slice(headers.as_bytes());
    out.extend_from_slice(b"X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n\r\n");
    out.extend_from_slice(body);
}

/// Appends the head of a server-sent event stream: its body is the events, until either side
/// closes the connection.
pub fn write_stream_head(out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nServer: tomte\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
          X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
    );
}

/// The value of parameter `name` in the query of `target` (`/events?pattern=a&pattern=b`),
/// each occurrence percent-decoded (`+` as a space); a parameter without `=` has the value "".
pub fn query_values<'a>(target: &'a str, name: &'a str) -> impl Iterator<Item = String> + 'a {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    query.split('&').filter_map(move |pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// The path of `target`, without its query.
pub fn path_of(target: &str) -> &str {
    target.split_once('?').map_or(target, |(p, _)| p)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends a whole plain-text error response; the connection is closed after it.
pub fn write_error(out: &mut Vec<u8>, status: u16, text: &str) {
    let body = format!("{text}\n");
    write_head(out, status, "text/plain; charset=utf-8", body.len(), false);
    out.extend_from_slice(body.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded_and_repeated() {
        let t = "/events?pattern=daemon.worker.%2A&x=1&pattern=app.%2a+b&pattern&bad=%zz%4";
        assert_eq!(path_of(t), "/events");
        assert_eq!(query_values(t, "pattern").collect::<Vec<_>>(), ["daemon.worker.*", "app.* b", ""]);
        assert_eq!(query_values(t, "bad").collect::<Vec<_>>(), ["%zz%4"]);
        assert_eq!(query_values("/readyz", "verbose").count(), 0);
        assert_eq!(query_values("/readyz?verbose", "verbose").collect::<Vec<_>>(), [""]);
        // Bytes that are not UTF-8 become replacement characters, never a panic.
        assert_eq!(query_values("/?p=%ff%fe", "p").collect::<Vec<_>>(), ["\u{fffd}\u{fffd}"]);
    }

    #[test]
    fn a_page_carries_its_headers_before_the_empty_line() {
        let mut out = Vec::new();
        write_page(&mut out, 200, "text/plain", "X-A: b\r\n", b"body", true);
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(body, "body");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.contains("\r\nX-A: b\r\n"), "{head}");
        assert!(head.contains("Content-Length: 4") && head.contains("X-Content-Type-Options: nosniff"), "{head}");
    }
}
