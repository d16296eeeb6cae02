//! The methods the JSON-RPC 2.0 specification's examples call (`subtract`, `sum`, `update`,
//! `notify_hello`, `notify_sum`, `get_data`), on the standard command line: the integration
//! tests replay the specification's request/response pairs against it.

use tomte::{Daemon, Fault, Method, Type, Value};

fn ints(values: &[Value]) -> Result<Vec<i64>, Fault> {
    values
        .iter()
        .map(|v| match v {
            Value::Int(i) => Ok(*i),
            other => Err(Fault::invalid_params(format!("expected int, got {}", other.type_name()))),
        })
        .collect()
}

fn main() {
    let mut d = Daemon::new("spec");
    d.method(
        Method::new("subtract", |p, _| Ok(Value::Int(p.get::<i64>("minuend")? - p.get::<i64>("subtrahend")?)))
            .description("minuend - subtrahend")
            .returns(Type::Int)
            .param(Type::Int, "minuend")
            .param(Type::Int, "subtrahend"),
    )
    .method(
        Method::new("sum", |p, _| Ok(Value::Int(ints(p.values())?.iter().sum()))).description("The sum of any ints"),
    )
    .method(Method::new("notify_sum", |p, _| ints(p.values()).map(|_| Value::Nil)))
    .method(Method::new("update", |_, _| Ok(Value::Nil)))
    .method(Method::new("notify_hello", |_, _| Ok(Value::Nil)))
    .method(
        Method::new("get_data", |_, _| Ok(Value::from(vec![Value::from("hello"), Value::Int(5)]))).returns(Type::Array),
    );
    std::process::exit(tomte::cli::main(d));
}
