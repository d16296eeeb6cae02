//! A daemon for round-trip tests of every XML-RPC type: `test.echo` returns its first parameter
//! unchanged (whatever its type), `test.echoAll` returns all of them as an array. Neither declares
//! a signature, so both accept anything. `my.echo` is the echo daemon's method, for comparison.
//!
//! ```text
//! cargo run --example types -- run --socket tcp://127.0.0.1:10042
//! python3 -c 'import xmlrpc.client as x; print(x.ServerProxy("http://127.0.0.1:10042/").test.echo(b"\0\1"))'
//! ```

use tomte::{Daemon, Method, Type, Value};

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
    std::process::exit(tomte::cli::main(daemon));
}
