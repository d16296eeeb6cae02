//! `tomte-bench tls`: HTTP JSON-RPC over TLS against the same over plain TCP, on one echo
//! daemon with both listeners; the TLS handshake rate (a new connection per call); and the
//! idle memory of a daemon with a TLS listener. Certificates are made with `openssl`.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::ClientConfig;
use tomte::client::ClientFiles;

use crate::compare::{free_port, median};
use crate::load::{self, http_request, response_len};

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl").current_dir(dir).args(args).output().context("run openssl")?;
    if !out.status.success() {
        bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A CA and a server certificate for 127.0.0.1 (P-256), in `dir`.
fn certificates(dir: &Path) -> Result<()> {
    std::fs::write(dir.join("ext.cnf"), "[srv]\nsubjectAltName=IP:127.0.0.1\n")?;
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(dir, &[&["req", "-x509"], &ec[..], &["-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=ca"]].concat())?;
    openssl(dir, &[&["req"], &ec[..], &["-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=srv"]].concat())?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "1",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "srv",
        ],
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("srv.key"), std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// Runs the TLS figures and prints them; returns whether every target was met.
pub fn run(echo: &Path, seconds: f64, rounds: usize) -> Result<bool> {
    let dir = std::path::PathBuf::from(format!("/tmp/tomte-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(echo, &dir, Duration::from_secs_f64(seconds), rounds);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

struct Daemon<'a> {
    echo: &'a Path,
    args: Vec<String>,
}

impl Daemon<'_> {
    fn start(&self) -> Result<u32> {
        let out = Command::new(self.echo).arg("start").args(&self.args).output()?;
        if !out.status.success() {
            bail!("echo start failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(std::fs::read_to_string(&self.args[self.args.len() - 1])?.trim().parse()?)
    }
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.echo).arg("stop").args(&self.args).output();
    }
}

fn run_in(echo: &Path, dir: &Path, time: Duration, rounds: usize) -> Result<bool> {
    certificates(dir)?;
    let path = |n: &str| dir.join(n).display().to_string();
    let (tcp, tls) = (free_port()?, free_port()?);
    let daemon = Daemon {
        echo,
        args: vec![
            "--socket".into(),
            format!("tcp://127.0.0.1:{tcp}"),
            "--socket".into(),
            format!("tls://127.0.0.1:{tls}"),
            "--tls-cert".into(),
            path("srv.pem"),
            "--tls-key".into(),
            path("srv.key"),
            "--pidfile".into(),
            path("echo.pid"),
        ],
    };
    let pid = daemon.start()?;
    let config = tomte::net::tls::client_config(&ClientFiles { ca: dir.join("ca.pem"), cert: None, key: None })?;
    let at = |port| SocketAddr::from(([127, 0, 0, 1], port));

    println!("tomte TLS benchmark ({rounds} alternating rounds of {time:?}, medians; one daemon, both listeners)");
    let (mut plain, mut secure) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        plain.push(load::http(at(tcp), 64, time)?);
        secure.push(https(at(tls), 64, time, &config)?);
    }
    let (plain, secure) = (median(plain), median(secure));
    println!(
        "  {:<44} tcp {:>10.0}/s   tls {:>10.0}/s   ratio {:.2}",
        "HTTP JSON-RPC, 64 keep-alive connections",
        plain,
        secure,
        secure / plain
    );
    let (mut fresh_tcp, mut fresh_tls) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        fresh_tcp.push(new_connection_per_call(at(tcp), None, time)?);
        fresh_tls.push(new_connection_per_call(at(tls), Some(&config), time)?);
    }
    let (fresh_tcp, fresh_tls) = (median(fresh_tcp), median(fresh_tls));
    println!(
        "  {:<44} tcp {:>10.0}/s   tls {:>10.0}/s",
        "a new connection per call (handshakes), one client", fresh_tcp, fresh_tls
    );
    drop(daemon);
    let _ = pid;

    // Idle memory of a daemon with a TLS listener configured (certificate loaded).
    let idle = Daemon {
        echo,
        args: vec![
            "--socket".into(),
            format!("tls://127.0.0.1:{}", free_port()?),
            "--tls-cert".into(),
            path("srv.pem"),
            "--tls-key".into(),
            path("srv.key"),
            "--pidfile".into(),
            path("idle.pid"),
        ],
    };
    let pid = idle.start()?;
    std::thread::sleep(Duration::from_millis(500));
    let (rss, anon) = (crate::procfs::status_kb(pid, "VmRSS")?, crate::procfs::status_kb(pid, "RssAnon")?);
    drop(idle);

    let ratio = secure / plain;
    println!("\n  {:<26} {:>12}  {:<12} result", "target", "measured", "wanted");
    let lines = [
        ("TLS / TCP, 64 conns", format!("{ratio:.2}"), ">= 0.80", ratio >= 0.8),
        ("TLS handshakes", format!("{fresh_tls:.0}/s"), "(reported)", true),
        ("idle RSS, TLS listener", format!("{rss} kB"), "(reported)", true),
        ("idle RssAnon, TLS listener", format!("{anon} kB"), "<= 400 kB", anon <= 400),
    ];
    for (what, measured, target, met) in &lines {
        println!("  {what:<26} {measured:>12}  {target:<12} {}", if *met { "met" } else { "NOT MET" });
    }
    Ok(lines.iter().all(|l| l.3))
}

/// One TLS client connection of the load: socket, session, answers read so far.
struct Conn {
    tcp: TcpStream,
    tls: rustls::ClientConnection,
    buf: Vec<u8>,
    live: bool,
}

impl Conn {
    /// Pushes pending records; spins while the socket is full (requests are small).
    fn send(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what the socket has, decrypted into `buf`.
    fn receive(&mut self, tmp: &mut [u8]) -> io::Result<()> {
        loop {
            match self.tls.read_tls(&mut self.tcp) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
            self.tls.process_new_packets().map_err(io::Error::other)?;
            loop {
                match self.tls.reader().read(tmp) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        self.send()
    }
}

/// `conns` keep-alive HTTP connections over TLS, one call in flight on each, driven by one
/// thread as [`load::http`] drives TCP; calls per second (handshakes not counted).
pub fn https(addr: SocketAddr, conns: usize, time: Duration, config: &Arc<ClientConfig>) -> io::Result<f64> {
    let request = http_request();
    let mut poll = Poll::new()?;
    let mut streams = Vec::with_capacity(conns);
    for i in 0..conns {
        let std = std::net::TcpStream::connect(addr)?;
        std.set_nodelay(true)?;
        std.set_nonblocking(true)?;
        let mut tcp = TcpStream::from_std(std);
        poll.registry().register(&mut tcp, Token(i), Interest::READABLE)?;
        let tls = tomte::net::tls::client_connection(config, &addr.ip().to_string())?;
        streams.push(Conn { tcp, tls, buf: Vec::with_capacity(4096), live: true });
    }
    // The request goes out with the handshake's last flight.
    for c in &mut streams {
        c.tls.writer().write_all(request.as_bytes())?;
        c.send()?;
    }
    let mut events = Events::with_capacity(conns);
    let mut tmp = vec![0u8; 64 << 10];
    let mut start = None;
    let (mut done, mut open) = (0u64, conns);
    while open > 0 {
        poll.poll(&mut events, Some(Duration::from_secs(10)))?;
        if events.is_empty() {
            return Err(io::Error::other("HTTPS load: no answer for 10 s"));
        }
        for ev in events.iter() {
            let c = &mut streams[ev.token().0];
            c.receive(&mut tmp)?;
            while let Some(len) = response_len(&c.buf)? {
                c.buf.drain(..len);
                let started = *start.get_or_insert_with(Instant::now);
                done += 1;
                if c.live && started.elapsed() < time {
                    c.tls.writer().write_all(request.as_bytes())?;
                    c.send()?;
                } else if c.live {
                    c.live = false;
                    open -= 1;
                }
            }
        }
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed()).as_secs_f64();
    Ok(done.saturating_sub(conns as u64) as f64 / elapsed.max(1e-9))
}

/// One call per new connection, one after another (with `tls`, a full handshake each):
/// connections per second.
fn new_connection_per_call(addr: SocketAddr, tls: Option<&Arc<ClientConfig>>, time: Duration) -> Result<f64> {
    let request = http_request();
    let (start, mut calls) = (Instant::now(), 0u64);
    let mut answer = Vec::new();
    while start.elapsed() < time {
        let tcp = std::net::TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        answer.clear();
        match tls {
            None => exchange(tcp, request.as_bytes(), &mut answer)?,
            Some(config) => {
                let session = tomte::net::tls::client_connection(config, &addr.ip().to_string())?;
                exchange(rustls::StreamOwned::new(session, tcp), request.as_bytes(), &mut answer)?;
            }
        }
        calls += 1;
    }
    Ok(calls as f64 / start.elapsed().as_secs_f64())
}

/// Writes one request and reads its one response.
fn exchange(mut s: impl Read + Write, request: &[u8], answer: &mut Vec<u8>) -> Result<()> {
    s.write_all(request)?;
    s.flush()?;
    let mut tmp = [0u8; 4096];
    while response_len(answer)?.is_none() {
        let n = s.read(&mut tmp)?;
        if n == 0 {
            bail!("closed before answering");
        }
        answer.extend_from_slice(&tmp[..n]);
    }
    Ok(())
}
