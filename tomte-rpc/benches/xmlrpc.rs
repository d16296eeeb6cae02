//! XML-RPC codec cost against JSON-RPC for the same calls: `my.echo` with a 40-character string,
//! and a call whose parameter is a struct of 10 members. Decoding, encoding, and a full `serve`
//! (decode, dispatch, encode) for each protocol.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tomte_rpc::{jsonrpc, xmlrpc, Args, Method, Registry, Type, Value};

fn registry() -> Registry<()> {
    let mut r = Registry::new();
    r.add(
        Method::new("my.echo", |mut p, _| Ok(Value::String(p.take("message")?)))
            .description("I'm here to reply your data")
            .returns(Type::String)
            .param(Type::String, "message"),
    )
    .unwrap();
    r.add(
        Method::new("my.store", |mut p, _| p.take::<Value>("record"))
            .returns(Type::Struct)
            .param(Type::Struct, "record"),
    )
    .unwrap();
    r
}

fn record() -> Value {
    Value::structure([
        ("id", Value::Int(42)),
        ("name", Value::from("worker_one")),
        ("enabled", Value::Bool(true)),
        ("ratio", Value::Double(0.75)),
        ("looptime", Value::Int(1)),
        ("tags", Value::from(vec!["a", "b", "c"])),
        ("owner", Value::from("root")),
        ("note", Value::from("fish & chips <daily>")),
        ("parent", Value::Nil),
        ("count", Value::Int(123_456_789_012)),
    ])
}

fn bench(c: &mut Criterion) {
    let r = registry();
    let message = "The quick brown fox jumps over the lazy d"[..40].to_owned();
    let cases = [("echo40", "my.echo", vec![Value::String(message)]), ("struct10", "my.store", vec![record()])];
    for (label, method, params) in cases {
        let mut xml = Vec::new();
        xmlrpc::encode_call(method, &params, &mut xml).unwrap();
        let mut json = Vec::new();
        jsonrpc::encode_request(method, &Args::Positional(params.clone()), Some(1), &mut json);

        let mut group = c.benchmark_group(label);
        group.bench_function("xml_decode_call", |b| b.iter(|| xmlrpc::decode_call(black_box(&xml)).unwrap()));
        let mut out = Vec::with_capacity(4096);
        group.bench_function("xml_encode_call", |b| {
            b.iter(|| {
                out.clear();
                xmlrpc::encode_call(method, black_box(&params), &mut out).unwrap();
            })
        });
        group.bench_function("xml_serve", |b| {
            b.iter(|| {
                out.clear();
                xmlrpc::serve(&r, &mut (), black_box(&xml), &mut out);
            })
        });
        group.bench_function("json_serve", |b| {
            b.iter(|| {
                out.clear();
                jsonrpc::serve(&r, &mut (), black_box(&json), &mut out)
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
