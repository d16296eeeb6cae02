//! Values through a worker, end to end: a client calls `pool.echo` on the real `pool` example,
//! the daemon sends the value to worker `alpha` over the shared-memory channel, the worker
//! sends it back, the daemon answers. Every value must come back exactly as it went, of the
//! same type, through Python's `xmlrpc.client` over HTTP and through JSON-RPC.
//!
//! Before the channel's frames were binary (`worker::wire`), they carried JSON: a `base64` and
//! a `dateTime.iso8601` came back from a worker as a `string` (Python saw `str`), and a NaN
//! or an infinity as `nil`.

mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// One JSON-RPC call on a fresh unix connection; the whole response object.
fn call(d: &Daemon, method: &str, params: &str) -> serde_json::Value {
    let mut r = BufReader::new(d.connect());
    json(&ndjson(&mut r, &format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params},"id":1}}"#)))
}

fn workers(d: &Daemon) -> Vec<serde_json::Value> {
    call(d, "worker.list", "[]")["result"].as_array().expect("worker.list answers an array").clone()
}

/// The workers' pids, killed on drop: they die with the daemon, but not if a test fails before
/// the daemon has reaped them.
struct Reaper(Vec<i32>);
impl Drop for Reaper {
    fn drop(&mut self) {
        for &pid in &self.0 {
            kill(pid, libc::SIGKILL);
        }
    }
}

/// The pool daemon with a loopback TCP listener too, once both workers loop; the workers'
/// reaper and the TCP port.
fn pool() -> (Daemon, Reaper, u16) {
    let port = free_port();
    let d = Daemon::new("pool", &[]).add_args(&["--socket", &format!("tcp://127.0.0.1:{port}")]).start();
    let looping = wait_for(Duration::from_secs(20), || {
        let ws = workers(&d);
        ws.len() == 2 && ws.iter().all(|w| w["state"] == "looping")
    });
    let reaper = Reaper(workers(&d).iter().filter_map(|w| w["pid"].as_i64()).map(|p| p as i32).collect());
    assert!(looping, "the pool's workers never looped: {:?}", workers(&d));
    (d, reaper, port)
}

/// Calls `pool.echo` with each case through `xmlrpc.client` (default types: `Binary` and
/// `DateTime` objects come back as such) and prints, as JSON, whether each came back equal and
/// of the same Python type, all the way down.
const PYTHON_ECHO: &str = r##"
import json, math, sys, xmlrpc.client as x

s = x.ServerProxy(sys.argv[1], allow_none=True)

mixed = [42, -2**31, 2**31 - 1, 1.5, -0.0, 1e300, 5e-324, True, False, None, "",
         "grüße, \u2603, \U0001d11e, <&>", x.Binary(b"\x00\x01\xff"), x.Binary(b""),
         x.DateTime("19980717T14:08:55"), [], {}]
cases = [
    ("binary", x.Binary(b"\x00\x01\xff")),
    ("binary, every byte, 25 600 of them", x.Binary(bytes(range(256)) * 100)),
    ("datetime", x.DateTime("20261202T10:11:12")),
    ("int", 42),
    ("double", 1.5),
    ("negative zero", -0.0),
    ("bool", True),
    ("nil", None),
    ("unicode", "grüße, \u2603, \U0001d11e"),
    ("struct", {"int": 7, "double": 1.5, "bool": False, "nil": None, "text": "\u00e9t\u00e9",
                "bytes": x.Binary(b"\xff\xfe"), "when": x.DateTime("20000101T00:00:00"),
                "inner": {"list": [1, {"deeper": [None, 2.5]}], "empty": {}}}),
    ("array", mixed),
    ("array of arrays", [mixed, [mixed, {"m": mixed}]]),
]

def same(a, b):
    if type(a) != type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(p, q) for p, q in zip(a, b))
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, x.Binary):
        return a.data == b.data
    if isinstance(a, x.DateTime):
        return a.value == b.value
    return a == b

def show(v):
    return repr(v.data if isinstance(v, x.Binary) else v)[:300]

results = []
for name, v in cases:
    got = s.pool.echo(v)
    results.append({"case": name, "ok": same(got, v), "sent": show(v), "got": show(got)})

# With the builtin types (bytes, datetime.datetime) too.
b = x.ServerProxy(sys.argv[1], allow_none=True, use_builtin_types=True)
import datetime
when = datetime.datetime(2026, 12, 2, 10, 11, 12)
for name, v in [("bytes", b"\x00\x01\xff"), ("datetime.datetime", when), ("both", [b"\x00", {"t": when}])]:
    got = b.pool.echo(v)
    results.append({"case": name, "ok": same(got, v), "sent": show(v), "got": show(got)})

# Python writes a NaN as <double>nan</double>, which XML-RPC does not have and the daemon's
# decoder refuses before any worker is asked: NaN's trip through the channel is checked by
# the unit tests of worker::wire.
try:
    s.pool.echo(float("nan"))
    nan = "answered"
except x.Fault as f:
    nan = f.faultCode
results.append({"case": "nan refused by the XML-RPC decoder", "ok": nan == -32700, "sent": "nan", "got": str(nan)})
print(json.dumps(results))
"##;

#[test]
fn every_xml_rpc_type_crosses_the_worker_channel_unchanged() {
    let (d, _reaper, port) = pool();
    let results = python(PYTHON_ECHO, &[&format!("http://127.0.0.1:{port}/")]);
    let results = results.as_array().expect("a list of results");
    assert!(results.len() >= 15, "{results:?}");
    let failed: Vec<_> = results.iter().filter(|r| r["ok"] != true).collect();
    assert!(failed.is_empty(), "values that did not come back unchanged:\n{failed:#?}");
    drop(d);
}

#[test]
fn json_rpc_ints_and_doubles_keep_their_type_through_a_worker() {
    let (d, _reaper, port) = pool();
    // Ints at both ends of i64 and beyond a double's 53 bits, doubles that look like ints.
    let sent = "[9223372036854775807,-9223372036854775808,9007199254740993,0,1.0,-0.0,0.1,1e300,5e-324,\
                -1.5e-7,{\"n\":[1,2.0]}]";
    let body = format!(r#"{{"jsonrpc":"2.0","method":"pool.echo","params":[{sent}],"id":7}}"#);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(http_post("application/json", &body).as_bytes()).unwrap();
    let (status, _, answer) = http_response(&mut BufReader::new(s));
    assert_eq!(status, 200, "{answer}");
    let answer = json(&answer);
    assert_eq!(answer["id"], 7, "{answer}");
    let got = answer["result"].as_array().unwrap_or_else(|| panic!("no result: {answer}"));
    let ints = [i64::MAX, i64::MIN, 9007199254740993, 0];
    for (g, want) in got.iter().zip(ints) {
        assert!(g.is_i64(), "{g} should be an int");
        assert_eq!(g.as_i64(), Some(want));
    }
    let doubles: [f64; 6] = [1.0, -0.0, 0.1, 1e300, 5e-324, -1.5e-7];
    for (g, want) in got[ints.len()..].iter().zip(doubles) {
        assert!(g.is_f64(), "{g} should be a double");
        assert_eq!(g.as_f64().map(f64::to_bits), Some(want.to_bits()), "{g} for {want:e}");
    }
    let nested = &got[ints.len() + doubles.len()]["n"];
    assert!(nested[0].is_i64() && nested[1].is_f64(), "{nested}");
    assert_eq!(got.len(), ints.len() + doubles.len() + 1, "{answer}");
    drop(d);
}
