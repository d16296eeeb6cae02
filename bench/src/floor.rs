//! The floors: the least a single-threaded mio server must do to answer `my.echo`. tomte is
//! measured against them, so they are written to be fast, not general: no registry, no
//! validation beyond what the answer needs, no limits.

use std::io::{self, Read, Write};

use mio::net::{TcpListener, UnixListener};
use mio::{Events, Interest, Poll, Token};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    params: (std::borrow::Cow<'a, str>,),
    #[serde(borrow)]
    id: &'a RawValue,
}

/// Answers one JSON-RPC `my.echo` request into `out`.
fn answer(request: &[u8], out: &mut Vec<u8>) {
    match serde_json::from_slice::<Request>(request) {
        Ok(r) => {
            out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"result\":");
            serde_json::to_writer(&mut *out, &r.params.0).unwrap();
            out.extend_from_slice(b",\"id\":");
            out.extend_from_slice(r.id.get().as_bytes());
            out.push(b'}');
        }
        Err(_) => {
            out.extend_from_slice(br#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}"#)
        }
    }
}

struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
    len: usize,
    out: Vec<u8>,
    scratch: Vec<u8>,
}

/// Which framing a floor serves.
#[derive(Clone, Copy)]
pub enum Kind {
    Ndjson,
    Http,
}

/// Serves NDJSON on a unix socket at `path` until killed.
pub fn ndjson_unix(path: &str) -> io::Result<()> {
    let _ = std::fs::remove_file(path);
    serve(UnixListener::bind(path)?, Kind::Ndjson)
}

/// Serves HTTP on TCP `addr` until killed.
pub fn http_tcp(addr: &str) -> io::Result<()> {
    serve(TcpListener::bind(addr.parse().map_err(io::Error::other)?)?, Kind::Http)
}

trait Accept {
    type Stream: Read + Write + mio::event::Source;
    fn accept_one(&self) -> io::Result<Self::Stream>;
}
impl Accept for UnixListener {
    type Stream = mio::net::UnixStream;
    fn accept_one(&self) -> io::Result<Self::Stream> {
        self.accept().map(|(s, _)| s)
    }
}
impl Accept for TcpListener {
    type Stream = mio::net::TcpStream;
    fn accept_one(&self) -> io::Result<Self::Stream> {
        self.accept().map(|(s, _)| {
            let _ = s.set_nodelay(true);
            s
        })
    }
}

fn serve<L: Accept + mio::event::Source>(mut listener: L, kind: Kind) -> io::Result<()> {
    let mut poll = Poll::new()?;
    poll.registry().register(&mut listener, Token(usize::MAX), Interest::READABLE)?;
    let mut conns: Vec<Option<Conn<L::Stream>>> = Vec::new();
    let mut events = Events::with_capacity(256);
    loop {
        match poll.poll(&mut events, None) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        }
        for ev in events.iter() {
            if ev.token() == Token(usize::MAX) {
                while let Ok(mut stream) = listener.accept_one() {
                    let slot = conns.iter().position(Option::is_none).unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    poll.registry().register(&mut stream, Token(slot), Interest::READABLE | Interest::WRITABLE)?;
                    conns[slot] =
                        Some(Conn { stream, buf: vec![0; 64 << 10], len: 0, out: Vec::new(), scratch: Vec::new() });
                }
                continue;
            }
            let slot = ev.token().0;
            let Some(conn) = conns[slot].as_mut() else { continue };
            if !drive(conn, kind) {
                poll.registry().deregister(&mut conn.stream)?;
                conns[slot] = None;
            }
        }
    }
}

/// Reads, answers and writes until the socket would block; false when the peer is gone.
fn drive<S: Read + Write>(c: &mut Conn<S>, kind: Kind) -> bool {
    loop {
        if c.len == c.buf.len() {
            c.buf.resize(c.buf.len() * 2, 0);
        }
        match c.stream.read(&mut c.buf[c.len..]) {
            Ok(0) => return false,
            Ok(n) => c.len += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => return false,
        }
        let used = match kind {
            Kind::Ndjson => lines(c),
            Kind::Http => http(c),
        };
        c.buf.copy_within(used..c.len, 0);
        c.len -= used;
        if !c.out.is_empty() {
            // Blocking-style write: the floor's answers are small and the client reads them.
            let mut at = 0;
            while at < c.out.len() {
                match c.stream.write(&c.out[at..]) {
                    Ok(n) => at += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                    Err(_) => return false,
                }
            }
            c.out.clear();
        }
    }
    true
}

fn lines<S>(c: &mut Conn<S>) -> usize {
    let mut start = 0;
    while let Some(i) = memchr::memchr(b'\n', &c.buf[start..c.len]) {
        answer(&c.buf[start..start + i], &mut c.out);
        c.out.push(b'\n');
        start += i + 1;
    }
    start
}

fn http<S>(c: &mut Conn<S>) -> usize {
    let mut start = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = req.parse(&c.buf[start..c.len]) else { return start };
        let len: usize = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
            .unwrap_or(0);
        if c.len - start < head + len {
            return start;
        }
        c.scratch.clear();
        answer(&c.buf[start + head..start + head + len], &mut c.scratch);
        let _ = write!(
            c.out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            c.scratch.len()
        );
        c.out.extend_from_slice(&c.scratch);
        start += head + len;
    }
}
