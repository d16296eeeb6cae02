//! One client connection: a non-blocking state machine with its own read and write buffers.
//!
//! The loop calls [`Conn::drive`] whenever the socket is ready. It reads what is there, serves
//! every complete message, and writes what it can; a half message simply waits in the buffer,
//! so a slow or stuck client never delays another. A client that does not read its answers is
//! not read from either once its unsent answers pass a high-water mark (back-pressure).

use std::io::{self, Read, Write};
use std::time::Instant;

use super::http::{self, BodyKind, Parsed};
use tomte_rpc::{Fault, Pending, Served, Value};

use super::{Dialect, Limits, Service, Stream};

const INITIAL_BUF: usize = 8 << 10;
/// Buffers larger than this are given back once empty.
const KEEP_BUF: usize = 64 << 10;
/// Unsent output past which the connection stops reading requests.
const HIGH_WATER: usize = 4 << 20;
/// Reads per drive before yielding to other connections (fairness under a flood).
const READS_PER_DRIVE: usize = 16;
const JSON: &str = "application/json";
const XML: &str = "text/xml; charset=utf-8";
/// The longest HTTP head accepted.
const MAX_HEAD: usize = 64 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// Native listener, nothing read yet: the first byte decides.
    Sniff,
    Ndjson,
    Http,
    Comodojo,
}

/// What the loop should do with a connection after driving it.
#[derive(Debug, PartialEq, Eq)]
pub enum Drive {
    /// Wait for the next readiness event.
    Open,
    /// It yielded with work left: drive it again soon, without waiting for an event.
    MoreWork,
    /// It is finished: deregister and drop it.
    Closed,
}

/// A client connection.
#[derive(Debug)]
pub struct Conn {
    pub stream: Stream,
    /// Where the client came from, for logs and events.
    pub peer: String,
    framing: Framing,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Where the search for the next line terminator resumes.
    scanned: usize,
    out: Vec<u8>,
    out_pos: usize,
    scratch: Vec<u8>,
    continue_sent: bool,
    close_after_flush: bool,
    /// An answer still owed: nothing else is served until it is written.
    waiting: Option<Waiting>,
    pub last_active: Instant,
}

/// An answer the connection waits for, and how to frame it.
#[derive(Debug)]
struct Waiting {
    ticket: Option<u64>,
    pending: Pending,
    /// For HTTP: whether the connection stays open after the answer.
    http_keep_alive: Option<bool>,
}

impl Conn {
    pub fn new(stream: Stream, peer: String, dialect: Dialect, svc: &mut impl Service) -> Conn {
        let mut conn = Conn {
            stream,
            peer,
            framing: match dialect {
                Dialect::Native => Framing::Sniff,
                Dialect::Comodojo => Framing::Comodojo,
            },
            buf: Vec::new(),
            start: 0,
            end: 0,
            scanned: 0,
            out: Vec::new(),
            out_pos: 0,
            scratch: Vec::new(),
            continue_sent: false,
            close_after_flush: false,
            waiting: None,
            last_active: Instant::now(),
        };
        if dialect == Dialect::Comodojo {
            svc.comodojo_greeter(&mut conn.out);
        }
        conn
    }

    /// A connection refused for being one too many: it gets `error` and is closed.
    pub fn refuse(&mut self, error: &[u8]) {
        self.out.extend_from_slice(error);
        self.close_after_flush = true;
    }

    /// The ticket of the answer this connection waits for, if it waits for one.
    pub fn waiting_ticket(&self) -> Option<u64> {
        self.waiting.as_ref().and_then(|w| w.ticket)
    }

    /// Writes the answer the connection waited for, then serves what it buffered meanwhile.
    /// Call [`Conn::drive`] afterwards to send it.
    pub fn complete(&mut self, result: &Result<Value, Fault>, svc: &mut impl Service, limits: &Limits) {
        let Some(w) = self.waiting.take() else { return };
        match w.http_keep_alive {
            Some(keep_alive) => {
                self.scratch.clear();
                w.pending.complete(result, &mut self.scratch);
                let ctype = if w.pending.is_xml() { XML } else { JSON };
                http::write_head(&mut self.out, 200, ctype, self.scratch.len(), keep_alive);
                self.out.extend_from_slice(&self.scratch);
                if !keep_alive {
                    self.close_after_flush = true;
                }
            }
            None => {
                w.pending.complete(result, &mut self.out);
                if self.framing == Framing::Ndjson {
                    self.out.push(b'\n');
                }
            }
        }
        if !self.close_after_flush {
            self.serve(svc, limits);
        }
    }

    /// Starts waiting for a deferred answer (or answers at once when nobody holds a ticket).
    fn wait_for(
        &mut self,
        pending: Pending,
        ticket: Option<u64>,
        http_keep_alive: Option<bool>,
        svc: &mut impl Service,
        limits: &Limits,
    ) {
        self.waiting = Some(Waiting { ticket, pending, http_keep_alive });
        if ticket.is_none() {
            let fault = Fault::internal("the method deferred its answer without asking anyone");
            self.complete(&Err(fault), svc, limits);
        }
    }

    /// Whether it waits for a deferred answer.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// Whether answers are waiting to be written.
    pub fn has_output(&self) -> bool {
        self.out_pos < self.out.len()
    }

    /// Reads, serves and writes as far as the socket allows.
    pub fn drive(&mut self, svc: &mut impl Service, limits: &Limits) -> Drive {
        let mut reads = 0;
        loop {
            match self.flush() {
                Err(_) => return Drive::Closed,
                Ok(false) if self.close_after_flush || self.out.len() - self.out_pos > HIGH_WATER => {
                    return Drive::Open
                }
                Ok(_) => {}
            }
            if self.close_after_flush && self.waiting.is_none() {
                return if self.has_output() { Drive::Open } else { Drive::Closed };
            }
            if self.waiting.is_some() && (self.close_after_flush || self.end == self.buf.len()) {
                // Serve nothing more until the owed answer is written (see `complete`); what
                // arrives meanwhile waits in the buffer, read only so that a client that leaves
                // is noticed.
                return Drive::Open;
            }
            if reads == READS_PER_DRIVE {
                return Drive::MoreWork;
            }
            reads += 1;
            if self.waiting.is_none() && !self.make_room(limits) {
                self.too_large(limits);
                continue;
            }
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    // The client finished sending (maybe only its half): answer, then close. A
                    // last NDJSON or comodojo line without its newline is still a message.
                    if self.framing != Framing::Http && self.end > self.start && self.make_room(limits) {
                        self.buf[self.end] = b'\n';
                        self.end += 1;
                        self.serve(svc, limits);
                    }
                    self.close_after_flush = true;
                }
                Ok(n) => {
                    self.end += n;
                    self.last_active = Instant::now();
                    self.serve(svc, limits);
                }
                // Nothing new was served since the flush at the top of this turn.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drive::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Drive::Closed,
            }
        }
    }

    /// Writes pending output; Ok(true) when all of it went.
    fn flush(&mut self) -> io::Result<bool> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out_pos += n;
                    self.last_active = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        // An idle connection keeps small buffers, whatever the size of its last answer.
        if self.out.capacity() > KEEP_BUF {
            self.out = Vec::new();
        }
        if self.scratch.capacity() > KEEP_BUF {
            self.scratch = Vec::new();
        }
        Ok(true)
    }

    /// Ensures free space after `end`; false when a message has outgrown the limit.
    fn make_room(&mut self, limits: &Limits) -> bool {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
            if self.buf.len() > KEEP_BUF {
                // A big message has gone: give its memory back.
                self.buf = Vec::new();
            }
        }
        if self.buf.is_empty() {
            self.buf = vec![0; INITIAL_BUF];
        }
        if self.end < self.buf.len() {
            return true;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
            return true;
        }
        // A full buffer holding one unfinished message: grow, up to the limit plus a margin
        // for framing (an HTTP head, a base64 expansion).
        let cap = limits.max_message + limits.max_message / 3 + MAX_HEAD;
        if self.buf.len() >= cap {
            return false;
        }
        self.buf.resize((self.buf.len() * 2).min(cap), 0);
        true
    }

    fn too_large(&mut self, limits: &Limits) {
        let why = format!("message exceeds the limit of {} bytes", limits.max_message);
        log::warn!("closing connection from {}: {why}", self.peer);
        match self.framing {
            Framing::Http => http::write_error(&mut self.out, 413, &why),
            Framing::Comodojo => tomte_rpc::comodojo::encode_response(false, Some(why.as_bytes()), &mut self.out),
            _ => {
                let fault = tomte_rpc::Fault::invalid_request(why);
                tomte_rpc::jsonrpc::write_error(&mut self.out, "null", &fault);
                self.out.push(b'\n');
            }
        }
        self.start = self.end;
        self.close_after_flush = true;
    }

    /// Serves every complete message in the buffer.
    fn serve(&mut self, svc: &mut impl Service, limits: &Limits) {
        if self.waiting.is_some() {
            return;
        }
        if self.framing == Framing::Sniff {
            match self.buf[self.start..self.end].iter().find(|b| !b.is_ascii_whitespace()) {
                None => return,
                Some(b'{' | b'[') => self.framing = Framing::Ndjson,
                Some(_) => self.framing = Framing::Http,
            }
        }
        match self.framing {
            Framing::Http => self.serve_http(svc, limits),
            _ => self.serve_lines(svc, limits),
        }
    }

    /// NDJSON and comodojo frames: one message per line.
    fn serve_lines(&mut self, svc: &mut impl Service, limits: &Limits) {
        let comodojo = self.framing == Framing::Comodojo;
        // A comodojo frame is base64: 4/3 of the message it carries.
        let limit = if comodojo { limits.max_message / 3 * 4 + 64 } else { limits.max_message };
        while let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..self.end]) {
            let line_end = self.scanned + i;
            let mut line = &self.buf[self.start..line_end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.len() > limit {
                self.too_large(limits);
                return;
            }
            let blank = line.iter().all(u8::is_ascii_whitespace);
            let served = match (blank, comodojo) {
                (true, _) => Served::Nothing,
                (false, true) => svc.comodojo(line, &mut self.out),
                (false, false) => svc.json(line, &mut self.out),
            };
            let ticket = svc.take_ticket();
            self.start = line_end + 1;
            self.scanned = self.start;
            match served {
                Served::Nothing => {}
                Served::Answered => {
                    if !comodojo {
                        self.out.push(b'\n');
                    }
                }
                Served::Later(pending) => return self.wait_for(pending, ticket, None, svc, limits),
            }
        }
        self.scanned = self.end;
        if self.end - self.start > limit {
            self.too_large(limits);
        }
    }

    fn serve_http(&mut self, svc: &mut impl Service, limits: &Limits) {
        while self.start < self.end && !self.close_after_flush {
            let head = match http::parse_head(&self.buf[self.start..self.end]) {
                Parsed::Partial => {
                    if self.end - self.start > MAX_HEAD {
                        self.http_fail(431, "request head too large");
                    }
                    return;
                }
                Parsed::Invalid(why) => return self.http_fail(400, &format!("malformed HTTP request: {why}")),
                Parsed::Head(h) => h,
            };
            if !head.post {
                return self.http_fail(405, "only POST is served here");
            }
            if head.chunked {
                return self.http_fail(501, "chunked request bodies are not supported; send Content-Length");
            }
            let Some(len) = head.content_length else {
                return self.http_fail(411, "Content-Length is required");
            };
            if len > limits.max_message {
                return self
                    .http_fail(413, &format!("body of {len} bytes exceeds the limit of {} bytes", limits.max_message));
            }
            let body_start = self.start + head.head_len;
            if self.end - body_start < len {
                if head.expect_continue && !self.continue_sent {
                    self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    self.continue_sent = true;
                }
                return;
            }
            let body = &self.buf[body_start..body_start + len];
            self.scratch.clear();
            let served = match head.kind.unwrap_or_else(|| http::sniff(body)) {
                BodyKind::Json => (svc.json(body, &mut self.scratch), JSON),
                BodyKind::Xml => (svc.xml(body, &mut self.scratch), XML),
                BodyKind::Other => {
                    self.start = body_start + len;
                    return self.http_fail(415, "send application/json (JSON-RPC) or text/xml (XML-RPC)");
                }
            };
            let ticket = svc.take_ticket();
            let (status, ctype) = match served {
                (Served::Answered, ctype) => (200, ctype),
                (Served::Nothing, _) => (204, ""),
                (Served::Later(pending), _) => {
                    self.start = body_start + len;
                    self.scanned = self.start;
                    self.continue_sent = false;
                    return self.wait_for(pending, ticket, Some(head.keep_alive), svc, limits);
                }
            };
            http::write_head(&mut self.out, status, ctype, self.scratch.len(), head.keep_alive);
            self.out.extend_from_slice(&self.scratch);
            self.start = body_start + len;
            self.scanned = self.start;
            self.continue_sent = false;
            if !head.keep_alive {
                self.close_after_flush = true;
            }
        }
    }

    fn http_fail(&mut self, status: u16, why: &str) {
        log::debug!("HTTP {status} to {}: {why}", self.peer);
        http::write_error(&mut self.out, status, why);
        self.start = self.end;
        self.close_after_flush = true;
    }
}
