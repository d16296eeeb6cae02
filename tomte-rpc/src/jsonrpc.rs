//! JSON-RPC 2.0, exactly as its specification says: single calls, batches, notifications and
//! every error case. Requests are parsed into borrowed structures (the id is echoed from its raw
//! bytes), results are serialized straight into the output buffer.

use std::borrow::Cow;
use std::io::Write as _;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::fault::Fault;
use crate::method::Reply;
use crate::registry::{Args, Protocol, Registry};
use crate::served::{Pending, Served};
use crate::value::Value;

/// One request object. Fields whose type may be wrong are read loosely, so that a wrong type
/// is an Invalid Request (answered with the id) rather than a parse error; the id is kept raw
/// and echoed byte for byte; params are read once, straight into values.
#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(borrow, default)]
    jsonrpc: Loose<'a>,
    #[serde(borrow, default)]
    method: Loose<'a>,
    #[serde(default, deserialize_with = "present_value")]
    params: Option<Value>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
}

/// A member that should be a string: the string, or the fact that it was something else.
#[derive(Default)]
enum Loose<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Loose<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Loose::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Loose::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Loose::Str(Cow::Owned(v)))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// Keeps `null` apart from absence: `"id": null` is a request, a missing id a notification.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// As [`present`], for params: `"params": null` is invalid, a missing params is none.
fn present_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

const NULL_ID: &str = "null";

/// The most requests one batch may hold: a batch is answered whole before anything is sent, so
/// without a cap a 16 MiB batch of `1,` would make a gigabyte of errors and stall the loop.
pub const MAX_BATCH: usize = 1024;

/// Serves one JSON-RPC message (a request or a batch) and appends the response to `out`.
/// A single request whose handler defers is [`Served::Later`]; in a batch, deferring is an error.
pub fn serve<C>(registry: &Registry<C>, ctx: &mut C, input: &[u8], out: &mut Vec<u8>) -> Served {
    let first = input.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        return if serve_batch(registry, ctx, input, out) { Served::Answered } else { Served::Nothing };
    }
    // Validating UTF-8 once lets the parser borrow strings without checking each one again.
    let text = match std::str::from_utf8(input) {
        Ok(t) => t,
        Err(e) => {
            write_error(out, NULL_ID, &Fault::parse_error(format!("not UTF-8: {e}")));
            return Served::Answered;
        }
    };
    match serde_json::from_str::<RawRequest>(text) {
        Ok(req) => serve_one(registry, ctx, req, out, true),
        Err(e) => {
            write_error(out, NULL_ID, &classify(input, e));
            Served::Answered
        }
    }
}

fn serve_batch<C>(registry: &Registry<C>, ctx: &mut C, input: &[u8], out: &mut Vec<u8>) -> bool {
    let (items, count) = match serde_json::from_slice::<Batch>(input) {
        Ok(Batch(items, count)) => (items, count),
        Err(e) => {
            write_error(out, NULL_ID, &Fault::parse_error(e.to_string()));
            return true;
        }
    };
    if count == 0 {
        write_error(out, NULL_ID, &Fault::invalid_request("empty batch"));
        return true;
    }
    if count > MAX_BATCH {
        let why = format!("batch of {count} requests exceeds the limit of {MAX_BATCH}");
        write_error(out, NULL_ID, &Fault::invalid_request(why));
        return true;
    }
    serve_entries(registry, ctx, items, out)
}

fn serve_entries<C>(registry: &Registry<C>, ctx: &mut C, items: Vec<&RawValue>, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    out.push(b'[');
    let mut any = false;
    for item in items {
        let mark = out.len();
        if any {
            out.push(b',');
        }
        // serde would read a struct from an array too (its fields by position): a request in
        // a batch must be an object, as a single one is.
        let wrote = match serde_json::from_str::<RawRequest>(item.get()) {
            Ok(_) if !item.get().starts_with('{') => {
                write_error(out, NULL_ID, &Fault::invalid_request("a request must be an object"));
                true
            }
            Ok(req) => matches!(serve_one(registry, ctx, req, out, false), Served::Answered),
            Err(e) => {
                write_error(out, NULL_ID, &Fault::invalid_request(e.to_string()));
                true
            }
        };
        if wrote {
            any = true;
        } else {
            out.truncate(mark);
        }
    }
    if !any {
        // A batch of notifications only: the spec says nothing is returned at all.
        out.truncate(start);
        return false;
    }
    out.push(b']');
    true
}

/// A batch's first [`MAX_BATCH`] entries, kept raw, and how many there are in all (the rest are
/// only checked for syntax, never stored).
struct Batch<'a>(Vec<&'a RawValue>, usize);

impl<'de: 'a, 'a> Deserialize<'de> for Batch<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Batch<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of requests")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                let mut count = 0;
                loop {
                    let more = if items.len() < MAX_BATCH {
                        a.next_element::<&RawValue>()?.map(|raw| items.push(raw)).is_some()
                    } else {
                        a.next_element::<serde::de::IgnoredAny>()?.is_some()
                    };
                    if !more {
                        return Ok(Batch(items, count));
                    }
                    count += 1;
                }
            }
        }
        d.deserialize_seq(V)
    }
}

/// Tells a syntax error (−32700) from valid JSON that is not a request object (−32600).
fn classify(input: &[u8], e: serde_json::Error) -> Fault {
    if e.is_data() && serde_json::from_slice::<serde::de::IgnoredAny>(input).is_ok() {
        Fault::invalid_request(e.to_string())
    } else {
        Fault::parse_error(e.to_string())
    }
}

fn serve_one<C>(
    registry: &Registry<C>,
    ctx: &mut C,
    req: RawRequest<'_>,
    out: &mut Vec<u8>,
    may_defer: bool,
) -> Served {
    // An id that is not a string, number or null makes the request invalid; its error carries
    // a null id because the id itself cannot be trusted.
    let id = match req.id {
        None => None,
        Some(raw) if valid_id(raw.get()) => Some(raw.get()),
        Some(_) => {
            write_error(out, NULL_ID, &Fault::invalid_request("id must be a string, a number or null"));
            return Served::Answered;
        }
    };
    // An invalid request is answered even without an id (with a null one).
    let (method, args) = match decode_call(req) {
        Ok(call) => call,
        Err(f) => {
            write_error(out, id.unwrap_or(NULL_ID), &f);
            return Served::Answered;
        }
    };
    let reply = match may_defer {
        true => registry.dispatch(&method, args, ctx, Protocol::Json),
        false => Reply::Now(registry.call(&method, args, ctx, Protocol::Json)),
    };
    let result = match reply {
        Reply::Now(result) => result,
        // A notification's future still runs (its effects were asked for); nobody hears of it.
        Reply::Later(future) => return Served::Later(Pending::json(id, future)),
    };
    // A notification answers nothing, not even an error.
    let Some(id) = id else { return Served::Nothing };
    match result {
        Ok(v) => write_result(out, id, &v),
        Err(f) => write_error(out, id, &f),
    }
    Served::Answered
}

fn valid_id(raw: &str) -> bool {
    matches!(raw.as_bytes().first(), Some(b'"' | b'-' | b'0'..=b'9')) || raw == "null"
}

fn decode_call<'a>(req: RawRequest<'a>) -> Result<(Cow<'a, str>, Args), Fault> {
    if !matches!(&req.jsonrpc, Loose::Str(v) if v == "2.0") {
        return Err(Fault::invalid_request("member 'jsonrpc' must be exactly \"2.0\""));
    }
    let Loose::Str(method) = req.method else {
        return Err(Fault::invalid_request("member 'method' must be a string"));
    };
    let args = match req.params {
        None => Args::default(),
        Some(Value::Array(items)) => Args::Positional(items),
        Some(Value::Struct(members)) => Args::Named(members),
        Some(_) => return Err(Fault::invalid_request("member 'params' must be an array or an object")),
    };
    Ok((method, args))
}

/// Appends a JSON-RPC result response for `id` (raw JSON text).
pub fn write_result(out: &mut Vec<u8>, id: &str, v: &Value) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"result\":");
    serde_json::to_writer(&mut *out, v).expect("serializing a Value into memory cannot fail");
    out.extend_from_slice(b",\"id\":");
    out.extend_from_slice(id.as_bytes());
    out.push(b'}');
}

/// Appends a JSON-RPC error response for `id` (raw JSON text, `null` when unknown).
pub fn write_error(out: &mut Vec<u8>, id: &str, f: &Fault) {
    let _ = write!(out, "{{\"jsonrpc\":\"2.0\",\"error\":{{\"code\":{},\"message\":", f.code);
    serde_json::to_writer(&mut *out, &f.message).expect("in memory");
    if let Some(data) = &f.data {
        out.extend_from_slice(b",\"data\":");
        serde_json::to_writer(&mut *out, data).expect("in memory");
    }
    out.extend_from_slice(b"},\"id\":");
    out.extend_from_slice(id.as_bytes());
    out.push(b'}');
}

// ---- the client side ----

/// Encodes a request; `id: None` makes it a notification.
pub fn encode_request(method: &str, params: &Args, id: Option<u64>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":");
    serde_json::to_writer(&mut *out, method).expect("in memory");
    match params {
        Args::Positional(v) if v.is_empty() => {}
        Args::Positional(v) => {
            out.extend_from_slice(b",\"params\":");
            serde_json::to_writer(&mut *out, v).expect("in memory");
        }
        Args::Named(m) => {
            out.extend_from_slice(b",\"params\":");
            serde_json::to_writer(&mut *out, &Value::Struct(m.clone())).expect("in memory");
        }
    }
    if let Some(id) = id {
        let _ = write!(out, ",\"id\":{id}");
    }
    out.push(b'}');
}

/// A decoded response: the id it answers and the result or the fault.
#[derive(Debug, PartialEq)]
pub struct Response {
    /// The id of the request it answers ([`Value::Nil`] when null or absent).
    pub id: Value,
    /// The result, or the fault in its `error` member.
    pub outcome: Result<Value, Fault>,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<WireError>,
    #[serde(default)]
    id: Value,
}

#[derive(Deserialize)]
struct WireError {
    code: i32,
    message: String,
    #[serde(default)]
    data: Option<Value>,
}

/// Why a response could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed JSON-RPC response: {0}")]
pub struct ResponseError(String);

/// Decodes one response object (not a batch).
pub fn decode_response(bytes: &[u8]) -> Result<Response, ResponseError> {
    let w: WireResponse = serde_json::from_slice(bytes).map_err(|e| ResponseError(e.to_string()))?;
    let outcome = match (w.result, w.error) {
        (_, Some(e)) => Err(Fault { code: e.code, message: e.message, data: e.data }),
        (Some(r), None) => Ok(r),
        // `"result": null` deserializes as None: a null result.
        (None, None) => Ok(Value::Nil),
    };
    Ok(Response { id: w.id, outcome })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::{Method, Type};

    fn reg() -> Registry<()> {
        let mut r = Registry::new();
        r.add(
            Method::new("subtract", |p, _| Ok(Value::Int(p.get::<i64>("minuend")? - p.get::<i64>("subtrahend")?)))
                .returns(Type::Int)
                .param(Type::Int, "minuend")
                .param(Type::Int, "subtrahend"),
        )
        .unwrap();
        r.add(Method::new("sum", |p, _| {
            Ok(Value::Int(p.values().iter().map(|v| if let Value::Int(i) = v { *i } else { 0 }).sum()))
        }))
        .unwrap();
        r.add(Method::new("update", |_, _| Ok(Value::Nil))).unwrap();
        r.add(Method::new("notify_hello", |_, _| Ok(Value::Nil))).unwrap();
        r.add(Method::new("get_data", |_, _| Ok(Value::from(vec![Value::from("hello"), Value::Int(5)])))).unwrap();
        r
    }

    fn run(input: &str) -> Option<serde_json::Value> {
        let mut out = Vec::new();
        let wrote = serve(&reg(), &mut (), input.as_bytes(), &mut out) == Served::Answered;
        assert_eq!(wrote, !out.is_empty());
        wrote.then(|| serde_json::from_slice(&out).expect("valid JSON out"))
    }

    fn same(input: &str, expected: Option<&str>) {
        let mut got = run(input);
        // The spec's examples show no `data` member; ours carries details there.
        fn strip(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
                serde_json::Value::Object(o) => {
                    if let Some(serde_json::Value::Object(e)) = o.get_mut("error") {
                        e.remove("data");
                    }
                }
                _ => {}
            }
        }
        if let Some(g) = &mut got {
            strip(g);
        }
        let expected = expected.map(|e| serde_json::from_str::<serde_json::Value>(e).unwrap());
        assert_eq!(got, expected, "for {input}");
    }

    #[test]
    fn specification_examples() {
        same(
            r#"{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}"#,
            Some(r#"{"jsonrpc": "2.0", "result": 19, "id": 1}"#),
        );
        same(
            r#"{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}"#,
            Some(r#"{"jsonrpc": "2.0", "result": 19, "id": 3}"#),
        );
        same(r#"{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}"#, None);
        same(
            r#"{"jsonrpc": "2.0", "method": "foobar", "id": "1"}"#,
            Some(r#"{"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}"#),
        );
        same(
            r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#,
            Some(r#"{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}"#),
        );
        same(
            r#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#,
            Some(r#"{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}"#),
        );
        same(
            r#"[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},{"jsonrpc": "2.0", "method"]"#,
            Some(r#"{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}"#),
        );
        same("[]", Some(r#"{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}"#));
        same(
            "[1]",
            Some(r#"[{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}]"#),
        );
        let e = r#"{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}"#;
        same("[1,2,3]", Some(&format!("[{e},{e},{e}]")));
        same(
            r#"[
                {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
                {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
                {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
                {"foo": "boo"},
                {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
                {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
            ]"#,
            Some(
                r#"[
                {"jsonrpc": "2.0", "result": 7, "id": "1"},
                {"jsonrpc": "2.0", "result": 19, "id": "2"},
                {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
                {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
                {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
            ]"#,
            ),
        );
        same(
            r#"[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]"#,
            None,
        );
    }

    #[test]
    fn edge_cases_the_original_got_wrong() {
        // Wrong version, missing jsonrpc, scalar payload, null id: answered, never a crash.
        for bad in [r#"{"jsonrpc":"1.0","method":"update","id":6}"#, r#"{"method":"update","id":6}"#] {
            let v = run(bad).unwrap();
            assert_eq!(v["error"]["code"], -32600);
            assert_eq!(v["id"], 6);
        }
        assert_eq!(run("5").unwrap()["error"]["code"], -32600);
        assert_eq!(run("").unwrap()["error"]["code"], -32700);
        let v = run(r#"{"jsonrpc":"2.0","method":"get_data","id":null}"#).unwrap();
        assert_eq!(v["result"][0], "hello");
        assert!(v["id"].is_null());
        assert_eq!(run(r#"{"jsonrpc":"2.0","method":"get_data","id":{}}"#).unwrap()["error"]["code"], -32600);
        assert_eq!(
            run(r#"{"jsonrpc":"2.0","method":"subtract","params":"x","id":1}"#).unwrap()["error"]["code"],
            -32600
        );
        // A request is an object, also in a batch (serde alone would read its fields by position).
        let v = run(r#"[["2.0","get_data",[],1]]"#).unwrap();
        assert_eq!(v[0]["error"]["code"], -32600);
        assert!(v[0]["id"].is_null());
    }

    #[test]
    fn batches_are_capped_without_storing_the_excess() {
        let big = format!("[{}1]", "1,".repeat(MAX_BATCH * 8));
        let v = run(&big).unwrap();
        assert_eq!(v["error"]["code"], -32600);
        assert!(v["error"]["data"].as_str().unwrap().contains("exceeds the limit of 1024"), "{v}");
        let ok = format!("[{}]", vec![r#"{"jsonrpc":"2.0","method":"get_data","id":1}"#; MAX_BATCH].join(","));
        assert_eq!(run(&ok).unwrap().as_array().unwrap().len(), MAX_BATCH);
    }

    #[test]
    fn client_round_trip() {
        let mut out = Vec::new();
        encode_request(
            "subtract",
            &Args::Named(vec![("minuend".into(), 5.into()), ("subtrahend".into(), 2.into())]),
            Some(7),
            &mut out,
        );
        let mut resp = Vec::new();
        assert_eq!(serve(&reg(), &mut (), &out, &mut resp), Served::Answered);
        let r = decode_response(&resp).unwrap();
        assert_eq!(r, Response { id: Value::Int(7), outcome: Ok(Value::Int(3)) });
    }
}
