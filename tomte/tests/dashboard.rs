//! The web dashboard (`--dashboard`) in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`) driven by Selenium (PyPI) through `tests/dashboard.py`, against the
//! pool example (and the hash example's pool `hasher`) on a loopback TCP port; and its HTTP
//! headers, read with curl.
//!
//! What it needs, as `.ci/run` installs it:
//!
//! ```text
//! apt-get install -y chromium chromium-driver python3-venv curl
//! /usr/bin/python3 -m venv target/ci-venv && target/ci-venv/bin/pip install selenium
//! cargo build -p tomte --examples
//! ```
//!
//! The venv's python is `$TOMTE_TEST_PYTHON`, else `target/ci-venv/bin/python3`; without it,
//! Selenium, `chromium` or `chromedriver` the tests fail saying how to install them.
//!
//! The README's screenshot (`docs/dashboard.png`, 1200x800), not run by CI:
//! `cargo test -p tomte --test dashboard -- --ignored screenshot`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value as J};

const HOW: &str = "the dashboard tests need Chromium, its driver and Selenium: \
     `apt-get install -y chromium chromium-driver python3-venv` and \
     `/usr/bin/python3 -m venv target/ci-venv && target/ci-venv/bin/pip install selenium` \
     (or TOMTE_TEST_PYTHON=/path/to/a/python3 that imports selenium)";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf()
}

/// The first `name` on PATH.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()))
}

/// The python with Selenium, Chromium and chromedriver; or a failure saying how to get them.
fn tools() -> (PathBuf, PathBuf, PathBuf) {
    let python = std::env::var_os("TOMTE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/ci-venv/bin/python3"));
    let selenium = Command::new(&python).args(["-c", "import selenium"]).output();
    assert!(
        selenium.as_ref().is_ok_and(|o| o.status.success()),
        "{} cannot import selenium ({}): {HOW}",
        python.display(),
        selenium.map(|o| text(&o.stderr)).unwrap_or_else(|e| e.to_string())
    );
    let chromium = on_path(&["chromium", "chromium-browser"]).unwrap_or_else(|| panic!("no chromium on PATH: {HOW}"));
    let driver = on_path(&["chromedriver"]).unwrap_or_else(|| panic!("no chromedriver on PATH: {HOW}"));
    (python, chromium, driver)
}

/// One headless Chromium, driven by `tests/dashboard.py` one JSON command a line. On drop its
/// stdin closes, and the script quits the browser and chromedriver before it exits; the
/// script is killed by pid only if it has not exited a minute later.
struct Browser {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    profile: TempDir,
}

impl Browser {
    fn new(size: &str) -> Browser {
        let (python, chromium, driver) = tools();
        let profile = TempDir::new("chrome");
        let mut child = Command::new(python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard.py"))
            .arg("--chromium")
            .arg(chromium)
            .arg("--chromedriver")
            .arg(driver)
            .arg("--profile")
            .arg(&profile.0)
            .args(["--size", size])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(profile.path("python.log")).unwrap())
            .spawn()
            .expect("start tests/dashboard.py");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut b = Browser { child, stdin, stdout, profile };
        let ready = b.answer();
        assert_eq!(ready["ok"], "ready", "the browser did not start: {ready}");
        b
    }

    fn answer(&mut self) -> J {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read the browser's answer");
        if line.is_empty() {
            let log = std::fs::read_to_string(self.profile.path("python.log")).unwrap_or_default();
            let driver = std::fs::read_to_string(self.profile.path("chromedriver.log")).unwrap_or_default();
            panic!("tests/dashboard.py ended:\n{log}\nchromedriver:\n{}", tail(&driver, 3000));
        }
        json(&line)
    }

    /// Runs one command; its `ok` value, or a failure with the page's text and the console.
    fn cmd(&mut self, command: J) -> J {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{command}").and_then(|()| stdin.flush()).expect("send to the browser");
        let mut answer = self.answer();
        if answer.get("error").is_some() {
            panic!(
                "browser: {command}\nfailed: {}\npage:\n{}\nconsole: {:#}\n{}",
                answer["error"],
                answer["page"].as_str().unwrap_or("?"),
                answer["console"],
                answer["trace"].as_str().unwrap_or("")
            );
        }
        answer["ok"].take()
    }

    fn open(&mut self, url: &str) {
        self.cmd(json!({"op": "open", "url": url}));
    }

    /// Waits until worker `name`'s row reads `state`, in its cell and from the event stream.
    fn state(&mut self, name: &str, state: &str) -> J {
        self.cmd(json!({"op": "state", "worker": name, "state": state}))
    }

    fn click(&mut self, name: &str, action: &str) {
        self.cmd(json!({"op": "click", "worker": name, "action": action}));
    }

    /// The console, checked for what the Content-Security-Policy refused.
    fn no_csp_violation(&mut self) {
        let console = self.cmd(json!({"op": "console"}));
        let all = console.as_array().expect("a list");
        let refused: Vec<_> = all
            .iter()
            .filter_map(J::as_str)
            .filter(|l| l.contains("Content Security Policy") || l.contains("Refused to"))
            .collect();
        assert!(refused.is_empty(), "the page did something its CSP forbids: {refused:#?}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let quit = wait_for(Duration::from_secs(60), || self.child.try_wait().is_ok_and(|s| s.is_some()));
        if !quit {
            kill(self.child.id() as i32, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut at = s.len().saturating_sub(n);
    while !s.is_char_boundary(at) {
        at += 1;
    }
    &s[at..]
}

/// The pool example, listening on loopback TCP `port` too, with `extra` flags.
fn pool(port: u16, extra: &[&str]) -> (Daemon, Reaper) {
    let tcp = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::new("pool", &["--socket", &tcp]).add_args(extra).start();
    until("both workers looping", Duration::from_secs(30), || {
        let w = workers(&d);
        w.len() == 2 && w.iter().all(|w| w["state"] == "looping")
    });
    let reaper = pids(&d);
    (d, reaper)
}

fn state(d: &Daemon, name: &str) -> J {
    worker(d, name)["state"].clone()
}

#[test]
fn the_page_shows_both_workers_and_pauses_resumes_and_restarts_them_for_real() {
    let port = free_port();
    let (d, _reaper) = pool(port, &["--dashboard", "--allow", "anonymous=all"]);
    let mut b = Browser::new("1200x800");
    b.open(&format!("http://127.0.0.1:{port}/"));
    let rows = b.cmd(json!({"op": "rows", "names": ["alpha", "beta"]}));
    for name in ["alpha", "beta"] {
        let w = worker(&d, name);
        assert_eq!(rows[name]["name"], name);
        assert_eq!(rows[name]["pid"], w["pid"].to_string(), "{name}: {} against {w}", rows[name]);
        b.cmd(json!({"op": "wait_text", "id": "workers-body", "contains": name}));
    }
    // The status and the methods with their help.
    b.cmd(json!({"op": "wait_text", "id": "d-pid", "contains": d.pids[0].to_string()}));
    b.cmd(json!({"op": "wait_text", "id": "d-name", "contains": "pool"}));
    b.cmd(json!({"op": "wait_text", "id": "d-you", "contains": "all"}));
    b.cmd(json!({"op": "wait_text", "id": "methods-list", "contains": "pool.count"}));
    b.cmd(json!({"op": "wait_text", "id": "methods-list", "contains": "How many iterations worker NAME has run"}));
    // The sparkline: the differences of the calls served (daemon.status's `calls`, or the
    // sum of /metrics' tomte_rpc_calls_total), one a second; the total is shown.
    let points = b.cmd(json!({"op": "wait_attr", "id": "spark-line", "name": "points", "min_items": 3}));
    let rate = b.cmd(json!({"op": "text", "id": "rate-now"}));
    assert!(rate.as_str().unwrap().parse::<f64>().is_ok_and(|r| r > 0.0), "calls/s {rate}, points {points}");
    let calls = b.cmd(json!({"op": "text", "id": "d-calls"}));
    assert!(calls.as_str().unwrap().parse::<u64>().is_ok_and(|n| n > 0), "calls {calls}");

    // Pause: the button's JSON-RPC call pauses the worker, the stream tells the page.
    b.click("alpha", "pause");
    let paused = b.state("alpha", "paused");
    assert_eq!(state(&d, "alpha"), "paused", "worker.list after the page's pause");
    assert_eq!(state(&d, "beta"), "looping");
    assert!(paused["note"].as_str().unwrap().contains("pause"), "{paused}");
    b.click("alpha", "resume");
    b.state("alpha", "looping");
    assert_eq!(state(&d, "alpha"), "looping", "worker.list after the page's resume");

    // Restart: a new process, its pid in the row.
    let old = worker(&d, "beta")["pid"].as_i64().unwrap();
    b.click("beta", "restart");
    let row = b.cmd(json!({"op": "state", "worker": "beta", "state": "looping", "pid_not": old.to_string()}));
    let new = worker(&d, "beta")["pid"].as_i64().unwrap();
    assert_ne!(new, old, "beta restarted");
    assert_eq!(row["pid"], new.to_string(), "{row}");
    let _reaper_too = pids(&d);

    // A change another client makes shows too: the page follows the event stream.
    assert_eq!(call(&d, "worker.pause", r#"["beta"]"#)["result"], true);
    b.state("beta", "paused");
    b.cmd(json!({"op": "wait_text", "id": "messages", "contains": "beta paused"}));
    b.no_csp_violation();
}

#[test]
fn a_refused_action_is_shown_and_changes_nothing() {
    let port = free_port();
    // No --allow: the browser, an anonymous TCP client, holds read and call, not control.
    let (d, _reaper) = pool(port, &["--dashboard"]);
    let mut b = Browser::new("1200x800");
    b.open(&format!("http://127.0.0.1:{port}/"));
    b.cmd(json!({"op": "rows", "names": ["alpha", "beta"]}));
    b.cmd(json!({"op": "wait_text", "id": "d-you", "contains": "read, call"}));
    b.click("alpha", "pause");
    let row = b.cmd(json!({"op": "note", "worker": "alpha", "contains": "Permission denied"}));
    assert_eq!(row["note_code"], "-32001", "{row}");
    let said = b.cmd(json!({"op": "wait_text", "id": "messages", "contains": "refused"}));
    assert!(said.as_str().unwrap().contains("control"), "the message names the missing permission: {said}");
    // The refusal has been answered: nothing paused, not in the daemon nor on the page.
    assert_eq!(state(&d, "alpha"), "looping");
    assert_eq!(row["state"], "looping", "{row}");
    b.no_csp_violation();
}

#[test]
fn a_pasted_token_is_sent_as_a_bearer_and_gets_its_permissions() {
    const SECRET: &str = "d4shb0ard-0ps-t0ken";
    let port = free_port();
    let dir = TempDir::new("tokens");
    let tokens = dir.path("tokens");
    std::fs::write(&tokens, format!("ops {SECRET}\n")).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let tokens = tokens.display().to_string();
    // With a token file anonymous holds nothing but what a rule gives: here the page (read) and calls.
    let rules = ["--token-file", &tokens, "--allow", "anonymous=read,call", "--allow", "token:ops=all", "--dashboard"];
    let (d, _reaper) = pool(port, &rules);
    let mut b = Browser::new("1200x800");
    b.open(&format!("http://127.0.0.1:{port}/"));
    b.cmd(json!({"op": "rows", "names": ["alpha", "beta"]}));
    b.click("alpha", "pause");
    b.cmd(json!({"op": "note", "worker": "alpha", "contains": "Permission denied"}));
    // A wrong token: the daemon answers 401, the page says so.
    b.cmd(json!({"op": "type", "id": "token", "text": "not-the-token"}));
    b.cmd(json!({"op": "press", "id": "token-use"}));
    b.click("alpha", "pause");
    let row = b.cmd(json!({"op": "note", "worker": "alpha", "contains": "401"}));
    assert_eq!(row["note_code"], "401", "{row}");
    assert_eq!(state(&d, "alpha"), "looping");
    // The right one: kept for this tab only, sent as Authorization: Bearer, its grants used.
    b.cmd(json!({"op": "type", "id": "token", "text": SECRET}));
    b.cmd(json!({"op": "press", "id": "token-use"}));
    b.cmd(json!({"op": "wait_text", "id": "d-you", "contains": "token ops: all"}));
    let kept = b.cmd(json!({"op": "js", "script": "return [sessionStorage.getItem('tomte.token'), localStorage.length, document.getElementById('token').value]"}));
    assert_eq!(kept, json!([SECRET, 0, ""]), "in sessionStorage, nowhere else, not left in the field");
    b.click("alpha", "pause");
    b.state("alpha", "paused");
    assert_eq!(state(&d, "alpha"), "paused", "paused with the token's control");
    // Cleared: gone from the tab. (What the daemon grants next is not checked: it keeps a
    // bearer's identity for the rest of a kept-alive connection, which the browser reuses.)
    b.cmd(json!({"op": "press", "id": "token-clear"}));
    b.cmd(json!({"op": "wait_text", "id": "messages", "contains": "token cleared"}));
    let kept = b.cmd(json!({"op": "js", "script": "return sessionStorage.getItem('tomte.token')"}));
    assert_eq!(kept, J::Null);
    b.no_csp_violation();
}

/// The classic: a form on another site posts a JSON-RPC body as text/plain.
fn attack_page(port: u16) -> String {
    let name = r#"{"jsonrpc":"2.0","method":"worker.pause","params":["alpha"],"id":1,"pad":""#;
    let target = format!("http://127.0.0.1:{port}/");
    format!(
        r#"<!doctype html><html><body>
<form id="f" method="post" enctype="text/plain" action="{target}">
<input type="hidden" name='{name}' value='"}}'>
</form>
<script>
const body = JSON.stringify({{jsonrpc: "2.0", method: "worker.pause", params: ["alpha"], id: 2}});
// A simple request (no preflight) and a JSON one (preflighted): then the form.
fetch("{target}", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body}})
  .catch(() => null)
  .then(() => fetch("{target}", {{method: "POST", headers: {{"Content-Type": "application/json"}}, body}}).catch(() => null))
  .then(() => document.getElementById("f").submit());
</script>
</body></html>"#
    )
}

#[test]
fn a_cross_origin_form_post_cannot_pause_a_worker() {
    let port = free_port();
    // Anonymous holds control here: only the cross-site refusal stands in the way.
    let (d, _reaper) = pool(port, &["--dashboard", "--allow", "anonymous=all"]);
    let mut b = Browser::new("1200x800");
    let evil = b.cmd(json!({"op": "serve", "html": attack_page(port)}));
    let evil = evil.as_str().unwrap();
    assert!(!evil.ends_with(&format!(":{port}/")), "another origin: {evil}");
    b.open(evil);
    // The form was posted: the browser shows what the daemon answered it.
    let landed = b.cmd(json!({"op": "navigated", "prefix": format!("http://127.0.0.1:{port}/")}));
    let answer = landed["text"].as_str().unwrap();
    assert!(answer.contains("cross-site"), "the daemon refused the form: {landed}");
    assert!(!answer.contains("\"result\""), "{landed}");
    assert_eq!(state(&d, "alpha"), "looping", "a cross-site form must not pause a worker");
    let w = worker(&d, "alpha");
    assert_eq!(w["restarts"], 0, "{w}");
    // The same body from the dashboard itself does pause it.
    b.open(&format!("http://127.0.0.1:{port}/"));
    b.click("alpha", "pause");
    b.state("alpha", "paused");
    assert_eq!(state(&d, "alpha"), "paused");
}

/// `curl -si URL`: the status, the headers (names lowercased) and the body.
fn curl(url: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let out = Command::new("curl").args(["-si", "--max-time", "30", url]).output().expect("curl is installed");
    assert!(out.status.success(), "curl {url}: {}", text(&out.stderr));
    let split = out.stdout.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
    let head = text(&out.stdout[..split]);
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, out.stdout[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn the_dashboard_is_served_only_when_asked_with_its_security_headers() {
    let port = free_port();
    let (_d, _reaper) = pool(port, &[]);
    for path in ["/", "/index.html", "/dashboard.js", "/dashboard.css"] {
        let (status, _, _) = curl(&format!("http://127.0.0.1:{port}{path}"));
        assert_eq!(status, 404, "{path} without --dashboard");
    }

    let port = free_port();
    let (_d, _reaper) = pool(port, &["--dashboard"]);
    let csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
               base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dashboard");
    for (path, file, ctype) in [
        ("/", "index.html", "text/html"),
        ("/index.html", "index.html", "text/html"),
        ("/dashboard.js", "dashboard.js", "text/javascript"),
        ("/dashboard.css", "dashboard.css", "text/css"),
    ] {
        let (status, headers, body) = curl(&format!("http://127.0.0.1:{port}{path}"));
        assert_eq!(status, 200, "{path}: {headers:?}");
        assert!(header(&headers, "content-type").is_some_and(|c| c.starts_with(ctype)), "{path}: {headers:?}");
        assert_eq!(header(&headers, "content-security-policy"), Some(csp), "{path}");
        assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(header(&headers, "cache-control"), Some("no-store"), "{path}");
        assert_eq!(header(&headers, "referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(header(&headers, "x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(body, std::fs::read(src.join(file)).unwrap(), "{path} serves src/dashboard/{file}");
    }
    for path in ["/nope", "/dashboard.json", "/index.htm"] {
        let (status, _, _) = curl(&format!("http://127.0.0.1:{port}{path}"));
        assert_eq!(status, 404, "{path} with --dashboard");
    }
}

/// The hash example with a pool `hasher` of `n` instances, on loopback TCP `port` too, every
/// instance looping.
fn hasher(port: u16, n: usize) -> Daemon {
    let tcp = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::new("hash", &["--socket", &tcp, "--dashboard", "--allow", "anonymous=all"])
        .with_env("HASH_WORKERS", &n.to_string())
        .start();
    until(&format!("{n} instances looping"), Duration::from_secs(60), || looping(&d, n));
    d
}

/// Pool `hasher`'s instances as worker.list has them.
fn instances(d: &Daemon) -> Vec<J> {
    worker(d, "hasher")["instances"].as_array().expect("a pool lists its instances").clone()
}

/// Whether `hasher` is hasher.0..n-1, each looping.
fn looping(d: &Daemon, n: usize) -> bool {
    let i = instances(d);
    i.len() == n && i.iter().enumerate().all(|(k, w)| w["name"] == format!("hasher.{k}") && w["state"] == "looping")
}

fn instance(d: &Daemon, name: &str) -> J {
    instances(d).into_iter().find(|w| w["name"] == name).unwrap_or_else(|| panic!("no instance {name}"))
}

/// The page's rows in order: (worker, kind, pool).
fn order(b: &mut Browser) -> Vec<(String, String, Option<String>)> {
    let table = b.cmd(json!({"op": "table"}));
    let s = |v: &J| v.as_str().map(str::to_owned);
    table
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (s(&r["worker"]).unwrap(), s(&r["kind"]).unwrap(), s(&r["pool"])))
        .collect()
}

fn pool_rows(n: usize) -> Vec<(String, String, Option<String>)> {
    let mut rows = vec![("hasher".to_owned(), "pool".to_owned(), None)];
    rows.extend((0..n).map(|k| (format!("hasher.{k}"), "instance".to_owned(), Some("hasher".to_owned()))));
    rows
}

#[test]
fn a_pool_shows_its_instances_under_it_and_its_buttons_act_on_one_or_all() {
    let port = free_port();
    let d = hasher(port, 2);
    let _reaper = pids(&d);
    let mut b = Browser::new("1200x800");
    b.open(&format!("http://127.0.0.1:{port}/"));
    let rows = b.cmd(json!({"op": "rows", "names": ["hasher", "hasher.0", "hasher.1"]}));
    assert_eq!(order(&mut b), pool_rows(2), "the pool's row, then its instances'");
    assert_eq!(rows["hasher"]["pid"], "2 instances, 0 queued", "{}", rows["hasher"]);
    assert_eq!(rows["hasher"]["state"], "looping");
    for name in ["hasher.0", "hasher.1"] {
        let w = instance(&d, name);
        assert_eq!(rows[name]["pid"], w["pid"].to_string(), "{name}: {} against {w}", rows[name]);
    }
    // Asks answered show, per instance and summed for the pool.
    for _ in 0..3 {
        assert!(call(&d, "hash.sha256", r#"["abc", 1]"#)["result"].is_string());
    }
    b.cmd(json!({"op": "wait_text", "id": "workers-body", "contains": "instances"}));
    until("the page to count 3 asks for the pool", Duration::from_secs(60), || {
        order(&mut b).len() == 3 && b.cmd(json!({"op": "table"}))[0]["asks"] == "3"
    });

    // One instance: only it pauses; the pool stays looping (its liveliest instance's state).
    b.click("hasher.1", "pause");
    b.state("hasher.1", "paused");
    assert_eq!(instance(&d, "hasher.1")["state"], "paused");
    assert_eq!(instance(&d, "hasher.0")["state"], "looping");
    b.cmd(json!({"op": "shows", "worker": "hasher", "state": "looping"}));
    // The whole pool: both paused, then the pool's row; resume it all again.
    b.click("hasher", "pause");
    b.state("hasher.0", "paused");
    let pool = b.cmd(json!({"op": "shows", "worker": "hasher", "state": "paused"}));
    assert!(pool["note"].as_str().unwrap().contains("pause"), "{pool}");
    assert_eq!(worker(&d, "hasher")["state"], "paused");
    b.click("hasher", "resume");
    b.state("hasher.0", "looping");
    b.state("hasher.1", "looping");
    b.cmd(json!({"op": "shows", "worker": "hasher", "state": "looping"}));
    assert!(looping(&d, 2), "{:?}", instances(&d));

    // Scaled by another client: the new instance's row appears under the pool, live.
    assert_eq!(call(&d, "worker.scale", r#"["hasher", 3]"#)["result"]["to"], 3);
    until("hasher.2 looping", Duration::from_secs(60), || looping(&d, 3));
    let _reaper_too = pids(&d);
    b.cmd(json!({"op": "rows", "names": ["hasher.2"]}));
    b.cmd(json!({"op": "wait_text", "id": "workers-body", "contains": "3 instances"}));
    until("the page to list hasher.0..2 in order", Duration::from_secs(60), || order(&mut b) == pool_rows(3));
    // Restarted from its button: a new process, its pid in the row.
    let old = instance(&d, "hasher.2")["pid"].as_i64().unwrap();
    b.click("hasher.2", "restart");
    let row = b.cmd(json!({"op": "state", "worker": "hasher.2", "state": "looping", "pid_not": old.to_string()}));
    let new = instance(&d, "hasher.2")["pid"].as_i64().unwrap();
    assert_ne!(new, old, "hasher.2 restarted");
    assert_eq!(row["pid"], new.to_string(), "{row}");
    let _reaper_three = pids(&d);

    // Scaled down: the rows of the instances gone go too.
    assert_eq!(call(&d, "worker.scale", r#"["hasher", 1]"#)["result"]["to"], 1);
    b.cmd(json!({"op": "no_row", "worker": "hasher.2"}));
    b.cmd(json!({"op": "no_row", "worker": "hasher.1"}));
    until("the page to list hasher.0 alone", Duration::from_secs(60), || order(&mut b) == pool_rows(1));
    b.cmd(json!({"op": "wait_text", "id": "workers-body", "contains": "1 instance, 0 queued"}));
    b.no_csp_violation();
}

/// `docs/dashboard.png` for the README: the pool example under a varying load, one worker
/// paused from the page. Not a check; run by hand (see the top of this file).
#[test]
#[ignore]
fn screenshot() {
    let port = free_port();
    let (d, _reaper) = pool(port, &["--dashboard", "--allow", "anonymous=all"]);
    let mut b = Browser::new("1200x800");
    b.open(&format!("http://127.0.0.1:{port}/"));
    b.cmd(json!({"op": "rows", "names": ["alpha", "beta"]}));
    // Calls in waves, for a sparkline with a shape.
    for wave in 0..40u32 {
        let burst = 20 + 60 * ((wave / 4) % 3) + (wave % 4) * 15;
        let mut r = BufReader::new(d.connect());
        for _ in 0..burst {
            let v = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"pool.count","params":["alpha"],"id":1}"#));
            assert!(v["result"].is_i64(), "{v}");
        }
        if wave == 30 {
            b.click("beta", "pause");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    b.state("beta", "paused");
    b.cmd(json!({"op": "wait_text", "id": "methods-list", "contains": "pool.count"}));
    let png = workspace().join("docs/dashboard.png");
    b.cmd(json!({"op": "screenshot", "path": png}));
    println!("wrote {}", png.display());
}
