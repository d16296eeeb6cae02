//! TLS listeners: real clients (curl, Python's ssl and xmlrpc.client, openssl, tomtectl, the
//! tomte client) against the echo daemon, with certificates made by `openssl` at run time.
//! Each protection test names what it proves; without that protection it fails.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use tomte::client::{Client, ClientFiles, Protocol, Trust};
use tomte::Args;

/// Certificates for one test: a CA, a server certificate for 127.0.0.1 and localhost, a client
/// certificate `alice` from the CA, and `mallory` from another CA.
struct Pki {
    dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl is installed");
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out.stderr));
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        std::fs::write(
            dir.join("ext.cnf"),
            "[srv]\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n\
             [cli]\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        let pki = Pki { dir: dir.to_owned() };
        pki.ca("ca");
        pki.ca("other-ca");
        pki.issue("ca", "server", "srv");
        pki.issue("ca", "alice", "cli");
        pki.issue("other-ca", "mallory", "cli");
        pki
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn ca(&self, name: &str) {
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        openssl(
            &self.dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &pem,
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
            ],
        );
    }

    /// `NAME.pem` and `NAME.key` (mode 0600), signed by `ca`, with extensions `ext`.
    fn issue(&self, ca: &str, name: &str, ext: &str) {
        let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-set_serial",
                &format!("{}", std::process::id() as u64 * 1000 + name.len() as u64),
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
                "-extensions",
                ext,
            ],
        );
        chmod(&self.dir.join(&key), 0o600);
    }

    fn server_args(&self, socket: &str) -> Vec<String> {
        ["--socket", socket, "--tls-cert", &self.path("server.pem"), "--tls-key", &self.path("server.key")]
            .map(str::to_owned)
            .to_vec()
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The fixture's daemon (a unix socket, a pid file, a log) with `args` added; not started.
fn daemon(args: &[String]) -> Daemon {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::new("echo", &args)
}

const ECHO: &str = r#"{"jsonrpc":"2.0","method":"my.echo","params":["hi"],"id":1}"#;

/// One NDJSON line over TLS with Python's ssl: prints `{"answer": …}` or `{"error": …}`.
const PY_NDJSON: &str = r#"
import json, socket, ssl, sys
port, ca, cert, key, line = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
if cert:
    ctx.load_cert_chain(cert, key)
try:
    with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(line.encode() + b"\n")
            answer = s.makefile("rb").readline()
            if not answer:
                raise ConnectionError("closed without an answer")
            print(json.dumps({"answer": json.loads(answer), "cn": dict(x[0] for x in s.getpeercert()["subject"])["commonName"]}))
except Exception as e:
    print(json.dumps({"error": repr(e)}))
"#;

fn py_ndjson(port: u16, pki: &Pki, client: Option<&str>) -> serde_json::Value {
    let (cert, key) = match client {
        Some(name) => (pki.path(&format!("{name}.pem")), pki.path(&format!("{name}.key"))),
        None => (String::new(), String::new()),
    };
    python(PY_NDJSON, &[&port.to_string(), &pki.path("ca.pem"), &cert, &key, ECHO])
}

fn tls_client(port: u16, pki: &Pki, protocol: Protocol) -> Client {
    let address = format!("tls://127.0.0.1:{port}").parse().unwrap();
    let files = ClientFiles { ca: pki.path("ca.pem").into(), cert: None, key: None };
    let mut c = Client::connect_tls(&address, protocol, &Trust::anyone(), &files).expect("TLS connect");
    c.set_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

fn echo_over(c: &mut Client) -> tomte::Value {
    c.call("my.echo", &Args::Positional(vec![tomte::Value::String("hi".into())])).unwrap().unwrap()
}

#[test]
fn curl_python_openssl_tomtectl_and_comodojo_clients_are_served_over_tls() {
    let tmp = TempDir::new("tls-clients");
    let pki = Pki::new(&tmp.0);
    let (port, cport) = (free_port(), free_port());
    let mut args = pki.server_args(&format!("tls://127.0.0.1:{port}"));
    args.extend(["--socket".into(), format!("comodojo+tls://127.0.0.1:{cport}")]);
    let d = daemon(&args).start();
    let url = format!("https://127.0.0.1:{port}/");
    let curl = |ctype: &str, body: &str| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert", &pki.path("ca.pem"), "-H", &format!("Content-Type: {ctype}")])
            .args(["-d", body, &url])
            .output()
            .unwrap();
        assert!(out.status.success(), "curl: {}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(json(&curl("application/json", ECHO))["result"], "hi");
    let xml = "<?xml version=\"1.0\"?><methodCall><methodName>my.echo</methodName>\
               <params><param><value><string>hi</string></value></param></params></methodCall>";
    assert!(curl("text/xml", xml).contains("<string>hi</string>"));
    // Python's xmlrpc.client, verifying the certificate.
    let py = r#"
import json, ssl, sys, xmlrpc.client
ctx = ssl.create_default_context(cafile=sys.argv[2])
p = xmlrpc.client.ServerProxy(sys.argv[1], context=ctx)
print(json.dumps({"echo": p.my.echo("hi"), "methods": len(p.system.listMethods())}))
"#;
    let out = python(py, &[&url, &pki.path("ca.pem")]);
    assert_eq!(out["echo"], "hi", "{out}");
    assert!(out["methods"].as_u64().unwrap() > 3, "{out}");
    // NDJSON with Python's ssl, and with openssl s_client.
    assert_eq!(py_ndjson(port, &pki, None)["answer"]["result"], "hi");
    let mut s_client = Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-CAfile", &pki.path("ca.pem")])
        .args(["-connect", &format!("127.0.0.1:{port}")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    s_client.stdin.as_mut().unwrap().write_all(format!("{ECHO}\n").as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s_client.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _ = s_client.kill();
    let _ = s_client.wait();
    assert_eq!(json(&line)["result"], "hi", "{line}");
    // tomtectl.
    let out = Command::new(binary("tomtectl"))
        .args([
            "--socket",
            &format!("tls://127.0.0.1:{port}"),
            "--tls-ca",
            &pki.path("ca.pem"),
            "call",
            "my.echo",
            "hi",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "tomtectl: {}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("hi"));
    // The tomte client, in each dialect, over one connection each (keep-alive).
    for protocol in [Protocol::Json, Protocol::Xml] {
        let mut c = tls_client(port, &pki, protocol);
        for _ in 0..3 {
            assert_eq!(echo_over(&mut c), tomte::Value::String("hi".into()));
        }
    }
    for protocol in [Protocol::ComodojoJson, Protocol::ComodojoXml] {
        let mut c = tls_client(cport, &pki, protocol);
        assert_eq!(echo_over(&mut c), tomte::Value::String("hi".into()));
    }
    // Without a CA, the client says what it needs.
    let address: tomte::net::Address = format!("tls://127.0.0.1:{port}").parse().unwrap();
    let err = Client::connect(&address).err().expect("a tls:// address needs TLS files").to_string();
    assert!(err.contains("--tls-ca"), "{err}");
    drop(d);
}

#[test]
fn mutual_tls_serves_only_certificates_from_the_client_ca_and_names_the_client() {
    let tmp = TempDir::new("tls-mutual");
    let pki = Pki::new(&tmp.0);
    let port = free_port();
    let mut args = pki.server_args(&format!("tls://127.0.0.1:{port}"));
    args.extend(["--tls-client-ca".into(), pki.path("ca.pem"), "-v".into()]);
    let d = daemon(&args).start();
    // No certificate: refused.
    let none = py_ndjson(port, &pki, None);
    assert!(none.get("error").is_some(), "served without a client certificate: {none}");
    // A certificate from another CA: refused.
    let other = py_ndjson(port, &pki, Some("mallory"));
    assert!(other.get("error").is_some(), "served a certificate from another CA: {other}");
    // alice's: served, and named.
    let alice = py_ndjson(port, &pki, Some("alice"));
    assert_eq!(alice["answer"]["result"], "hi", "{alice}");
    assert!(wait_for(Duration::from_secs(5), || d.log_text().contains("cert \"alice\"")), "log: {}", d.log_text());
    assert!(!d.log_text().contains("cert mallory"));
    // tomtectl with alice's certificate, and without one.
    let ctl = |extra: &[&str]| {
        Command::new(binary("tomtectl"))
            .args(["--socket", &format!("tls://127.0.0.1:{port}"), "--tls-ca", &pki.path("ca.pem")])
            .args(extra)
            .args(["call", "my.echo", "hi"])
            .output()
            .unwrap()
    };
    let out = ctl(&["--tls-cert", &pki.path("alice.pem"), "--tls-key", &pki.path("alice.key")]);
    assert!(out.status.success(), "tomtectl with alice's certificate: {}", text(&out.stderr));
    assert!(!ctl(&[]).status.success(), "tomtectl without a certificate was served");
}

#[test]
fn plain_text_and_stalled_handshakes_are_closed_by_the_deadline_without_delaying_others() {
    let tmp = TempDir::new("tls-hostile");
    let pki = Pki::new(&tmp.0);
    let port = free_port();
    let mut args = pki.server_args(&format!("tls://127.0.0.1:{port}"));
    args.extend(["--request-timeout".into(), "1".into()]);
    let d = daemon(&args).start();
    let mut good = tls_client(port, &pki, Protocol::Xml);
    echo_over(&mut good);
    let t0 = Instant::now();
    // Connects and sends nothing; sends half a ClientHello (a record header announcing 512
    // bytes, then 4 of them).
    let silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut half = TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]).unwrap();
    // A request in clear on the TLS port: closed at once (after an alert), never answered.
    let mut clear = TcpStream::connect(("127.0.0.1", port)).unwrap();
    clear.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    clear.write_all(http_post("application/json", ECHO).as_bytes()).unwrap();
    let t = Instant::now();
    let mut got = Vec::new();
    let _ = clear.read_to_end(&mut got);
    // (Well before the request deadline: the handshake fails at its first record.)
    assert!(t.elapsed() < Duration::from_millis(700), "a plain-text client was kept {:?}", t.elapsed());
    assert!(!text(&got).contains("HTTP/1.1"), "answered in clear: {:?}", text(&got));
    // Meanwhile the others are served at once, on an open connection and on new ones.
    let t = Instant::now();
    for _ in 0..5 {
        echo_over(&mut good);
        echo_over(&mut tls_client(port, &pki, Protocol::Json));
    }
    assert!(t.elapsed() < Duration::from_millis(900), "stalled handshakes delayed others: {:?}", t.elapsed());
    // The stalled ones are closed by the request deadline (1 s), not the idle timeout (300 s).
    for mut s in [silent, half] {
        s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
        let mut sink = Vec::new();
        let r = s.read_to_end(&mut sink);
        let waited = t0.elapsed();
        assert!(r.is_ok() || r.unwrap_err().kind() == std::io::ErrorKind::ConnectionReset);
        assert!(waited < Duration::from_secs(4), "a stalled handshake was kept {waited:?}");
        assert!(waited >= Duration::from_millis(900), "closed before its deadline: {waited:?}");
    }
    echo_over(&mut good);
    drop(d);
}

/// Sends an echo of N bytes, waits, then reads the answer slowly: prints its length.
const PY_BIG: &str = r#"
import json, socket, ssl, sys, time
port, ca, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(cafile=ca)
raw = socket.socket()
# A small window: the daemon's socket is full at every turn, its last one too.
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
raw.settimeout(20)
raw.connect(("127.0.0.1", int(port)))
with raw:
    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "my.echo", "params": ["x" * n]}).encode() + b"\n")
        time.sleep(0.5)
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
            time.sleep(0.0002)
        print(json.dumps({"len": len(json.loads(answer)["result"])}))
"#;

#[test]
fn a_large_answer_to_a_slow_reader_arrives_whole() {
    // The socket fills while the client sleeps and reads through a small window: the records
    // the session holds (at most its limit) go out as the client reads, to the last one.
    let tmp = TempDir::new("tls-big");
    let pki = Pki::new(&tmp.0);
    let port = free_port();
    let _d = daemon(&pki.server_args(&format!("tls://127.0.0.1:{port}"))).start();
    let n = 4 << 20;
    let out = python(PY_BIG, &[&port.to_string(), &pki.path("ca.pem"), &n.to_string()]);
    assert_eq!(out["len"], n, "{out}");
}

#[test]
fn start_fails_naming_what_is_missing_or_wrong() {
    let tmp = TempDir::new("tls-start");
    let pki = Pki::new(&tmp.0);
    let port = free_port();
    let socket = format!("tls://127.0.0.1:{port}");
    let fails = |args: &[String]| {
        let mut d = daemon(args);
        let out = d.cmd("start");
        if out.status.success() {
            // Killed by pid when `d` drops, before the failure is reported.
            d.pids.extend(d.pid());
            drop(d);
            panic!("started with {args:?}");
        }
        text(&out.stdout) + &text(&out.stderr)
    };
    let why = fails(&["--socket".into(), socket.clone()]);
    assert!(why.contains(&socket) && why.contains("--tls-cert") && why.contains("--tls-key"), "{why}");
    // A key others may read.
    chmod(&tmp.0.join("server.key"), 0o644);
    let why = fails(&pki.server_args(&socket));
    assert!(why.contains("server.key") && why.contains("chmod 600"), "{why}");
    chmod(&tmp.0.join("server.key"), 0o600);
    // A certificate file that holds none, and a key that does not match.
    std::fs::write(tmp.0.join("junk.pem"), "not a certificate\n").unwrap();
    let mut args = pki.server_args(&socket);
    args[3] = pki.path("junk.pem");
    let why = fails(&args);
    assert!(why.contains("junk.pem"), "{why}");
    let mut args = pki.server_args(&socket);
    args[5] = pki.path("alice.key");
    let why = fails(&args);
    assert!(why.contains("alice.key"), "{why}");
    // And with everything right, it starts.
    drop(daemon(&pki.server_args(&socket)).start());
}

#[test]
fn sighup_reloads_the_certificate_and_a_bad_one_keeps_the_old() {
    let tmp = TempDir::new("tls-reload");
    let pki = Pki::new(&tmp.0);
    let port = free_port();
    let d = daemon(&pki.server_args(&format!("tls://127.0.0.1:{port}"))).start();
    let pid = d.pid().unwrap();
    assert_eq!(py_ndjson(port, &pki, None)["cn"], "server");
    let mut open = tls_client(port, &pki, Protocol::Json);
    // A new certificate (another name) in place of the old, then SIGHUP.
    pki.issue("ca", "renewed", "srv");
    std::fs::rename(tmp.0.join("renewed.pem"), tmp.0.join("server.pem")).unwrap();
    std::fs::rename(tmp.0.join("renewed.key"), tmp.0.join("server.key")).unwrap();
    kill(pid, libc::SIGHUP);
    assert!(wait_for(Duration::from_secs(5), || d.log_text().contains("TLS certificate reloaded")), "{}", d.log_text());
    assert_eq!(py_ndjson(port, &pki, None)["cn"], "renewed");
    echo_over(&mut open);
    // A broken file: logged, and the last good certificate stays.
    std::fs::write(tmp.0.join("server.pem"), "garbage\n").unwrap();
    kill(pid, libc::SIGHUP);
    assert!(wait_for(Duration::from_secs(5), || d.log_text().contains("keeping the previous TLS certificate")));
    assert!(d.log_text().contains("server.pem"), "{}", d.log_text());
    assert_eq!(py_ndjson(port, &pki, None)["cn"], "renewed");
    assert!(alive(pid));
}

#[test]
fn a_client_certificate_carries_its_permissions() {
    let tmp = TempDir::new("tls-grants");
    let pki = Pki::new(&tmp.0);
    let ctl = |port: u16, extra: &[&str]| {
        Command::new(binary("tomtectl"))
            .args(["--socket", &format!("tls://127.0.0.1:{port}"), "--tls-ca", &pki.path("ca.pem")])
            .args(["--tls-cert", &pki.path("alice.pem"), "--tls-key", &pki.path("alice.key")])
            .args(extra)
            .output()
            .unwrap()
    };
    // A rule names alice: she holds what it says, no more.
    let port = free_port();
    let mut args = pki.server_args(&format!("tls://127.0.0.1:{port}"));
    args.extend(["--tls-client-ca".into(), pki.path("ca.pem"), "--allow".into(), "cert:alice=read".into()]);
    let d = daemon(&args).start();
    assert!(ctl(port, &["status"]).status.success());
    let out = ctl(port, &["call", "my.echo", "hi"]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success() && said.contains("-32001"), "{said}");
    drop(d);
    // No rule names her: a verified certificate holds everything, shutting down included.
    let port = free_port();
    let mut args = pki.server_args(&format!("tls://127.0.0.1:{port}"));
    args.extend(["--tls-client-ca".into(), pki.path("ca.pem")]);
    let d = daemon(&args).start();
    let pid = d.pid().unwrap();
    let out = ctl(port, &["shutdown"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(wait_for(Duration::from_secs(10), || !alive(pid)), "alice could not shut the daemon down");
}
