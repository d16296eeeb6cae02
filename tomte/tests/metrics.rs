//! `GET /metrics`: real daemons scraped over their sockets, the exposition checked by
//! `promtool` (Debian's `prometheus` package) and scraped by a real Prometheus server.
//!
//! Run `cargo build -p tomte --examples` first. The promtool and Prometheus tests print why
//! they skip when the binaries are missing (`apt-get install -y prometheus`).

mod common;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{call, free_port, http_post, http_response, json, ndjson, until, Daemon, TempDir};

/// One GET over a fresh unix connection: status, headers, body.
fn get(d: &Daemon, path: &str, accept: Option<&str>) -> (u16, Vec<(String, String)>, String) {
    let mut s = d.connect();
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n{accept}\r\n").unwrap();
    http_response(&mut BufReader::new(s))
}

/// The exposition in the Prometheus text format, checked to be one.
fn scrape(d: &Daemon) -> String {
    let (status, headers, body) = get(d, "/metrics", None);
    assert_eq!(status, 200, "{body}");
    let ct = header(&headers, "content-type");
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    body
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// The value of the sample whose name and labels are `series` exactly (`name{a="b"}`).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn calls(text: &str, method: &str, outcome: &str) -> Option<f64> {
    value(text, &format!("tomte_rpc_calls_total{{method=\"{method}\",outcome=\"{outcome}\"}}"))
}

/// Whether `program` can be run (`--version` answers).
fn installed(program: &str) -> bool {
    Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// `promtool check metrics` on `text`: its complaints, empty when it has none.
fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), common::text(&out.stdout) + &common::text(&out.stderr))
}

#[test]
fn after_n_calls_the_counter_of_that_method_and_outcome_is_n() {
    let d = Daemon::new("echo", &[]).start();
    let mut r = BufReader::new(d.connect());
    for i in 0..25 {
        let answer =
            json(&ndjson(&mut r, &format!(r#"{{"jsonrpc":"2.0","method":"my.echo","params":["{i}"],"id":{i}}}"#)));
        assert_eq!(answer["result"], i.to_string());
    }
    for _ in 0..3 {
        let answer = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"my.echo","params":[],"id":1}"#));
        assert_eq!(answer["error"]["code"], -32602);
    }
    let answer = json(&ndjson(&mut r, r#"{"jsonrpc":"2.0","method":"no.such.method","id":1}"#));
    assert_eq!(answer["error"]["code"], -32601);
    // A batch: each entry counts.
    let batch = r#"[{"jsonrpc":"2.0","method":"my.echo","params":["a"],"id":1},{"jsonrpc":"2.0","method":"my.echo","params":["b"],"id":2}]"#;
    ndjson(&mut r, batch);

    let text = scrape(&d);
    assert_eq!(calls(&text, "my.echo", "ok"), Some(27.0), "{text}");
    assert_eq!(calls(&text, "my.echo", "invalid"), Some(3.0));
    assert_eq!(calls(&text, "my.echo", "error"), Some(0.0));
    assert_eq!(calls(&text, "my.echo", "denied"), Some(0.0));
    let count = value(&text, "tomte_rpc_call_duration_seconds_count{method=\"my.echo\"}");
    assert_eq!(count, Some(30.0), "every call of the method is in its histogram");
    let inf = value(&text, "tomte_rpc_call_duration_seconds_bucket{method=\"my.echo\",le=\"+Inf\"}");
    assert_eq!(inf, Some(30.0));
    assert_eq!(value(&text, "tomte_rpc_unknown_method_calls_total"), Some(1.0));
    assert!(!text.contains("no.such.method"), "an unknown name is no label");
    // The GET itself is no call, and the connections are counted.
    assert_eq!(calls(&text, "daemon.status", "ok"), None, "a method never called has no series");
    let open = value(&text, &format!("tomte_connections{{listener=\"unix://{}\"}}", d.sock.display()));
    assert!(open.is_some_and(|n| n >= 2.0), "this NDJSON connection and the scrape's: {text}");
    assert!(value(&text, "tomte_connection_bytes_received_total").is_some_and(|n| n > 0.0));
    assert!(value(&text, "process_resident_memory_bytes").is_some_and(|n| n > 0.0));
    assert!(value(&text, "process_open_fds").is_some_and(|n| n > 0.0));
    // daemon.status counts every call the registry saw, itself and the unknown name included.
    let status = call(&d, "daemon.status", "[]");
    assert_eq!(status["result"]["calls"], 32, "{status}");
}

#[test]
fn an_xml_rpc_fault_and_a_denied_call_show_their_outcomes() {
    let port = free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::new("pool", &["--socket"]).add_args(&[&tcp]).start();
    let _reaper = common::pids(&d);
    // Over XML-RPC: a worker that does not exist is a fault of the (async) method.
    let body = "<?xml version=\"1.0\"?><methodCall><methodName>pool.count</methodName><params>\
                <param><value><string>nobody</string></value></param></params></methodCall>";
    let mut s = d.connect();
    s.write_all(http_post("text/xml", body).as_bytes()).unwrap();
    let (status, _, answer) = http_response(&mut BufReader::new(&mut s));
    assert_eq!(status, 200);
    assert!(answer.contains("faultCode"), "{answer}");
    // Over TCP an anonymous client holds read and call, not control.
    let mut t = BufReader::new(TcpStream::connect(("127.0.0.1", port)).unwrap());
    let answer = json(&ndjson(&mut t, r#"{"jsonrpc":"2.0","method":"worker.pause","params":["alpha"],"id":1}"#));
    assert_eq!(answer["error"]["code"], -32001, "{answer}");

    let text = scrape(&d);
    assert_eq!(calls(&text, "pool.count", "error"), Some(1.0), "{text}");
    assert_eq!(calls(&text, "worker.pause", "denied"), Some(1.0));
    assert_eq!(calls(&text, "worker.pause", "ok"), Some(0.0));
    let tcp_accepted =
        value(&text, &format!("tomte_connections_accepted_total{{listener=\"{tcp}\",dialect=\"ndjson\"}}"));
    assert_eq!(tcp_accepted, Some(1.0), "{text}");
}

#[test]
fn openmetrics_when_asked_and_it_ends_in_eof() {
    let d = Daemon::new("echo", &[]).start();
    call(&d, "my.echo", r#"["x"]"#);
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                  text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (status, headers, body) = get(&d, "/metrics", Some(accept));
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(body.ends_with("\n# EOF\n"), "{body}");
    assert!(body.contains("# TYPE tomte_rpc_calls counter\n"), "{body}");
    assert_eq!(calls(&body, "my.echo", "ok"), Some(1.0));
    assert_eq!(body.matches("# EOF").count(), 1);
}

#[test]
fn no_metrics_records_no_calls() {
    let d = Daemon::new("echo", &["--no-metrics"]).start();
    for _ in 0..5 {
        assert_eq!(call(&d, "my.echo", r#"["x"]"#)["result"], "x");
    }
    let text = scrape(&d);
    assert_eq!(calls(&text, "my.echo", "ok"), None, "{text}");
    assert!(text.contains("# TYPE tomte_rpc_calls_total counter\n"), "the family is there, empty");
    assert!(value(&text, "process_resident_memory_bytes").is_some(), "the rest is served");
}

#[test]
fn promtool_accepts_the_metrics_of_a_daemon_under_load() {
    if !installed("promtool") {
        eprintln!("skipped: promtool is not installed (Debian: apt-get install -y prometheus)");
        return;
    }
    let d = Daemon::new("pool", &[]).start();
    let _reaper = common::pids(&d);
    until("both workers looping", Duration::from_secs(30), || {
        common::workers(&d).iter().all(|w| w["state"] == "looping")
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|k| {
            let (sock, stop) = (d.sock.clone(), stop.clone());
            std::thread::spawn(move || {
                let s = std::os::unix::net::UnixStream::connect(sock).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut r = BufReader::new(s);
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let line = match n % 3 {
                        0 => format!(r#"{{"jsonrpc":"2.0","method":"pool.echo","params":[{n}],"id":{n}}}"#),
                        1 => r#"{"jsonrpc":"2.0","method":"daemon.status","id":1}"#.to_owned(),
                        _ => format!(
                            r#"{{"jsonrpc":"2.0","method":"pool.count","params":["{}"],"id":1}}"#,
                            ["alpha", "beta"][k % 2]
                        ),
                    };
                    let answer = ndjson(&mut r, &line);
                    assert!(answer.contains("\"result\""), "{answer}");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut last = String::new();
    for _ in 0..10 {
        last = scrape(&d);
        let (ok, said) = promtool(&last);
        assert!(ok && said.trim().is_empty(), "promtool: {said}\n{last}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let done: u64 = load.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(done > 0);
    for series in [
        "tomte_worker_up{worker=\"alpha\"}",
        "tomte_worker_state{worker=\"beta\",state=\"looping\"}",
        "tomte_worker_restarts_total{worker=\"alpha\"}",
        "tomte_worker_asks_in_flight{worker=\"alpha\"}",
        "tomte_worker_channel_used_bytes{worker=\"alpha\",direction=\"to_worker\"}",
    ] {
        assert!(value(&last, series).is_some(), "{series} in\n{last}");
    }
    assert_eq!(value(&last, "tomte_worker_state{worker=\"beta\",state=\"looping\"}"), Some(1.0));
    assert_eq!(value(&last, "tomte_worker_state{worker=\"beta\",state=\"paused\"}"), Some(0.0));
    assert!(value(&last, "tomte_worker_iterations_total{worker=\"alpha\"}").is_some_and(|n| n > 0.0));
}

/// Prometheus, started on loopback, killed by pid on drop.
struct Prometheus {
    child: std::process::Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            common::kill(self.child.id() as i32, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

impl Prometheus {
    /// A plain HTTP GET of the server's API; the body.
    fn get(&self, path_and_query: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
        let mut all = String::new();
        s.read_to_string(&mut all).ok()?;
        let (head, body) = all.split_once("\r\n\r\n")?;
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            return Some(dechunk(body));
        }
        Some(body.to_owned())
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[test]
fn a_prometheus_server_scrapes_the_daemon() {
    if !installed("prometheus") {
        eprintln!("skipped: the prometheus server is not installed (Debian: apt-get install -y prometheus)");
        return;
    }
    let port = free_port();
    let d = Daemon::new("echo", &["--socket"]).add_args(&[&format!("tcp://127.0.0.1:{port}")]).start();
    for _ in 0..7 {
        assert_eq!(call(&d, "my.echo", r#"["x"]"#)["result"], "x");
    }
    let dir = TempDir::new("prom");
    let config = dir.path("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: tomte\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let web = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .current_dir(&dir.0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path("stderr")).unwrap())
        .spawn()
        .expect("spawn prometheus");
    let prom = Prometheus { child, port: web };
    let mut last = String::new();
    let seen = common::wait_for(Duration::from_secs(120), || {
        last = prom.get("/api/v1/query?query=tomte_rpc_calls_total").unwrap_or_default();
        last.contains("\"method\":\"my.echo\"") && last.contains("\"outcome\":\"ok\"") && last.contains("\"7\"")
    });
    let log = std::fs::read_to_string(dir.path("stderr")).unwrap_or_default();
    assert!(seen, "Prometheus's answer: {last}\nits log:\n{log}");
    let v = json(&last);
    assert_eq!(v["status"], "success");
    let series = v["data"]["result"].as_array().unwrap();
    let ok = series.iter().find(|s| s["metric"]["method"] == "my.echo" && s["metric"]["outcome"] == "ok").unwrap();
    assert_eq!(ok["metric"]["job"], "tomte");
    assert_eq!(ok["value"][1], "7");
    // The target is healthy: `up` is 1.
    let up = json(&prom.get("/api/v1/query?query=up").unwrap());
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
}

#[test]
fn the_applications_metrics_follow_the_daemons_and_workers_are_listed() {
    let d = Daemon::new("fleet", &["--workers", "2", "--methods", "3"]).start();
    let _reaper = common::pids(&d);
    for m in ["fleet.m01", "fleet.m01", "fleet.m03"] {
        assert_eq!(call(&d, m, "[]")["result"], serde_json::Value::Null);
    }
    let text = scrape(&d);
    assert_eq!(value(&text, "fleet_method_calls_total"), Some(3.0), "{text}");
    assert_eq!(calls(&text, "fleet.m01", "ok"), Some(2.0));
    assert_eq!(calls(&text, "fleet.m02", "ok"), None);
    let app = text.find("# TYPE fleet_method_calls_total counter").expect("the application's family");
    assert!(text.find("# TYPE process_open_fds gauge").is_some_and(|p| p < app), "after the daemon's families");
    for w in ["w01", "w02"] {
        assert!(value(&text, &format!("tomte_worker_up{{worker=\"{w}\"}}")).is_some(), "{text}");
    }
    if installed("promtool") {
        let (ok, said) = promtool(&text);
        assert!(ok && said.trim().is_empty(), "promtool: {said}");
    }
}
