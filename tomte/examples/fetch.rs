//! An I/O-bound pool: `fetcher`, `FETCH_WORKERS` workers (default 2), each running a tokio
//! runtime on a thread of its own and answering up to 64 asks at once from there
//! ([`Worker::on_ask`] answers `None`, the task answers through a [`Replier`]).
//!
//! * `fetch.delay(ms: int) -> int`: waits `ms` (at most 10 000) in a worker, then answers `ms`:
//!   100 such calls at once from a pool of 2 take about one delay, not 50;
//! * `fetch.get(url: string) -> struct {status: int, body: string}`: an HTTP/1.0 GET of `url`,
//!   which must be `http://` on a loopback host (`127.0.0.1`, `[::1]`, `localhost`) — a daemon
//!   that fetched any URL for any client would be an open proxy; the body is cut at 1 MiB, the
//!   whole fetch limited to 10 s.
//!
//! ```text
//! cargo run --example fetch -- start
//! python3 -m http.server --bind 127.0.0.1 8000 &
//! tomtectl --socket unix://$XDG_RUNTIME_DIR/fetch.sock call fetch.get url=http://127.0.0.1:8000/
//! tomtectl --socket unix://$XDG_RUNTIME_DIR/fetch.sock call fetch.delay ms=100
//! ```

use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tomte::worker::{AskId, Replier, Worker, WorkerCtx, WorkerSpec};
use tomte::{Daemon, Fault, Method, Type, Value};

/// The longest delay one call may ask for, in ms.
const MAX_DELAY: i64 = 10_000;
/// The most of a body kept.
const MAX_BODY: usize = 1 << 20;
/// How long one fetch may take.
const FETCH_LIMIT: Duration = Duration::from_secs(10);

/// A loopback `http://` URL, taken apart: the address to connect to, the Host header, the path.
#[derive(Debug, PartialEq)]
struct Target {
    connect: String,
    host: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    // Anywhere in the URL, a space or control character would let a client write its own
    // request line or headers (`http://[::1]\r\nX-Injected: 1/`).
    if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err("spaces or control characters in the URL".to_owned());
    }
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or("an unclosed [")?;
            match after {
                "" => (h, None),
                _ => (h, Some(after.strip_prefix(':').ok_or("only :PORT may follow [::1]")?)),
            }
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port: u16 = port.map_or(Ok(80), |p| p.parse().map_err(|_| format!("the port {p:?}")))?;
    let ip = match host {
        "localhost" => "127.0.0.1",
        "127.0.0.1" => "127.0.0.1",
        "::1" => "::1",
        other => return Err(format!("{other:?} is not a loopback host (127.0.0.1, [::1], localhost)")),
    };
    let connect = if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
    Ok(Target {
        connect,
        host: authority.to_owned(),
        path: if path.is_empty() { "/".to_owned() } else { path.to_owned() },
    })
}

/// One GET. Written by hand: a loopback HTTP/1.0 request and its status line need no HTTP
/// client crate.
async fn get(t: Target) -> Result<Value, Fault> {
    let io = |e: std::io::Error| Fault::internal(format!("fetching from {}: {e}", t.connect));
    let mut stream = tokio::net::TcpStream::connect(&t.connect).await.map_err(io)?;
    let request = format!("GET {} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n", t.path, t.host);
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut response = Vec::new();
    stream.take((MAX_BODY + 64 * 1024) as u64).read_to_end(&mut response).await.map_err(io)?;
    let head_end =
        response.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| io(std::io::ErrorKind::InvalidData.into()))?;
    let head = String::from_utf8_lossy(&response[..head_end]);
    let status: i64 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = &response[head_end + 4..];
    let body = String::from_utf8_lossy(&body[..body.len().min(MAX_BODY)]).into_owned();
    Ok(Value::structure([("status", Value::from(status)), ("body", Value::from(body))]))
}

#[derive(Default)]
struct Fetcher {
    runtime: Option<tokio::runtime::Handle>,
}

impl Worker for Fetcher {
    fn spinup(&mut self, ctx: &mut WorkerCtx) {
        // In the worker's process, after the fork: threads are fine here.
        let (tx, rx) = std::sync::mpsc::channel();
        let name = ctx.name().to_owned();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            match rt {
                Ok(rt) => {
                    let _ = tx.send(Some(rt.handle().clone()));
                    rt.block_on(std::future::pending::<()>());
                }
                Err(e) => {
                    log::error!("worker {name}: no tokio runtime: {e}");
                    let _ = tx.send(None);
                }
            }
        });
        self.runtime = rx.recv().ok().flatten();
    }

    fn r#loop(&mut self, _ctx: &mut WorkerCtx) {}

    fn on_ask(&mut self, ask: AskId, request: Value, ctx: &mut WorkerCtx) -> Option<Result<Value, Fault>> {
        let Some(rt) = &self.runtime else { return Some(Err(Fault::internal("the worker has no runtime"))) };
        let items = match request {
            Value::Array(items) if items.len() == 2 => items,
            _ => return Some(Err(Fault::invalid_params("[what, argument]"))),
        };
        let replier: Replier = ctx.replier();
        match (items[0].as_str(), &items[1]) {
            (Some("delay"), v) => {
                let ms = v.as_i64().unwrap_or(0).clamp(0, MAX_DELAY);
                rt.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms as u64)).await;
                    replier.reply(ask, Ok(Value::from(ms)));
                });
            }
            (Some("get"), Value::String(url)) => {
                let target = match parse_url(url) {
                    Ok(t) => t,
                    Err(why) => return Some(Err(Fault::invalid_params(format!("parameter 'url': {why}")))),
                };
                rt.spawn(async move {
                    let answer = match tokio::time::timeout(FETCH_LIMIT, get(target)).await {
                        Ok(answer) => answer,
                        Err(_) => Err(Fault::internal(format!("no answer within {FETCH_LIMIT:?}"))),
                    };
                    replier.reply(ask, answer);
                });
            }
            _ => return Some(Err(Fault::invalid_params("[\"delay\", ms] or [\"get\", url]"))),
        }
        None
    }
}

#[derive(Deserialize)]
struct Delay {
    ms: i64,
}

#[derive(Deserialize)]
struct Url {
    url: String,
}

fn main() {
    let workers = match std::env::var("FETCH_WORKERS") {
        Ok(n) => n.parse().unwrap_or_else(|_| panic!("FETCH_WORKERS={n:?} is not a whole number")),
        Err(_) => 2,
    };
    let mut daemon = Daemon::new("fetch");
    daemon.worker(
        WorkerSpec::new("fetcher", Duration::from_secs(1), Fetcher::default)
            .instances(workers)
            .max_in_flight(64)
            .queue_limit(256),
    );
    daemon
        .method(
            Method::typed_async("fetch.delay", |Delay { ms }, ctx| {
                let checked = match (0..=MAX_DELAY).contains(&ms) {
                    true => Ok(ctx.ask("fetcher", Value::Array(vec![Value::from("delay"), Value::from(ms)]))),
                    false => Err(Fault::invalid_params(format!("parameter 'ms': {ms} is not from 0 to {MAX_DELAY}"))),
                };
                async move { checked?.await }
            })
            .description("Waits MS milliseconds in a worker of the pool fetcher, then answers MS")
            .returns(Type::Int),
        )
        .method(
            Method::typed_async("fetch.get", |Url { url }, ctx| {
                // Refused here, before any worker sees it.
                let checked = match parse_url(&url) {
                    Ok(_) => Ok(ctx.ask("fetcher", Value::Array(vec![Value::from("get"), Value::from(url)]))),
                    Err(why) => Err(Fault::invalid_params(format!("parameter 'url': {why}"))),
                };
                async move { checked?.await }
            })
            .description("An HTTP/1.0 GET of a loopback http:// URL, from the pool fetcher: {status, body}")
            .returns(Type::Struct),
        );
    std::process::exit(tomte::cli::main(daemon));
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn only_loopback_http_urls_are_fetched() {
        let t = parse_url("http://127.0.0.1:8000/a?b").unwrap();
        assert_eq!((t.connect.as_str(), t.path.as_str()), ("127.0.0.1:8000", "/a?b"));
        assert_eq!(parse_url("http://[::1]:81").unwrap().connect, "[::1]:81");
        assert_eq!(parse_url("http://localhost").unwrap().connect, "127.0.0.1:80");
        for bad in [
            "https://127.0.0.1/",
            "http://10.0.0.1/",
            "http://127.0.0.1.evil/",
            "http://127.0.0.1:x/",
            "http://[::1/",
            "http://[::1]\r\nX-Injected: 1/",
            "http://[::1]x/",
            "http://127.0.0.1/a b",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
