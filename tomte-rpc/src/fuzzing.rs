//! The properties every decoder must have, checked on one input: shared by the cargo-fuzz
//! targets (`fuzz/fuzz_targets/`) and by the test that replays their corpus on stable
//! (`tests/fuzz_corpus.rs`). Not an API: each check panics when a property fails.
//!
//! For every codec:
//!
//! * **no panic**, whatever the bytes;
//! * **round trip**: what decodes re-encodes, the encoding decodes to an equal value, and
//!   encoding that again gives the same bytes;
//! * **nesting**: a decoded value is never deeper than the decoder's limit;
//! * **linear memory**: the heap a decoded value holds (counted from its vectors' and
//!   strings' capacities) is at most [`FOOTPRINT_PER_BYTE`] bytes per input byte, plus
//!   [`SLACK`]; an answer is at most a fixed multiple of the request plus [`SLACK`].
//!
//! Time is left to the fuzzer (`-timeout`, `-report_slow_units`) and to `tests/worst_cases.rs`.

use crate::php::{self, Key, PhpValue};
use crate::{comodojo, jsonrpc, xmlrpc, Method, Registry, Served, Type, Value};

/// Heap bytes a decoded value may hold per input byte. A `Value` is 32 bytes and vectors
/// double as they grow, so `[[[[0]]]]`-like inputs approach 64; nothing legitimate is near 128.
pub const FOOTPRINT_PER_BYTE: usize = 128;

/// Fixed allowance on top of the per-byte bounds.
pub const SLACK: usize = 1 << 16;

/// serde_json's recursion limit, which JSON values are decoded under.
pub const JSON_MAX_DEPTH: usize = 128;

/// The registry the serving checks run against: a method with a signature (`my.echo`) and one
/// without (`test.echo`, which answers its first parameter, so any value is re-encoded).
pub fn registry() -> Registry<()> {
    let mut r = Registry::new();
    r.add(
        Method::new("my.echo", |mut p, _: &mut ()| Ok(Value::String(p.take("message")?)))
            .returns(Type::String)
            .param(Type::String, "message"),
    )
    .expect("a fresh name");
    r.add(Method::new("test.echo", |p, _: &mut ()| Ok(p.into_values().into_iter().next().unwrap_or_default())))
        .expect("a fresh name");
    r
}

/// How deep a value nests (a scalar is 0, `[1]` is 1) and the heap bytes it holds. Iterative,
/// so that a decoder bug making a very deep value is reported rather than overflowing here.
pub fn measure(v: &Value) -> (usize, usize) {
    let mut stack = vec![(v, 0)];
    let (mut depth, mut heap) = (0, 0);
    while let Some((v, d)) = stack.pop() {
        depth = depth.max(d);
        match v {
            Value::String(s) | Value::DateTime(s) => heap += s.capacity(),
            Value::Base64(b) => heap += b.capacity(),
            Value::Array(items) => {
                heap += items.capacity() * size_of::<Value>();
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            Value::Struct(members) => {
                heap += members.capacity() * size_of::<(String, Value)>();
                for (k, i) in members {
                    heap += k.capacity();
                    stack.push((i, d + 1));
                }
            }
            Value::Nil | Value::Bool(_) | Value::Int(_) | Value::Double(_) => {}
        }
    }
    (depth, heap)
}

/// [`measure`] for PHP values.
pub fn measure_php(v: &PhpValue) -> (usize, usize) {
    let mut stack = vec![(v, 0)];
    let (mut depth, mut heap) = (0, 0);
    while let Some((v, d)) = stack.pop() {
        depth = depth.max(d);
        match v {
            PhpValue::String(s) => heap += s.capacity(),
            PhpValue::Array(items) => {
                heap += items.capacity() * size_of::<(Key, PhpValue)>();
                for (k, i) in items {
                    if let Key::String(s) = k {
                        heap += s.capacity();
                    }
                    stack.push((i, d + 1));
                }
            }
            PhpValue::Null | PhpValue::Bool(_) | PhpValue::Int(_) | PhpValue::Double(_) => {}
        }
    }
    (depth, heap)
}

fn bounded(what: &str, (depth, heap): (usize, usize), max_depth: usize, input: usize) {
    assert!(depth <= max_depth, "{what}: decoded {depth} levels deep, the limit is {max_depth}");
    let limit = FOOTPRINT_PER_BYTE * input + SLACK;
    assert!(heap <= limit, "{what}: {heap} heap bytes decoded from {input} input bytes (limit {limit})");
}

fn answer_bounded(what: &str, answer: usize, per_byte: usize, input: usize) {
    let limit = per_byte * input + SLACK;
    assert!(answer <= limit, "{what}: a {answer}-byte answer to {input} bytes (limit {limit})");
}

/// Runs `check` on every file of `dir` (a fuzz target's corpus, replayed by an ordinary test),
/// naming the file that fails. Panics when the directory holds fewer than ten inputs, so a
/// corpus that went missing is not a silent pass.
pub fn replay(dir: &std::path::Path, check: fn(&[u8])) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{}: only {} inputs", dir.display(), files.len());
    for file in files {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
            let why = panic.downcast_ref::<String>().map(String::as_str).or(panic.downcast_ref::<&str>().copied());
            panic!("{} fails its check: {}", file.display(), why.unwrap_or("(no message)"));
        }
    }
}

/// JSON values and JSON-RPC serving.
pub fn check_jsonrpc(data: &[u8]) {
    check_json_value(data);
    let mut out = Vec::new();
    match jsonrpc::serve(&registry(), &mut (), data, &mut out) {
        Served::Answered => {
            let v: serde_json::Value = serde_json::from_slice(&out).expect("the server writes valid JSON");
            match &v {
                serde_json::Value::Array(items) => {
                    assert!(!items.is_empty() && items.len() <= jsonrpc::MAX_BATCH, "{} answers", items.len());
                    items.iter().for_each(check_json_response);
                }
                one => check_json_response(one),
            }
            // Each of at most MAX_BATCH answers carries a short error, or a value re-encoded
            // from the request (`9e15` is written `9000000000000000.0`).
            answer_bounded("JSON-RPC", out.len(), 8, data.len() + jsonrpc::MAX_BATCH * 64);
        }
        Served::Nothing => assert!(out.is_empty(), "nothing to answer, yet {} bytes", out.len()),
        Served::Later(_) => panic!("no method of the fuzz registry defers"),
    }
}

fn check_json_response(r: &serde_json::Value) {
    assert_eq!(r["jsonrpc"], "2.0", "{r}");
    let o = r.as_object().expect("a response is an object");
    assert!(o.contains_key("id"), "{r}");
    assert!(o.contains_key("result") != o.contains_key("error"), "{r}");
    if let Some(e) = o.get("error") {
        assert!(e["code"].is_i64() && e["message"].is_string(), "{r}");
    }
}

/// A JSON text read as a [`Value`] writes back to an equal value, and to the same text again.
pub fn check_json_value(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    bounded("JSON value", measure(&v), JSON_MAX_DEPTH, data.len());
    let text = serde_json::to_vec(&v).expect("a decoded value encodes");
    let again: Value = serde_json::from_slice(&text).expect("our own JSON decodes");
    assert_eq!(again, v, "through {}", String::from_utf8_lossy(&text));
    assert_eq!(serde_json::to_vec(&again).expect("encodes"), text);
}

/// XML-RPC calls and responses decode, re-encode and decode again equal; serving answers a
/// response that decodes.
pub fn check_xmlrpc(data: &[u8]) {
    if let Ok((name, params)) = xmlrpc::decode_call(data) {
        let as_array = Value::Array(params);
        bounded("XML-RPC call", measure(&as_array), xmlrpc::MAX_DEPTH + 1, data.len());
        let Value::Array(params) = as_array else { unreachable!() };
        let mut bytes = Vec::new();
        xmlrpc::encode_call(&name, &params, &mut bytes).expect("whatever decodes encodes");
        let again = xmlrpc::decode_call(&bytes).expect("our own call decodes");
        assert_eq!(again, (name.clone(), params), "through {}", String::from_utf8_lossy(&bytes));
        let mut twice = Vec::new();
        xmlrpc::encode_call(&again.0, &again.1, &mut twice).expect("encodes");
        assert_eq!(twice, bytes);
    }
    if let Ok(outcome) = xmlrpc::decode_response(data) {
        if let Ok(v) = &outcome {
            bounded("XML-RPC response", measure(v), xmlrpc::MAX_DEPTH, data.len());
        }
        let mut bytes = Vec::new();
        xmlrpc::encode_response(&outcome, &mut bytes);
        let again = xmlrpc::decode_response(&bytes).expect("our own response decodes");
        match (&outcome, &again) {
            (Ok(v), Ok(w)) => assert_eq!(v, w),
            (Err(f), Err(g)) => assert_eq!((f.code, f.full_message()), (g.code, g.message.clone())),
            _ => panic!("{outcome:?} came back as {again:?}"),
        }
    }
    let mut out = Vec::new();
    assert!(matches!(xmlrpc::serve(&registry(), &mut (), data, &mut out), Served::Answered));
    let _outcome = xmlrpc::decode_response(&out).expect("the server's answer decodes");
    // A value re-encoded from the request: `<double>1e300</double>` is written in 300 digits.
    answer_bounded("XML-RPC", out.len(), 32, data.len());
}

/// PHP-serialized values parse, serialize and parse again to the same value and bytes.
pub fn check_php(data: &[u8]) {
    let Ok(v) = php::parse(data) else { return };
    bounded("PHP value", measure_php(&v), php::MAX_DEPTH, data.len());
    let mut bytes = Vec::new();
    php::serialize(&v, &mut bytes);
    answer_bounded("PHP serialize", bytes.len(), 4, data.len());
    let again = php::parse(&bytes).expect("our own serialization parses");
    // Debug tells NaN from NaN as equal and -0.0 from 0.0 as different, as wanted here.
    assert_eq!(format!("{again:?}"), format!("{v:?}"));
    let mut twice = Vec::new();
    php::serialize(&again, &mut twice);
    assert_eq!(twice, bytes);
}

/// A comodojo line is answered with exactly one frame that decodes; a request that decodes
/// re-encodes to the same request.
pub fn check_comodojo(data: &[u8]) {
    if let Ok(body) = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data.trim_ascii()) {
        check_php(&body);
    }
    let request = comodojo::decode_request(data);
    if let Ok(comodojo::Request { content_type: Some(ct), message }) = &request {
        let mut line = Vec::new();
        comodojo::encode_request(ct, message, &mut line);
        let line = line.strip_suffix(comodojo::EOL).expect("a frame ends with CRLF");
        assert_eq!(comodojo::decode_request(line).as_ref(), request.as_ref());
    }
    let _ = comodojo::decode_greeter(data);
    let mut out = Vec::new();
    assert!(matches!(comodojo::serve(&registry(), &mut (), data, &mut out), Served::Answered));
    let line = out.strip_suffix(comodojo::EOL).expect("a frame ends with CRLF");
    assert!(!line.contains(&b'\n'), "one frame, one line");
    let (status, _) = comodojo::decode_response(line).expect("our own frame decodes");
    assert_eq!(status, request.is_ok(), "status true exactly when the request frame was readable");
    answer_bounded("comodojo", out.len(), 64, data.len());
}
