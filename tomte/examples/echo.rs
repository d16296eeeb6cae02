//! The seed's echo daemon: one method, `my.echo`, that replies with what it is given.
//!
//! ```text
//! cargo run --example echo -- start      # detaches; prints where its socket is
//! tomtectl call my.echo message=hello
//! cargo run --example echo -- stop
//! ```

use serde::Deserialize;
use tomte::{Daemon, Method, Type};

/// The parameters of `my.echo`: the field names the parameter.
#[derive(Deserialize)]
struct Echo {
    message: String,
}

fn main() {
    let mut daemon = Daemon::new("echo");
    daemon.method(
        Method::typed("my.echo", |Echo { message }, _| Ok(message))
            .description("I'm here to reply your data")
            .returns(Type::String),
    );
    std::process::exit(tomte::cli::main(daemon));
}
