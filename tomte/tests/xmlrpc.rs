//! XML-RPC over HTTP on real sockets, with clients nobody here wrote: Python's `xmlrpc.client`
//! (introspection, multicall, faults, a 512 KiB echo, every type of the spec and its
//! extensions), curl, `tomte::client` and `tomtectl --xml`; HTTP errors; hostile documents (a DTD,
//! an external entity, billion laughs, 10 000-deep nesting) that must not hurt anyone else.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::*;
use tomte::client::{Client, ClientError, Protocol};
use tomte::net::Address;
use tomte_rpc::{Args, Value};

/// The echo daemon (or another example) with a TCP listener too; returns it and the port.
fn daemon_on_tcp(name: &str, extra: &[&str]) -> (Daemon, u16) {
    let port = free_port();
    let d = Daemon::new(name, extra).add_args(&["--socket", &format!("tcp://127.0.0.1:{port}")]).start();
    (d, port)
}

fn xml_client(d: &Daemon) -> Client {
    let mut c = Client::connect_with(&Address::unix(&d.sock), Protocol::Xml).unwrap();
    c.set_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

fn echo(c: &mut Client, text: &str) -> Value {
    c.call("my.echo", &Args::Positional(vec![Value::from(text)])).unwrap().unwrap()
}

/// Python's xmlrpc.client against the echo daemon: prints one JSON object of what it saw.
const PYTHON_ECHO: &str = r##"
import json, sys, xmlrpc.client as x

s = x.ServerProxy(sys.argv[1], allow_none=True)
out = {}
out["echo"] = s.my.echo("hello")
out["unicode"] = s.my.echo("a <&> b \u00e9 \u2603 \U0001d11e")
out["list"] = s.system.listMethods()
out["signature"] = s.system.methodSignature("my.echo")
out["help"] = s.system.methodHelp("my.echo")
out["capabilities"] = sorted(s.system.getCapabilities().keys())

m = x.MultiCall(s)
m.my.echo("one")
m.no.such()
m.my.echo("two")
m.my.echo(5)
m.system.multicall([])
res = m()
out["multicall_raw"] = res.results
seen = []
for i in range(len(res.results)):
    try:
        seen.append({"ok": res[i]})
    except x.Fault as f:
        seen.append({"fault": f.faultCode})
out["multicall"] = seen

def fault(call):
    try:
        call()
        return None
    except x.Fault as f:
        return [f.faultCode, f.faultString]

out["unknown"] = fault(lambda: s.no.such())
out["invalid_params"] = fault(lambda: s.my.echo(5))
out["no_params"] = fault(lambda: s.my.echo())

big = ("<&>0123456789 \u00e9" * 40000)[: 512 * 1024]
r = s.my.echo(big)
out["big_len"] = len(r)
out["big_same"] = r == big
print(json.dumps(out))
"##;

#[test]
fn python_xmlrpc_client_talks_to_the_echo_daemon() {
    // Everything for anonymous TCP clients: the list compared is the whole of comodojo's, and
    // an anonymous client is not listed what needs `control` (see tests/access.rs).
    let (d, port) = daemon_on_tcp("echo", &["--allow", "anonymous=all"]);
    let out = python(PYTHON_ECHO, &[&format!("http://127.0.0.1:{port}/")]);
    assert_eq!(out["echo"], "hello");
    assert_eq!(out["unicode"], "a <&> b \u{e9} \u{2603} \u{1d11e}");
    let list: Vec<&str> = out["list"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(
        &list[..10],
        [
            "system.getCapabilities",
            "system.listMethods",
            "system.methodHelp",
            "system.methodSignature",
            "system.multicall",
            "daemon.shutdown",
            "worker.list",
            "worker.status",
            "worker.pause",
            "worker.resume",
        ]
    );
    assert_eq!(list.last(), Some(&"my.echo"));
    assert_eq!(out["signature"], json(r#"[["string","string"]]"#));
    assert_eq!(out["help"], "I'm here to reply your data");
    assert_eq!(
        out["capabilities"],
        json(r#"["faults_interop","introspection","json-rpc","nil","system.multicall","xmlrpc"]"#)
    );
    // Results wrapped in one-element arrays, faults as structs in place, the others unharmed.
    let raw = &out["multicall_raw"];
    assert_eq!(raw[0], json(r#"["one"]"#));
    assert_eq!(raw[1], json(r#"{"faultCode":-32601,"faultString":"Method not found"}"#));
    assert_eq!(raw[2], json(r#"["two"]"#));
    assert_eq!(raw[3]["faultCode"], -32602);
    assert_eq!(raw[4]["faultCode"], -31001, "a multicall inside a multicall: {raw}");
    assert_eq!(
        out["multicall"],
        json(r#"[{"ok":"one"},{"fault":-32601},{"ok":"two"},{"fault":-32602},{"fault":-31001}]"#)
    );
    assert_eq!(out["unknown"], json(r#"[-32601,"Method not found"]"#));
    assert_eq!(out["invalid_params"][0], -32602);
    assert!(out["invalid_params"][1].as_str().unwrap().starts_with("Invalid params"));
    assert_eq!(out["no_params"][0], -32602);
    assert_eq!(out["big_len"], 512 * 1024);
    assert_eq!(out["big_same"], true);
    drop(d);
}

/// Every XML-RPC type through `test.echo` (returns its first parameter unchanged), as Python
/// sends it; then documents written by hand for what Python does not send (`i8`, `i4`,
/// `ex:nil`, `ex:i8`, an untyped value, CDATA, base64 with line breaks), read back by Python's
/// own parser.
const PYTHON_TYPES: &str = r##"
import datetime, http.client, json, math, sys, xmlrpc.client as x

port = int(sys.argv[1])
s = x.ServerProxy("http://127.0.0.1:%d/" % port, allow_none=True, use_builtin_types=True)
cases = [
    ("int", 42), ("int zero", 0), ("int min", -2**31), ("int max", 2**31 - 1),
    ("boolean true", True), ("boolean false", False),
    ("string", "plain"), ("string escapes", "a <&> b \"q\" 'a' ]]> \t tab\nline"),
    ("string unicode", "h\u00e9llo \u2603 \U0001d11e \u4e2d\u6587"), ("string empty", ""),
    ("double", 1.5), ("double tiny", 5e-324), ("double huge", 1e300), ("double neg zero", -0.0),
    ("double third", 1 / 3), ("double negative", -273.15),
    ("dateTime", x.DateTime("19980717T14:08:55")), ("dateTime builtin", datetime.datetime(2024, 2, 29, 23, 59, 1)),
    ("base64", bytes(range(256))), ("base64 empty", b""),
    ("array", [1, "two", 3.0, True, None, [b"\x00"], {"k": "v"}]), ("array empty", []),
    ("struct", {"name": "x", "n\u00e4me": {"deep": [1, {"deeper": None}]}, "<&>": 1}), ("struct empty", {}),
    ("nil", None),
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
    return a == b

results = []
for name, v in cases:
    if isinstance(v, x.DateTime):
        expected = datetime.datetime.strptime(v.value, "%Y%m%dT%H:%M:%S")
    else:
        expected = v
    got = s.test.echo(v)
    results.append({"case": name, "ok": same(got, expected), "sent": repr(v), "got": repr(got)})

# All at once, as several params, and through a multicall.
allv = [v for _, v in cases if not isinstance(v, x.DateTime)]
results.append({"case": "echoAll", "ok": same(s.test.echoAll(*allv), allv), "sent": "", "got": ""})
m = x.MultiCall(s)
for v in allv:
    m.test.echo(v)
results.append({"case": "multicall", "ok": same(list(m()), allv), "sent": "", "got": ""})

def raw(value_xml):
    body = ('<?xml version="1.0"?><methodCall><methodName>test.echo</methodName><params><param>'
            + value_xml + '</param></params></methodCall>').encode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    c.request("POST", "/RPC2", body, {"Content-Type": "text/xml"})
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    (value,), _ = x.loads(text, use_builtin_types=True)
    return value, text

raws = [
    ("i8 big", "<value><i8>1099511627776</i8></value>", 2**40, "<i8>1099511627776</i8>"),
    ("i8 min", "<value><i8>-9223372036854775808</i8></value>", -2**63, "<i8>-9223372036854775808</i8>"),
    ("i8 max", "<value><ex:i8>9223372036854775807</ex:i8></value>", 2**63 - 1, "<i8>9223372036854775807</i8>"),
    ("i8 small", "<value><i8>7</i8></value>", 7, "<int>7</int>"),
    ("i4", "<value><i4>-12</i4></value>", -12, "<int>-12</int>"),
    ("ex:nil", "<value><ex:nil/></value>", None, "<nil/>"),
    ("untyped", "<value> spaced  text </value>", " spaced  text ", "<string> spaced  text </string>"),
    ("cdata", "<value><string><![CDATA[<b>&amp;</b>]]></string></value>", "<b>&amp;</b>", "&lt;b&gt;&amp;amp;&lt;/b&gt;"),
    ("char refs", "<value><string>&#233;&#x2603;&lt;&amp;&gt;&quot;&apos;</string></value>", "\u00e9\u2603<&>\"'", None),
    ("base64 lines", "<value><base64>AAEC\nAwQF\r\nBgc=</base64></value>", bytes(range(8)), "<base64>AAECAwQFBgc=</base64>"),
    ("boolean words", "<value><boolean>true</boolean></value>", True, "<boolean>1</boolean>"),
    ("boolean zero", "<value><boolean>0</boolean></value>", False, "<boolean>0</boolean>"),
    ("double exponent", "<value><double>-1.5E3</double></value>", -1500.0, None),
]
for name, xml, expected, fragment in raws:
    got, text = raw(xml)
    ok = same(got, expected) and (fragment is None or fragment in text)
    results.append({"case": name, "ok": ok, "sent": xml, "got": text})
print(json.dumps(results))
"##;

#[test]
fn every_xml_rpc_type_round_trips_through_python() {
    let (d, port) = daemon_on_tcp("types", &[]);
    let results = python(PYTHON_TYPES, &[&port.to_string()]);
    let results = results.as_array().unwrap();
    assert!(results.len() > 30, "{results:?}");
    let failed: Vec<_> = results.iter().filter(|r| r["ok"] != true).collect();
    assert!(failed.is_empty(), "cases that did not round-trip:\n{failed:#?}");
    drop(d);
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(["-sS", "-i"]).args(args).output().expect("curl is installed");
    assert!(out.status.success(), "curl {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn curl_with_an_xml_body_and_with_a_json_body() {
    let (d, port) = daemon_on_tcp("echo", &[]);
    let url = format!("http://127.0.0.1:{port}/");
    let xml = "<?xml version=\"1.0\"?><methodCall><methodName>my.echo</methodName><params><param><value><string>via curl &amp; xml</string></value></param></params></methodCall>";
    let answer = curl(&["-H", "Content-Type: text/xml", "--data-binary", xml, &url]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("content-type: text/xml"), "{answer}");
    assert!(
        answer.ends_with("<methodResponse><params><param><value><string>via curl &amp; xml</string></value></param></params></methodResponse>"),
        "{answer}"
    );
    // No Content-Type at all (curl's form default): the body says it is XML.
    let answer = curl(&["--data-binary", xml, &url]);
    assert!(answer.contains("<string>via curl &amp; xml</string>"), "{answer}");
    // Over the unix socket too.
    let answer = curl(&[
        "--unix-socket",
        d.sock.to_str().unwrap(),
        "-H",
        "Content-Type: text/xml",
        "--data-binary",
        xml,
        "http://localhost/RPC2",
    ]);
    assert!(answer.contains("<string>via curl &amp; xml</string>"), "{answer}");
    let body = r#"{"jsonrpc":"2.0","method":"my.echo","params":["via curl & json"],"id":7}"#;
    let answer = curl(&["-H", "Content-Type: application/json", "--data-binary", body, &url]);
    assert!(answer.to_ascii_lowercase().contains("content-type: application/json"), "{answer}");
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    assert_eq!(json(body), json(r#"{"jsonrpc":"2.0","result":"via curl & json","id":7}"#));
}

#[test]
fn http_errors_405_400_413_close_only_the_faulty_connection() {
    let (d, port) = daemon_on_tcp("echo", &["--max-message", "4096"]);
    let mut keeper = xml_client(&d);
    let call = |s: &str| {
        format!("<?xml version=\"1.0\"?><methodCall><methodName>my.echo</methodName><params><param><value><string>{s}</string></value></param></params></methodCall>")
    };
    // Small enough to be read whole at once: the daemon answers 413 and closes with nothing unread
    // (unread bytes would make the kernel reset the connection, possibly before the answer is read).
    let big = call(&"z".repeat(5000));
    let cases: Vec<(String, u16)> = vec![
        ("DELETE / HTTP/1.1\r\nHost: localhost\r\n\r\n".into(), 405),
        ("PUT /RPC2 HTTP/1.0\r\n\r\n".into(), 405),
        ("PUT / HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: 2\r\n\r\n<a".into(), 405),
        ("POST / HTTP/1.1\r\nHost x\r\n\r\n".into(), 400),
        ("POST\x01/ HTTP/1.1\r\n\r\n".into(), 400),
        ("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n".into(), 400),
        (
            format!(
                "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{big}",
                big.len()
            ),
            413,
        ),
        (
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: 10000000000\r\n\r\n"
                .into(),
            413,
        ),
    ];
    for (request, code) in &cases {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = BufReader::new(s);
        // The daemon may answer and close before the whole request is written.
        let _ = r.get_mut().write_all(request.as_bytes());
        let (status, headers, body) = http_response(&mut r);
        assert_eq!(status, *code, "for {request:.80?}: {body}");
        assert!(headers.iter().any(|(k, v)| k == "connection" && v == "close"), "{headers:?}");
        if *code == 405 {
            assert!(headers.iter().any(|(k, v)| k == "allow" && v == "GET, POST"), "{headers:?}");
        }
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        assert!(rest.is_empty(), "the connection must close after an HTTP error");
        assert_eq!(echo(&mut keeper, "still here"), Value::from("still here"), "after {request:.60?}");
    }
    // Under the limit is fine, on a fresh connection and on the keeper's.
    let fits = "f".repeat(3000);
    assert_eq!(echo(&mut keeper, &fits), Value::from(fits.as_str()));
    // Past it, tomte's client reports the status and the daemon's reason.
    let mut c = xml_client(&d);
    match c.call("my.echo", &Args::Positional(vec![Value::from("z".repeat(5000))])) {
        Err(ClientError::Http { status: 413, text, .. }) => assert!(text.contains("4096"), "{text}"),
        other => panic!("expected HTTP 413, got {other:?}"),
    }
    // Far past it, the daemon answers and closes while the client is still writing: the client
    // still reports the daemon's answer rather than a broken pipe.
    let huge = Args::Positional(vec![Value::from("h".repeat(4 << 20))]);
    let tcp: Address = format!("tcp://127.0.0.1:{port}").parse().unwrap();
    for address in [Address::unix(&d.sock), tcp] {
        let mut c = Client::connect_with(&address, Protocol::Xml).unwrap();
        match c.call("my.echo", &huge) {
            Err(ClientError::Http { status: 413, .. }) => {}
            other => panic!("{address}: expected HTTP 413, got {other:?}"),
        }
        let mut c = Client::connect_with(&address, Protocol::Json).unwrap();
        let fault = c.call("my.echo", &huge).unwrap().unwrap_err();
        assert_eq!(fault.code, -32600, "{address}: {fault}");
        assert!(fault.full_message().contains("4096"), "{fault}");
    }
    assert_eq!(echo(&mut keeper, "after huge"), Value::from("after huge"));
}

/// Hostile documents, each on its own connection, while a keeper connection keeps being served.
#[test]
fn hostile_xml_is_refused_and_memory_stays_bounded() {
    let (d, port) = daemon_on_tcp("types", &[]);
    let pid = d.pid().unwrap();
    let mut keeper = xml_client(&d);
    let call = |value: &str| {
        format!("<?xml version=\"1.0\"?><methodCall><methodName>test.echo</methodName><params><param>{value}</param></params></methodCall>")
    };
    let mut lol = String::from("<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for i in 1..10 {
        let prev = if i == 1 { "&lol;".to_owned() } else { format!("&lol{};", i - 1) };
        lol.push_str(&format!("<!ENTITY lol{i} \"{}\">", prev.repeat(10)));
    }
    lol.push_str("]><methodCall><methodName>test.echo</methodName><params><param><value><string>&lol9;</string></value></param></params></methodCall>");
    let deep_arrays =
        call(&format!("{}{}", "<value><array><data>".repeat(10_000), "</data></array></value>".repeat(10_000)));
    let deep_structs = call(&format!(
        "{}<value>x</value>{}",
        "<value><struct><member><name>a</name>".repeat(10_000),
        "</member></struct></value>".repeat(10_000)
    ));
    let deep_elements = format!("{}{}", "<x>".repeat(10_000), "</x>".repeat(10_000));
    let cases: Vec<(&str, String, &str)> = vec![
        ("malformed: unclosed", call("<value><string>x</value>"), "-32700"),
        ("malformed: truncated", "<?xml version=\"1.0\"?><methodCall><methodName>my.echo</method".into(), "-32700"),
        ("malformed: two roots", format!("{}<methodCall/>", call("<value>x</value>")), "-32700"),
        ("malformed: not xml", "{ this is not xml".into(), "-32700"),
        ("forbidden character", call("<value>\u{0}</value>"), "-32700"),
        ("unknown element", call("<value><blob>x</blob></value>"), "-32700"),
        ("undefined entity", call("<value><string>&nbsp;</string></value>"), "-32700"),
        (
            "external entity",
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE m [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>{}",
                call("<value><string>&xxe;</string></value>").trim_start_matches("<?xml version=\"1.0\"?>")
            ),
            "-32700",
        ),
        (
            "external DTD",
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE methodCall SYSTEM \"http://127.0.0.1:1/evil.dtd\">{}",
                call("<value>x</value>").trim_start_matches("<?xml version=\"1.0\"?>")
            ),
            "-32700",
        ),
        ("billion laughs", lol, "-32700"),
        ("10 000-deep arrays", deep_arrays, "-32700"),
        ("10 000-deep structs", deep_structs, "-32700"),
        ("10 000-deep unknown elements", deep_elements, "-32700"),
    ];
    for (what, body, code) in &cases {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = BufReader::new(s);
        r.get_mut().write_all(http_post("text/xml", body).as_bytes()).unwrap();
        let (status, _, answer) = http_response(&mut r);
        assert_eq!(status, 200, "{what}: {answer}");
        assert!(answer.contains("<fault>") && answer.contains(&format!("<int>{code}</int>")), "{what}: {answer}");
        assert!(!answer.contains("root:") && !answer.contains("lollollol"), "{what} leaked: {answer}");
        // The faulty connection stays usable (a fault is an answer), and so does everyone else's.
        r.get_mut().write_all(http_post("text/xml", &call("<value><i4>1</i4></value>")).as_bytes()).unwrap();
        let (status, _, answer) = http_response(&mut r);
        assert_eq!(status, 200);
        assert!(answer.contains("<int>1</int>"), "{what}, then: {answer}");
        assert_eq!(echo(&mut keeper, what), Value::from(*what));
    }
    // Depth 64 is the cap: 64 levels pass, 65 do not.
    for (depth, ok) in [(64, true), (65, false)] {
        let doc = call(&format!("{}{}", "<value><array><data>".repeat(depth), "</data></array></value>".repeat(depth)));
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = BufReader::new(s);
        r.get_mut().write_all(http_post("text/xml", &doc).as_bytes()).unwrap();
        let (_, _, answer) = http_response(&mut r);
        assert_eq!(!answer.contains("<fault>"), ok, "depth {depth}: {answer:.300}");
        assert_eq!(echo(&mut keeper, "ok"), Value::from("ok"));
    }
    let rss = vm_rss_kb(pid);
    eprintln!("daemon VmRSS after hostile XML: {rss} kB");
    assert!(rss < 64 * 1024, "daemon VmRSS {rss} kB after hostile input");
    assert!(alive(pid));
}

#[test]
fn tomte_client_speaks_xml_rpc_over_http_with_keep_alive() {
    let (d, port) = daemon_on_tcp("types", &[]);
    for address in [Address::unix(&d.sock), format!("tcp://127.0.0.1:{port}").parse().unwrap()] {
        let mut c = Client::connect_with(&address, Protocol::Xml).unwrap();
        assert_eq!(c.protocol(), Protocol::Xml);
        let values = vec![
            Value::Int(1 << 40),
            Value::Int(-5),
            Value::Bool(true),
            Value::from("a <&> \u{e9}"),
            Value::Double(-0.25),
            Value::DateTime("20240229T23:59:01".into()),
            Value::Base64((0..=255).collect()),
            Value::Nil,
            Value::Array(vec![Value::Int(1), Value::Array(vec![])]),
            Value::structure([("k", Value::from("v")), ("n", Value::Nil)]),
        ];
        for v in &values {
            let got = c.call("test.echo", &Args::Positional(vec![v.clone()])).unwrap().unwrap();
            assert_eq!(&got, v);
        }
        let all = c.call("test.echoAll", &Args::Positional(values.clone())).unwrap().unwrap();
        assert_eq!(all, Value::Array(values));
        let fault = c.call("no.such", &Args::default()).unwrap().unwrap_err();
        assert_eq!((fault.code, fault.message.as_str()), (-32601, "Method not found"));
        let fault = c.call("my.echo", &Args::Positional(vec![Value::Int(5)])).unwrap().unwrap_err();
        assert_eq!(fault.code, -32602);
        // XML-RPC has no named parameters: refused before anything is sent.
        let named = Args::Named(vec![("message".into(), Value::from("x"))]);
        assert!(matches!(c.call("my.echo", &named), Err(ClientError::Encode { .. })));
        // Keep-alive: the client never reconnects, so every call here rides the one connection.
        for i in 0..200 {
            assert_eq!(echo(&mut c, &format!("n{i}")), Value::from(format!("n{i}")));
        }
    }
}

#[test]
fn tomtectl_speaks_xml_rpc() {
    let (d, port) = daemon_on_tcp("echo", &[]);
    for sock in [format!("unix://{}", d.sock.display()), format!("tcp://127.0.0.1:{port}")] {
        let ctl = |args: &[&str]| {
            Command::new(binary("tomtectl")).args(["--xml", "--socket", &sock]).args(args).output().unwrap()
        };
        let out = ctl(&["call", "my.echo", "hello <xml>"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), "\"hello <xml>\"");
        let out = ctl(&["call", "my.echo", r#"["json array"]"#]);
        assert_eq!(text(&out.stdout).trim(), "\"json array\"");
        let out = ctl(&["methods"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let listing = text(&out.stdout);
        assert!(listing.contains("my.echo") && listing.contains("I'm here to reply your data"), "{listing}");
        assert!(listing.contains("system.multicall"), "{listing}");
        let out = ctl(&["help", "my.echo"]);
        assert!(text(&out.stdout).contains("my.echo(string) -> string"), "{}", text(&out.stdout));
        let out = ctl(&["--json", "status"]);
        assert_eq!(json(&text(&out.stdout))["pid"], d.pid().unwrap());
        let out = ctl(&["call", "no.such"]);
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert!(err.contains("-32601") && err.contains("Method not found"), "{err}");
        let out = ctl(&["call", "my.echo", "42"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("-32602"), "{}", text(&out.stderr));
        // key=value pairs are named parameters, which XML-RPC does not have.
        let out = ctl(&["call", "my.echo", "message=hi"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains("named parameters"), "{}", text(&out.stderr));
    }
    let out =
        Command::new(binary("tomtectl")).args(["--xml", "--socket", "tcp://127.0.0.1:1", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("tcp://127.0.0.1:1"), "must say where it tried: {}", text(&out.stderr));
}

/// Python's xmlrpc.client sending its requests in UTF-16 and Latin-1 (it encodes the whole body
/// so, with a matching declaration), with and without a Content-Type.
#[test]
fn python_requests_in_utf16_and_latin1_are_decoded() {
    let (d, port) = daemon_on_tcp("echo", &[]);
    let script = r##"
import json, sys, http.client, xmlrpc.client as x
out = {}
for enc in ("utf-16", "utf-16-le", "iso-8859-1", "utf-8"):
    s = x.ServerProxy(sys.argv[1], encoding=enc)
    out[enc] = s.my.echo("caf\u00e9 \u00e0 la cr\u00e8me")
# No Content-Type at all: the daemon sniffs the UTF-16 body as XML.
body = x.dumps(("\u00e9t\u00e9",), "my.echo", encoding="utf-16").encode("utf-16")
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[2]))
c.putrequest("POST", "/RPC2")
c.putheader("Content-Length", str(len(body)))
c.endheaders(body)
r = c.getresponse()
out["sniffed"] = x.loads(r.read())[0][0]
# An encoding nobody knows: fault -32701.
bogus = b"<?xml version='1.0' encoding='x-no-such-thing'?><methodCall><methodName>my.echo</methodName><params><param><value>a</value></param></params></methodCall>"
c.request("POST", "/RPC2", bogus, {"Content-Type": "text/xml"})
try:
    x.loads(c.getresponse().read())
    out["bogus"] = "accepted"
except x.Fault as f:
    out["bogus"] = f.faultCode
print(json.dumps(out))
"##;
    let out = python(script, &[&format!("http://127.0.0.1:{port}/RPC2"), &port.to_string()]);
    for enc in ["utf-16", "utf-16-le", "iso-8859-1", "utf-8"] {
        assert_eq!(out[enc], "café à la crème", "{enc}: {out}");
    }
    assert_eq!(out["sniffed"], "été", "{out}");
    assert_eq!(out["bogus"], -32701, "{out}");
    drop(d);
}
