//! The fetch example: a pool whose workers answer many asks at once (a tokio runtime in each,
//! answers given later), and fetch from a real HTTP server on loopback.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn fetch() -> Daemon {
    let d = Daemon::new("fetch", &[]).start();
    until("both instances looping", Duration::from_secs(20), || {
        let pool = worker(&d, "fetcher");
        pool["size"] == 2 && pool["instances"].as_array().unwrap().iter().all(|i| i["state"] == "looping")
    });
    d
}

/// `n` clients, each on its own connection calling `fetch.delay(ms)` once: their answers.
fn delays(d: &Daemon, n: usize, ms: u64) -> Vec<std::thread::JoinHandle<serde_json::Value>> {
    (0..n)
        .map(|i| {
            let stream = d.connect();
            std::thread::spawn(move || {
                let mut r = std::io::BufReader::new(stream);
                let line = format!(r#"{{"jsonrpc":"2.0","method":"fetch.delay","params":{{"ms":{ms}}},"id":{i}}}"#);
                json(&ndjson(&mut r, &line))
            })
        })
        .collect()
}

#[test]
fn a_pool_of_2_answers_100_concurrent_slow_asks_at_once() {
    let d = fetch();
    let _reaper = pids(&d);
    let started = Instant::now();
    let clients = delays(&d, 100, 100);
    for c in clients {
        let answer = c.join().unwrap();
        assert_eq!(answer["result"], 100, "{answer}");
    }
    let took = started.elapsed();
    // One ask at a time per instance would need 100 × 100 ms / 2 = 5 s at the very least.
    assert!(took < Duration::from_millis(4500), "the asks waited concurrently: {took:?}");
    let pool = worker(&d, "fetcher");
    assert_eq!(pool["asks"], 100, "{pool}");
    for i in pool["instances"].as_array().unwrap() {
        assert!(i["asks"].as_u64().unwrap() > 0, "both instances took asks: {pool}");
    }
    let refused = call(&d, "fetch.delay", r#"{"ms":10001}"#);
    assert!(refused["error"]["data"].as_str().unwrap().contains("'ms'"), "{refused}");
}

/// A python3 http.server on loopback, killed by its pid on drop.
struct Server(std::process::Child, u16);
impl Drop for Server {
    fn drop(&mut self) {
        kill(self.0.id() as i32, libc::SIGKILL);
        let _ = self.0.wait();
    }
}

#[test]
fn fetch_get_reads_a_loopback_http_server_and_refuses_any_other_host() {
    let dir = TempDir::new("fetch-www");
    std::fs::write(dir.path("hello.txt"), "hello from http.server\n").unwrap();
    let port = free_port();
    let child = std::process::Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string(), "--directory"])
        .arg(&dir.0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 http.server");
    let server = Server(child, port);
    until("http.server listening", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", server.1)).is_ok()
    });
    let d = fetch();
    let _reaper = pids(&d);
    let url = format!("http://127.0.0.1:{port}/hello.txt");
    let got = call(&d, "fetch.get", &serde_json::json!({ "url": url }).to_string());
    assert_eq!(got["result"]["status"], 200, "{got}");
    assert_eq!(got["result"]["body"], "hello from http.server\n");
    let missing =
        call(&d, "fetch.get", &serde_json::json!({ "url": format!("http://localhost:{port}/nope") }).to_string());
    assert_eq!(missing["result"]["status"], 404, "{missing}");
    for url in [
        "http://192.0.2.1/",
        "https://127.0.0.1/",
        "http://example.com/",
        "http://127.0.0.1:1@evil/",
        "http://[::1]\r\nX-Injected: 1/",
        "http://[::1]evil/",
    ] {
        let refused = call(&d, "fetch.get", &serde_json::json!({ "url": url }).to_string());
        assert_eq!(refused["error"]["code"], -32602, "{url}: {refused}");
        assert!(refused["error"]["data"].as_str().unwrap().contains("'url'"), "{url}: {refused}");
    }
}

#[test]
fn an_instance_scaled_away_answers_the_asks_it_holds_before_it_ends() {
    let d = fetch();
    let reaper = pids(&d);
    let clients = delays(&d, 20, 1500);
    until("both instances holding asks", Duration::from_secs(10), || {
        let pool = worker(&d, "fetcher");
        pool["instances"].as_array().unwrap().iter().all(|i| i["in_flight"].as_u64() > Some(0))
    });
    let down = call(&d, "worker.scale", r#"{"name":"fetcher","instances":1}"#);
    assert_eq!(down["result"]["to"], 1, "{down}");
    for c in clients {
        let answer = c.join().unwrap();
        assert_eq!(answer["result"], 1500, "no call fails because of the scale-down: {answer}");
    }
    until("one instance left", Duration::from_secs(20), || {
        worker(&d, "fetcher")["instances"].as_array().unwrap().len() == 1
    });
    let gone = reaper.0.iter().filter(|&&p| !alive(p)).count();
    assert_eq!(gone, 1, "the instance scaled away ended");
}
