//! tomtectl talks only to a unix socket served by root or its own user, unless told to trust
//! another: an impostor listening where the daemon should be learns nothing.
//!
//! Run as root: the impostor runs as nobody (uid 65534) through `setpriv`.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A fresh directory (removed on drop) with a subdirectory nobody may write in.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = PathBuf::from(format!("/tmp/tc-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("imp")).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(d.join("imp"), Some(65534), Some(65534)).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An impostor: listens on `sock` as nobody, answers one JSON-RPC line with a fake status,
/// and prints how many bytes it received once the client is gone. Killed by pid on drop.
struct Impostor(Child);

const SCRIPT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(1)
print("ready", flush=True)
s.settimeout(10)
c, _ = s.accept()
c.settimeout(10)
got = b""
while True:
    b = c.recv(4096)
    if not b:
        break
    got += b
    if b"\n" in got:
        c.sendall(b'{"jsonrpc":"2.0","result":{"pid":4242},"id":1}\n')
print(len(got), flush=True)
"#;

impl Impostor {
    fn start(sock: &Path) -> (Impostor, BufReader<std::process::ChildStdout>) {
        // Not the python3 on root's PATH: nobody may not reach it.
        let python = if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
        let mut child = Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", python, "-c", SCRIPT])
            .arg(sock)
            .stdout(Stdio::piped())
            .spawn()
            .expect("setpriv and python3");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the impostor did not start");
        (Impostor(child), out)
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tomtectl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tomtectl")).args(args).env_remove("TOMTE_SOCKET").output().unwrap()
}

/// What the impostor says it received, once it is done.
fn received(mut out: BufReader<std::process::ChildStdout>) -> String {
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    rest.trim().to_owned()
}

#[test]
fn a_socket_served_by_another_user_is_refused_before_a_byte_is_sent() {
    let dir = Dir::new("refuse");
    let sock = dir.0.join("imp/d.sock");
    let (_impostor, out) = Impostor::start(&sock);
    let addr = format!("unix://{}", sock.display());
    let run = tomtectl(&["--socket", &addr, "status"]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(err.contains(&addr) && err.contains("uid 65534") && err.contains("--trust-uid 65534"), "{err}");
    assert_eq!(received(out), "0", "the impostor received bytes");
}

#[test]
fn trust_uid_allows_that_user() {
    let dir = Dir::new("trust");
    let sock = dir.0.join("imp/d.sock");
    let (_impostor, out) = Impostor::start(&sock);
    let run = tomtectl(&["--socket", &format!("unix://{}", sock.display()), "--trust-uid", "65534", "status"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stdout).contains("4242"));
    assert_ne!(received(out), "0");
}
