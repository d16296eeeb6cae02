//! A daemon for round-trip tests of every XML-RPC type: `test.echo` returns its first parameter
//! unchanged (whatever its type), `test.echoAll` returns all of them as an array. Neither declares
//! a signature, so both accept anything. `my.echo` is the echo daemon's method, for comparison.
//!
//! Typed methods, each returning its parameter, show how signatures are checked: strictly in
//! XML-RPC (a `<string>` is not a date, an `<int>` not a double), leniently in JSON (a date or
//! bytes arrive as strings and are converted, or refused with −32602 naming the parameter):
//! `test.date(when: dateTime.iso8601) -> dateTime.iso8601`, `test.bytes(data: base64) -> base64`,
//! `test.double(x: double) -> double`.
//!
//! ```text
//! cargo run --example types -- run --socket tcp://127.0.0.1:10042
//! python3 -c 'import xmlrpc.client as x; print(x.ServerProxy("http://127.0.0.1:10042/").test.echo(b"\0\1"))'
//! ```

use serde::Deserialize;
use tomte::{Bytes, Daemon, DateTime, Method, Type, Value};

#[derive(Deserialize)]
struct When {
    when: DateTime,
}
#[derive(Deserialize)]
struct Data {
    data: Bytes,
}
#[derive(Deserialize)]
struct X {
    x: f64,
}

fn main() {
    let mut daemon = Daemon::new("types");
    daemon
        .method(
            Method::new("test.echo", |params, _| Ok(params.into_values().into_iter().next().unwrap_or(Value::Nil)))
                .description("Returns its first parameter unchanged (nil without one)"),
        )
        .method(
            Method::new("test.echoAll", |params, _| Ok(Value::Array(params.into_values())))
                .description("Returns all its parameters as an array"),
        )
        .method(
            Method::new("my.echo", |mut params, _| Ok(Value::String(params.take("message")?)))
                .description("I'm here to reply your data")
                .returns(Type::String)
                .param(Type::String, "message"),
        );
    daemon
        .method(
            Method::typed("test.date", |When { when }, _| Ok(when))
                .description("Returns its date")
                .returns(Type::DateTime),
        )
        .method(
            Method::typed("test.bytes", |Data { data }, _| Ok(data))
                .description("Returns its bytes")
                .returns(Type::Base64),
        )
        .method(
            Method::typed("test.double", |X { x }, _| Ok(x)).description("Returns its double").returns(Type::Double),
        );
    std::process::exit(tomte::cli::main(daemon));
}
