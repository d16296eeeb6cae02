//! Typed parameters for real: the XML-RPC validator1 suite driven by python's `xmlrpc.client`
//! with random inputs, and the types example's typed methods checked as each protocol defines
//! (strict in XML-RPC, converting in JSON).

mod common;

use common::*;

fn daemon_on_tcp(name: &str) -> (Daemon, u16) {
    let port = free_port();
    let d = Daemon::new(name, &["--socket", &format!("tcp://127.0.0.1:{port}")]).start();
    (d, port)
}

/// Every validator1 method, 40 rounds of random inputs each, answers what the suite expects.
const VALIDATOR: &str = r#"
import datetime, json, random, string, sys, xmlrpc.client as x
s = x.ServerProxy("http://127.0.0.1:%s/" % sys.argv[1], use_builtin_types=True)
v = s.validator1
rnd = random.Random(int(sys.argv[2]))
def text(n):
    return "".join(rnd.choice(string.ascii_letters + "<>&'\" éß€") for _ in range(n))
def stooges():
    return {"moe": rnd.randint(-1000, 1000), "larry": rnd.randint(-1000, 1000), "curly": rnd.randint(-1000, 1000)}
checked = 0
for _ in range(40):
    arr = [stooges() for _ in range(rnd.randint(0, 20))]
    assert v.arrayOfStructsTest(arr) == sum(a["curly"] for a in arr)
    t = text(rnd.randint(0, 200))
    assert v.countTheEntities(t) == {"ctLeftAngleBrackets": t.count("<"), "ctRightAngleBrackets": t.count(">"),
        "ctAmpersands": t.count("&"), "ctApostrophes": t.count("'"), "ctQuotes": t.count('"')}
    st = stooges()
    assert v.easyStructTest(st) == st["moe"] + st["larry"] + st["curly"]
    echo = {"a": rnd.randint(0, 9), "b": text(5), "c": [1.5, True, {"d": "e"}], "substruct": stooges()}
    assert v.echoStructTest(echo) == echo
    n, b, d = rnd.randint(-2**31, 2**31 - 1), rnd.random() < 0.5, rnd.uniform(-1e9, 1e9)
    when = x.DateTime("%04d%02d%02dT%02d:%02d:%02d" % (rnd.randint(1900, 2100), rnd.randint(1, 12), rnd.randint(1, 28),
        rnd.randint(0, 23), rnd.randint(0, 59), rnd.randint(0, 59)))
    blob = bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 64)))
    got = v.manyTypesTest(n, b, t, d, when, blob)
    assert got[:4] == [n, b, t, d], got
    # use_builtin_types: dates come back as datetime objects, bytes as bytes.
    assert got[4] == datetime.datetime.strptime(when.value, "%Y%m%dT%H:%M:%S"), got
    assert isinstance(got[5], bytes) and got[5] == blob, got
    strings = [text(rnd.randint(1, 8)) for _ in range(rnd.randint(100, 200))]
    assert v.moderateSizeArrayCheck(strings) == strings[0] + strings[-1]
    cal = {}
    for y in ["1999", "2000", "2001"]:
        cal[y] = {m: {dd: stooges() for dd in ["01", "02", "30"]} for m in ["03", "04", "05"]}
    day = cal["2000"]["04"]["01"]
    assert v.nestedStructTest(cal) == day["moe"] + day["larry"] + day["curly"]
    k = rnd.randint(-10**6, 10**6)
    assert v.simpleStructReturnTest(k) == {"times10": 10 * k, "times100": 100 * k, "times1000": 1000 * k}
    checked += 8
# Over XML-RPC the protocol has the types: a string is not a date nor base64, an int not a double.
faults = []
for args in [(1, True, "s", 1.5, "not a date", b"x"), (1, True, "s", 1.5, when, "not base64!"),
             (1, True, "s", 1, when, b"x"), (1, True, "s", 1.5, when)]:
    try:
        v.manyTypesTest(*args)
        faults.append(None)
    except x.Fault as f:
        faults.append([f.faultCode, f.faultString])
sig = s.system.methodSignature("validator1.manyTypesTest")
print(json.dumps({"checked": checked, "faults": faults, "sig": sig}))
"#;

#[test]
fn validator1_answers_python_with_random_inputs_and_refuses_mistyped_parameters() {
    let (d, port) = daemon_on_tcp("validator");
    let seed = std::process::id().to_string();
    let out = python(VALIDATOR, &[&port.to_string(), &seed]);
    assert_eq!(out["checked"], 320, "{out}");
    let faults = out["faults"].as_array().unwrap();
    for (f, param) in faults.iter().zip(["date", "bytes", "double", "bytes"]) {
        assert_eq!(f[0], -32602, "{out}");
        assert!(f[1].as_str().unwrap().contains(&format!("'{param}'")), "the fault names {param}: {out}");
    }
    assert_eq!(
        out["sig"],
        serde_json::json!([["array", "int", "boolean", "string", "double", "dateTime.iso8601", "base64"]]),
        "{out}"
    );
    drop(d);
}

const TYPES: &str = r#"
import json, sys, xmlrpc.client as x
s = x.ServerProxy("http://127.0.0.1:%s/" % sys.argv[1], use_builtin_types=True)
out = {}
d = s.test.date(x.DateTime("20261202T10:11:12"))
out["date"] = [type(d).__name__, d.strftime("%Y%m%dT%H:%M:%S")]
b = s.test.bytes(b"\x00\x01\xff")
out["bytes"] = [type(b).__name__, list(b)]
f = s.test.double(2.5)
out["double"] = [type(f).__name__, f]
refused = []
for name, arg in [("date", "20261202T10:11:12"), ("bytes", "AAH/"), ("double", 2)]:
    try:
        getattr(s.test, name)(arg)
        refused.append(None)
    except x.Fault as e:
        refused.append(e.faultCode)
out["refused"] = refused
print(json.dumps(out))
"#;

#[test]
fn typed_methods_are_strict_over_xml_rpc_and_convert_over_json() {
    let (d, port) = daemon_on_tcp("types");
    let out = python(TYPES, &[&port.to_string()]);
    assert_eq!(out["date"], serde_json::json!(["datetime", "20261202T10:11:12"]), "{out}");
    assert_eq!(out["bytes"], serde_json::json!(["bytes", [0, 1, 255]]), "{out}");
    assert_eq!(out["double"], serde_json::json!(["float", 2.5]), "{out}");
    assert_eq!(out["refused"], serde_json::json!([-32602, -32602, -32602]), "{out}");
    // JSON has no date, bytes or int/double distinction: strings and ints are converted.
    let date = call(&d, "test.date", r#"["2026-12-02T10:11:12Z"]"#);
    assert_eq!(date["result"], "2026-12-02T10:11:12Z", "{date}");
    let bytes = call(&d, "test.bytes", r#"{"data":"AAH/"}"#);
    assert_eq!(bytes["result"], "AAH/", "{bytes}");
    let double = call(&d, "test.double", "[2]");
    assert_eq!(double["result"], 2.0, "{double}");
    assert!(double["result"].is_f64(), "a double parameter receives a double: {double}");
    let bad = call(&d, "test.date", r#"["yesterday"]"#);
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    assert!(bad["error"]["data"].as_str().unwrap().contains("'when'"), "{bad}");
    let bad = call(&d, "test.bytes", r#"["not base64!"]"#);
    assert!(bad["error"]["data"].as_str().unwrap().contains("'data'"), "{bad}");
    let sig = call(&d, "system.methodSignature", r#"["test.date"]"#);
    assert_eq!(sig["result"], serde_json::json!([["dateTime.iso8601", "dateTime.iso8601"]]), "{sig}");
}
