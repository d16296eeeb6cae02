//! The seed's echo daemon: one method, `my.echo`, that replies with what it is given.
//!
//! ```text
//! cargo run --example echo -- start      # detaches; prints where its socket is
//! tomtectl call my.echo message=hello
//! cargo run --example echo -- stop
//! ```

use tomte::{Daemon, Method, Type, Value};

fn main() {
    let mut daemon = Daemon::new("echo");
    daemon.method(
        Method::new("my.echo", |mut params, _| Ok(Value::String(params.take("message")?)))
            .description("I'm here to reply your data")
            .returns(Type::String)
            .param(Type::String, "message"),
    );
    std::process::exit(tomte::cli::main(daemon));
}
