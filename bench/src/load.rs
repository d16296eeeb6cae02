//! The load generator: the same client code drives tomte and the floors.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

pub const REQUEST: &str = r#"{"jsonrpc":"2.0","method":"my.echo","params":["hello"],"id":1}"#;
const ANSWER: &str = r#"{"jsonrpc":"2.0","result":"hello","id":1}"#;

fn check(answer: &[u8]) -> io::Result<()> {
    if answer.strip_suffix(b"\n").unwrap_or(answer) == ANSWER.as_bytes() {
        Ok(())
    } else {
        Err(io::Error::other(format!("unexpected answer: {}", String::from_utf8_lossy(answer))))
    }
}

/// One call at a time on one connection; calls per second.
pub fn sequential(path: &Path, time: Duration) -> io::Result<f64> {
    let mut r = BufReader::new(UnixStream::connect(path)?);
    let req = format!("{REQUEST}\n");
    let mut line = Vec::new();
    let (start, mut calls) = (Instant::now(), 0u64);
    while start.elapsed() < time {
        for _ in 0..100 {
            r.get_mut().write_all(req.as_bytes())?;
            line.clear();
            r.read_until(b'\n', &mut line)?;
        }
        calls += 100;
    }
    check(&line)?;
    Ok(calls as f64 / start.elapsed().as_secs_f64())
}

/// `depth` calls in flight on one connection; calls per second.
pub fn pipelined(path: &Path, depth: usize, time: Duration) -> io::Result<f64> {
    pipelined_calls(path, REQUEST, check, depth, time)
}

/// `depth` calls of `request` (one JSON-RPC line, without its newline) in flight on one
/// connection, the first answer checked by `check`; calls per second.
pub fn pipelined_calls(
    path: &Path,
    request: &str,
    check: fn(&[u8]) -> io::Result<()>,
    depth: usize,
    time: Duration,
) -> io::Result<f64> {
    let mut s = UnixStream::connect(path)?;
    let batch = format!("{request}\n").repeat(depth);
    let one = request.len() + 1;
    s.write_all(batch.as_bytes())?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut have, mut done, mut in_flight) = (0usize, 0u64, depth);
    let start = Instant::now();
    while in_flight > 0 {
        let n = s.read(&mut buf[have..])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let scan_from = have;
        have += n;
        let got = memchr::memchr_iter(b'\n', &buf[scan_from..have]).count();
        if got > 0 {
            let last = buf[..have].iter().rposition(|&b| b == b'\n').unwrap();
            if done == 0 {
                check(&buf[..buf.iter().position(|&b| b == b'\n').unwrap()])?;
            }
            buf.copy_within(last + 1..have, 0);
            have -= last + 1;
        }
        done += got as u64;
        in_flight -= got;
        if start.elapsed() < time && got > 0 {
            s.write_all(&batch.as_bytes()[..got * one])?;
            in_flight += got;
        }
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

/// `conns` keep-alive HTTP connections over TCP, one call in flight on each; calls per second.
pub fn http(addr: SocketAddr, conns: usize, time: Duration) -> io::Result<f64> {
    let request = http_request();
    let mut poll = Poll::new()?;
    let mut streams = Vec::with_capacity(conns);
    for i in 0..conns {
        let std = std::net::TcpStream::connect(addr)?;
        std.set_nodelay(true)?;
        std.set_nonblocking(true)?;
        let mut s = TcpStream::from_std(std);
        poll.registry().register(&mut s, Token(i), Interest::READABLE)?;
        streams.push((s, Vec::<u8>::with_capacity(4096), true));
    }
    for (s, _, _) in &mut streams {
        write_all(s, request.as_bytes())?;
    }
    let mut events = Events::with_capacity(conns);
    let mut tmp = vec![0u8; 64 << 10];
    let (start, mut done, mut open) = (Instant::now(), 0u64, conns);
    while open > 0 {
        poll.poll(&mut events, Some(Duration::from_secs(10)))?;
        if events.is_empty() {
            return Err(io::Error::other("HTTP load: no answer for 10 s"));
        }
        for ev in events.iter() {
            let (s, buf, live) = &mut streams[ev.token().0];
            loop {
                match s.read(&mut tmp) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            while let Some(len) = response_len(buf)? {
                if done == 0 {
                    check(&buf[len - ANSWER.len()..len])?;
                }
                buf.drain(..len);
                done += 1;
                if *live && start.elapsed() < time {
                    write_all(s, request.as_bytes())?;
                } else if *live {
                    *live = false;
                    open -= 1;
                }
            }
        }
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

/// [`REQUEST`] as an HTTP/1.1 keep-alive POST.
pub(crate) fn http_request() -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{REQUEST}",
        REQUEST.len()
    )
}

/// The length of the first complete response in `buf`, if there is one.
pub(crate) fn response_len(buf: &[u8]) -> io::Result<Option<usize>> {
    let Some(head) = memchr::memmem::find(buf, b"\r\n\r\n") else { return Ok(None) };
    let head_text = std::str::from_utf8(&buf[..head]).map_err(io::Error::other)?;
    if !head_text.starts_with("HTTP/1.1 200") {
        return Err(io::Error::other(format!("unexpected response: {head_text}")));
    }
    let len: usize = head_text
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other("response without Content-Length"))?;
    Ok((buf.len() >= head + 4 + len).then_some(head + 4 + len))
}

fn write_all(s: &mut TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match s.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The XML-RPC form of [`REQUEST`].
pub const XML_REQUEST: &str = "<?xml version=\"1.0\"?><methodCall><methodName>my.echo</methodName><params><param><value><string>hello</string></value></param></params></methodCall>";

/// One XML-RPC call at a time over HTTP/1.1 keep-alive on a unix socket; calls per second.
pub fn xml_http_sequential(path: &Path, time: Duration) -> io::Result<f64> {
    xml_http_calls(path, XML_REQUEST, b"hello", time)
}

/// One call of `method_call` (a whole XML-RPC `<methodCall>` document) at a time, POSTed to
/// `/RPC2` over HTTP/1.1 keep-alive on a unix socket, for `time`; calls per second. The last
/// answer must contain `expect`.
pub fn xml_http_calls(path: &Path, method_call: &str, expect: &[u8], time: Duration) -> io::Result<f64> {
    let request = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{method_call}",
        method_call.len()
    );
    let mut r = BufReader::new(UnixStream::connect(path)?);
    let mut body = Vec::new();
    let (start, mut calls) = (Instant::now(), 0u64);
    while start.elapsed() < time {
        for _ in 0..100 {
            r.get_mut().write_all(request.as_bytes())?;
            let mut len = 0;
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().map_err(io::Error::other)?;
                }
            }
            body.resize(len, 0);
            r.read_exact(&mut body)?;
        }
        calls += 100;
    }
    if memchr::memmem::find(&body, expect).is_none() {
        return Err(io::Error::other(format!("unexpected answer: {}", String::from_utf8_lossy(&body))));
    }
    Ok(calls as f64 / start.elapsed().as_secs_f64())
}
