//! Fixtures for integration tests: real daemons in fresh temp dirs, killed by pid when the
//! test ends, pass or fail.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A built binary of this workspace: an example (`target/*/examples/NAME`) or a bin.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/debug/deps/test-hash -> target/debug
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    for candidate in [dir.join("examples").join(name), dir.join(name)] {
        if candidate.exists() {
            return candidate;
        }
    }
    panic!("{name} is not built in {}: run `cargo build --workspace --examples` first", dir.display());
}

/// A fresh directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        // Short: unix socket paths are limited to 107 bytes.
        let p = PathBuf::from(format!("/tmp/tt-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free TCP port on loopback (bound then released; the daemon binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A daemon started with `start` (detached). Killed by pid on drop if still alive.
pub struct Daemon {
    pub bin: PathBuf,
    pub dir: TempDir,
    pub sock: PathBuf,
    pub pidfile: PathBuf,
    pub log: PathBuf,
    pub args: Vec<String>,
    pub pids: Vec<i32>,
    /// Environment variables of the daemon's commands.
    pub env: Vec<(String, String)>,
}

impl Daemon {
    /// A daemon of example `name` with a unix socket, a pid file and a log in a temp dir.
    pub fn new(name: &str, extra: &[&str]) -> Daemon {
        let dir = TempDir::new(name);
        let sock = dir.path("d.sock");
        let pidfile = dir.path("d.pid");
        let log = dir.path("d.log");
        let mut args = vec![
            "--socket".to_owned(),
            format!("unix://{}", sock.display()),
            "--pidfile".to_owned(),
            pidfile.display().to_string(),
            "--log".to_owned(),
            log.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Daemon { bin: binary(name), dir, sock, pidfile, log, args, pids: Vec::new(), env: Vec::new() }
    }

    /// Runs `NAME COMMAND args…` and returns its output.
    pub fn cmd(&self, command: &str) -> Output {
        Command::new(&self.bin)
            .arg(command)
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .output()
            .expect("run daemon binary")
    }

    /// `start`, asserting success; records the pid for cleanup.
    pub fn start(mut self) -> Daemon {
        let out = self.cmd("start");
        assert!(out.status.success(), "start failed: {}{}", text(&out.stdout), text(&out.stderr));
        let pid = self.pid().expect("pid file written by a ready daemon");
        self.pids.push(pid);
        self
    }

    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pidfile).ok()?.trim().parse().ok()
    }

    pub fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.sock).expect("connect to the daemon's socket");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A daemon that replaced itself (an upgrade, SIGUSR2) runs under the pid its pid file
        // names now: that one goes too, and its workers with it (they die with their parent).
        let current = self.pid().filter(|p| !self.pids.contains(p));
        for pid in self.pids.iter().copied().chain(current) {
            kill(pid, libc::SIGKILL);
        }
    }
}

pub fn kill(pid: i32, sig: i32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::from_named_raw(sig).unwrap());
    }
}

/// Whether `pid` is alive (a zombie counts as dead).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits up to `limit` for `cond`; returns whether it became true.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One NDJSON exchange on an open stream: sends `line`, returns the answer line.
pub fn ndjson<S: Read + Write>(reader: &mut BufReader<S>, line: &str) -> String {
    reader.get_mut().write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    reader.read_line(&mut answer).expect("read answer");
    answer
}

/// One my.echo("ok") over a fresh unix connection to `d`, checked; how long it took.
pub fn served(d: &Daemon) -> Duration {
    let t = Instant::now();
    let mut r = BufReader::new(d.connect());
    let v = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"my.echo","params":["ok"],"id":1}"#));
    assert_eq!(v["result"], "ok", "{v}");
    t.elapsed()
}

/// Reads one HTTP response (head + Content-Length body) from `r`.
pub fn http_response<R: BufRead>(r: &mut R) -> (u16, Vec<(String, String)>, String) {
    let mut status_line = String::new();
    r.read_line(&mut status_line).unwrap();
    let status: u16 = status_line.split_whitespace().nth(1).expect("status line").parse().unwrap();
    let mut headers = Vec::new();
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        if k.eq_ignore_ascii_case("content-length") {
            len = v.trim().parse().unwrap();
        }
        headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (status, headers, text(&body))
}

pub fn http_post(path_ct: &str, body: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: {path_ct}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s:?}"))
}

// ---- helpers for the XML-RPC and comodojo tests ----

impl Daemon {
    /// Appends arguments to the command line (before `start`), e.g. another `--socket`.
    pub fn add_args(mut self, extra: &[&str]) -> Daemon {
        self.args.extend(extra.iter().map(|s| s.to_string()));
        self
    }
}

/// A field of /proc/PID/status in kB (`VmRSS`, `RssAnon`).
pub fn status_kb(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A process's resident set size in kB (VmRSS of /proc/PID/status).
pub fn vm_rss_kb(pid: i32) -> u64 {
    status_kb(pid, "VmRSS")
}

/// Standard base64 with padding (tests build frames by hand with it).
pub fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Runs `python3 -c SCRIPT ARGS…`, asserting success; returns the JSON its last stdout line holds.
pub fn python(script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3").arg("-c").arg(script).args(args).output().expect("python3 is installed");
    assert!(out.status.success(), "python failed:\n{}\n{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    json(stdout.lines().last().unwrap_or(""))
}

// ---- Workers: calls, listings, cleanup ----

/// One JSON-RPC call on a fresh connection; the whole response object.
pub fn call(d: &Daemon, method: &str, params: &str) -> serde_json::Value {
    let mut r = BufReader::new(d.connect());
    json(&ndjson(&mut r, &format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params},"id":1}}"#)))
}

pub fn workers(d: &Daemon) -> Vec<serde_json::Value> {
    call(d, "worker.list", "[]")["result"].as_array().expect("worker.list answers an array").clone()
}

pub fn worker(d: &Daemon, name: &str) -> serde_json::Value {
    workers(d).into_iter().find(|w| w["name"] == name).unwrap_or_else(|| panic!("no worker {name}"))
}

/// The pids of the daemon's workers, for cleanup: they die with it, but not if a test fails
/// before they are reaped.
pub struct Reaper(pub Vec<i32>);
impl Drop for Reaper {
    fn drop(&mut self) {
        for &pid in &self.0 {
            kill(pid, libc::SIGKILL);
        }
    }
}

pub fn pids(d: &Daemon) -> Reaper {
    // A pool's instances are listed under it.
    let all = workers(d).into_iter().flat_map(|w| match w["instances"].as_array() {
        Some(instances) => instances.clone(),
        None => vec![w],
    });
    Reaper(all.filter_map(|w| w["pid"].as_i64()).map(|p| p as i32).collect())
}

pub fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    assert!(wait_for(limit, &mut cond), "timed out waiting for {what}");
}

// ---- Foreground daemons and environments (the log tests) ----

impl Daemon {
    /// Sets an environment variable for the daemon's commands (before `start`).
    pub fn with_env(mut self, key: &str, value: &str) -> Daemon {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// `NAME run args…` with stderr into `stderr` and `env` set; its pid is killed on drop.
    /// Returns once its socket answers.
    pub fn run_foreground(&mut self, stderr: std::fs::File, env: &[(&str, &str)]) -> std::process::Child {
        let child = Command::new(&self.bin)
            .arg("run")
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn NAME run");
        self.pids.push(child.id() as i32);
        until("the foreground daemon's socket", Duration::from_secs(20), || UnixStream::connect(&self.sock).is_ok());
        child
    }
}

// ---- A process the test started in the foreground ----

/// A process a test started (a daemon under `run`, or a wrapper execing or forking it) in
/// `dir`, its stderr in `dir/stderr`; killed by pid on drop, pass or fail, while it is not
/// reaped (until then its pid cannot name another process).
pub struct Foreground {
    pub child: std::process::Child,
    pub dir: TempDir,
}

impl Foreground {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("stderr")).unwrap_or_default()
    }
    pub fn signal(&self, sig: i32) {
        kill(self.pid(), sig);
    }
    /// Waits for the exit; its code and how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("still running after {limit:?}; its log:\n{}", self.log());
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            kill(self.pid(), libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}
