//! Worst cases for every decoder: huge structs and arrays, deep nesting, megabytes of
//! whitespace. Each must be answered (a result or a fault) quickly, without a stack overflow or
//! a panic. The bound (2 s of CPU, even in a debug build) is generous: it is there to catch a
//! quadratic path (a 100 000-member object once took 67 s in debug, 13 s in release), not to
//! measure speed. It is CPU time of the test's own thread, so a machine busy with other builds
//! does not make the tests fail; wall time is printed too.

use std::time::{Duration, Instant};

use base64::Engine as _;
use rustix::time::{clock_gettime, ClockId};
use tomte_rpc::{comodojo, fault, jsonrpc, php, xmlrpc, Method, Registry, Served, Type, Value};

const N: usize = 100_000;
const BOUND: Duration = Duration::from_secs(2);

fn registry() -> Registry<()> {
    let mut r = Registry::new();
    r.add(
        Method::new("my.echo", |mut p, _: &mut ()| Ok(Value::String(p.take("message")?)))
            .returns(Type::String)
            .param(Type::String, "message"),
    )
    .unwrap();
    r.add(Method::new("count", |p, _: &mut ()| {
        Ok(Value::from(match p.values().first() {
            Some(Value::Struct(m)) => m.len(),
            Some(Value::Array(a)) => a.len(),
            _ => 0,
        }))
    }))
    .unwrap();
    r
}

fn thread_cpu() -> Duration {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Runs `f`, checks it took less than [`BOUND`] of CPU, and says how long it took.
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let (cpu, wall) = (thread_cpu(), Instant::now());
    let out = f();
    let (cpu, wall) = (thread_cpu() - cpu, wall.elapsed());
    eprintln!("{what}: {cpu:?} CPU, {wall:?} wall");
    assert!(cpu < BOUND, "{what} took {cpu:?} of CPU");
    out
}

fn json(input: &[u8]) -> serde_json::Value {
    let mut out = Vec::new();
    assert_eq!(jsonrpc::serve(&registry(), &mut (), input, &mut out), Served::Answered);
    serde_json::from_slice(&out).expect("valid JSON out")
}

fn xml(input: &[u8]) -> Result<Value, tomte_rpc::Fault> {
    let mut out = Vec::new();
    assert_eq!(xmlrpc::serve(&registry(), &mut (), input, &mut out), Served::Answered);
    xmlrpc::decode_response(&out).expect("the answer decodes")
}

fn json_object(n: usize, distinct: usize) -> String {
    let mut s = String::with_capacity(n * 16);
    s.push('{');
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("\"k{}\":{i}", i % distinct));
    }
    s.push('}');
    s
}

#[test]
fn json_object_of_100_000_members_as_named_params() {
    let params = json_object(N, N);
    assert!(params.len() > 1_000_000);
    let call = format!(r#"{{"jsonrpc":"2.0","method":"my.echo","params":{params},"id":1}}"#);
    let v = timed("JSON: 100 000 distinct members as named params", || json(call.as_bytes()));
    assert_eq!(v["error"]["code"], fault::INVALID_PARAMS);
}

#[test]
fn json_object_of_100_000_members_as_a_positional_param() {
    for distinct in [N, 1000, 1] {
        let call = format!(r#"{{"jsonrpc":"2.0","method":"count","params":[{}],"id":1}}"#, json_object(N, distinct));
        let v = timed(&format!("JSON: 100 000 members, {distinct} distinct names"), || json(call.as_bytes()));
        assert_eq!(v["result"], distinct);
    }
}

#[test]
fn json_array_of_100_000_elements_and_big_batches() {
    let call = format!(r#"{{"jsonrpc":"2.0","method":"count","params":[[{}0]],"id":1}}"#, "0,".repeat(N - 1));
    assert_eq!(timed("JSON: 100 000-element array", || json(call.as_bytes()))["result"], N);
    let batch = format!("[{}1]", r#"{"jsonrpc":"2.0","method":"count","id":1},"#.repeat(N));
    let v = timed("JSON: batch of 100 001 requests", || json(batch.as_bytes()));
    assert_eq!(v["error"]["code"], fault::INVALID_REQUEST);
}

#[test]
fn json_megabyte_of_whitespace() {
    let ws = " \n\t\r".repeat(1 << 16);
    let call =
        format!(r#"{ws}{{{ws}"jsonrpc"{ws}:"2.0",{ws}"method":"my.echo","params":[{ws}"hi"{ws}],"id":1{ws}}}{ws}"#);
    assert_eq!(timed("JSON: 1.5 MiB of whitespace", || json(call.as_bytes()))["result"], "hi");
    assert_eq!(timed("JSON: whitespace only", || json(ws.as_bytes()))["error"]["code"], fault::PARSE_ERROR);
}

#[test]
fn json_deep_nesting_is_refused() {
    let deep_arrays = "[".repeat(N);
    let deep_objects = "{\"a\":".repeat(N);
    for (what, doc) in [
        ("bare arrays (a batch)", deep_arrays.clone()),
        ("bare objects", deep_objects.clone()),
        ("arrays in params", format!(r#"{{"jsonrpc":"2.0","method":"count","params":{deep_arrays},"id":1}}"#)),
        ("objects in params", format!(r#"{{"jsonrpc":"2.0","method":"count","params":[{deep_objects}],"id":1}}"#)),
        ("closed arrays", format!("{}{}", "[".repeat(N), "]".repeat(N))),
        (
            "closed arrays in params",
            format!(r#"{{"jsonrpc":"2.0","method":"count","params":{}{},"id":1}}"#, "[".repeat(N), "]".repeat(N)),
        ),
    ] {
        let v = timed(&format!("JSON: 100 000-deep {what}"), || json(doc.as_bytes()));
        // A batch holding one deep array answers one error in an array.
        let e = if v.is_array() { &v[0]["error"] } else { &v["error"] };
        let code = e["code"].as_i64().unwrap_or_else(|| panic!("{what}: {v}"));
        assert!([fault::PARSE_ERROR, fault::INVALID_REQUEST].contains(&(code as i32)), "{what}: {v}");
    }
    // Just under serde_json's limit (128, the request object included) is a value, and a value
    // that deep is dropped and re-encoded without trouble.
    let ok = format!(r#"{{"jsonrpc":"2.0","method":"count","params":{}{},"id":1}}"#, "[".repeat(126), "]".repeat(126));
    assert_eq!(json(ok.as_bytes())["result"], 1);
}

fn xml_call(method: &str, param: &str) -> String {
    format!("<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName><params><param>{param}</param></params></methodCall>")
}

#[test]
fn xml_struct_of_100_000_members() {
    for distinct in [N, 1000, 1] {
        let mut s = String::from("<value><struct>");
        for i in 0..N {
            s.push_str(&format!("<member><name>k{}</name><value>{i}</value></member>", i % distinct));
        }
        s.push_str("</struct></value>");
        let doc = xml_call("count", &s);
        let v = timed(&format!("XML-RPC: 100 000 members, {distinct} distinct names"), || xml(doc.as_bytes()));
        assert_eq!(v, Ok(Value::from(distinct)));
    }
}

#[test]
fn xml_array_of_100_000_elements() {
    let doc = xml_call("count", &format!("<value><array><data>{}</data></array></value>", "<value/>".repeat(N)));
    assert_eq!(timed("XML-RPC: 100 000-element array", || xml(doc.as_bytes())), Ok(Value::from(N)));
}

#[test]
fn xml_megabyte_of_whitespace() {
    let ws = " \n\t\r".repeat(1 << 15);
    let doc = format!(
        "<?xml version=\"1.0\"?>{ws}<methodCall>{ws}<methodName>my.echo</methodName>{ws}<params>{ws}<param>{ws}<value>{ws}<string>hi</string>{ws}</value>{ws}</param>{ws}</params>{ws}</methodCall>{ws}"
    );
    assert_eq!(timed("XML-RPC: 1.4 MiB of whitespace", || xml(doc.as_bytes())), Ok(Value::from("hi")));
    let f = timed("XML-RPC: whitespace first", || xml(format!("{ws}{doc}").as_bytes())).unwrap_err();
    assert_eq!(f.code, fault::PARSE_ERROR);
}

#[test]
fn xml_deep_nesting_is_refused() {
    for (what, open) in [
        ("arrays", "<array><data><value>"),
        ("structs", "<struct><member><name>a</name><value>"),
        ("unknown elements", "<a>"),
    ] {
        let doc = xml_call("count", &format!("<value>{}", open.repeat(N)));
        let f = timed(&format!("XML-RPC: 100 000-deep {what}"), || xml(doc.as_bytes())).unwrap_err();
        assert_eq!(f.code, fault::PARSE_ERROR, "{what}");
    }
}

#[test]
fn xml_declaration_with_many_attributes() {
    let doc = format!(
        "<?xml version=\"1.0\" {}?><methodCall><methodName>my.echo</methodName></methodCall>",
        "a=\"\" ".repeat(N)
    );
    let f = timed("XML-RPC: declaration with 100 000 attributes", || xml(doc.as_bytes())).unwrap_err();
    assert!(f.code == fault::PARSE_ERROR || f.code == fault::INVALID_PARAMS, "{f}");
}

fn php_array(n: usize) -> Vec<u8> {
    let mut s = format!("a:{n}:{{").into_bytes();
    for i in 0..n {
        s.extend_from_slice(format!("i:{i};s:1:\"x\";").as_bytes());
    }
    s.push(b'}');
    s
}

fn comodojo_line(body: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.encode(body).into_bytes()
}

fn comodojo(line: &[u8]) -> (bool, Option<Vec<u8>>) {
    let mut out = Vec::new();
    assert_eq!(comodojo::serve(&registry(), &mut (), line, &mut out), Served::Answered);
    comodojo::decode_response(out.strip_suffix(b"\r\n").unwrap()).unwrap()
}

#[test]
fn php_array_of_100_000_elements() {
    let body = php_array(N);
    let Ok(php::PhpValue::Array(items)) = timed("PHP: 100 000-element array", || php::parse(&body)) else {
        panic!("not an array")
    };
    assert_eq!(items.len(), N);
    let (status, message) = timed("comodojo: frame of 100 000 members", || comodojo(&comodojo_line(&body)));
    assert!(!status);
    assert!(String::from_utf8_lossy(&message.unwrap()).contains("unknown key"));
}

#[test]
fn php_deep_nesting_is_refused() {
    let body = "a:1:{i:0;".repeat(N).into_bytes();
    let e = timed("PHP: 100 000-deep arrays", || php::parse(&body)).unwrap_err();
    assert_eq!(e.kind, php::PhpErrorKind::TooDeep);
    let (status, _) = timed("comodojo: 100 000-deep arrays", || comodojo(&comodojo_line(&body)));
    assert!(!status);
}

#[test]
fn php_huge_declared_counts_reserve_little() {
    // Every level claims far more members than the input holds: the parser must not reserve
    // room for them at every level.
    let mut body = Vec::new();
    for _ in 0..php::MAX_DEPTH - 1 {
        body.extend_from_slice(b"a:999999999:{i:0;");
    }
    body.extend_from_slice(&vec![b' '; 1 << 20]);
    assert!(timed("PHP: 63 levels of huge counts", || php::parse(&body)).is_err());
}

#[test]
fn comodojo_megabyte_of_whitespace() {
    let mut line = vec![b' '; 1 << 20];
    line.extend_from_slice(&comodojo_line(b"a:1:{s:7:\"message\";s:0:\"\";}"));
    line.extend_from_slice(&vec![b'\t'; 1 << 20]);
    let (status, _) = timed("comodojo: 2 MiB of whitespace around a frame", || comodojo(&line));
    assert!(status);
    let (status, _) = timed("comodojo: whitespace only", || comodojo(&vec![b' '; 1 << 20]));
    assert!(!status);
}
