//! The methods the JSON-RPC 2.0 specification's examples call (`subtract`, `sum`, `update`,
//! `notify_hello`, `notify_sum`, `get_data`), on the standard command line: the integration
//! tests replay the specification's request/response pairs against it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use tomte::{Ctx, Daemon, Event, Fault, Method, Permission, Type, Value};

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
    // Not in the specification: a timer and a signal listener, for the loop's own tests.
    let ticks = Rc::new(Cell::new(0i64));
    let usr1 = Rc::new(Cell::new(0i64));
    let (t, u) = (ticks.clone(), usr1.clone());
    d.every(Duration::from_millis(20), move |_| t.set(t.get() + 1));
    d.on("daemon.posix.SIGUSR1", move |_: &Event, _: &mut Ctx| u.set(u.get() + 1));
    // SIGUSR2 is the application's here: without the default listener, it does not upgrade.
    d.clear("daemon.posix.SIGUSR2");
    d.on("daemon.posix.12", |_: &Event, ctx: &mut Ctx| ctx.emit("spec.usr2", Value::Nil));
    let usr2 = Rc::new(Cell::new(0i64));
    let u2 = usr2.clone();
    d.on("spec.usr2", move |_: &Event, _: &mut Ctx| u2.set(u2.get() + 1));
    d.method(
        Method::new("spec.counters", move |_, _| {
            Ok(Value::structure([("ticks", ticks.get()), ("usr1", usr1.get()), ("usr2", usr2.get())]))
        })
        .requires(Permission::Read),
    );
    // The identity the last `daemon.socket.client.connect` carried, for the access tests.
    let last = Rc::new(RefCell::new(Value::Nil));
    let l = last.clone();
    d.on("daemon.socket.client.connect", move |ev: &Event, _: &mut Ctx| *l.borrow_mut() = ev.data.clone());
    d.method(
        Method::new("spec.lastClient", move |_, _| Ok(last.borrow().clone()))
            .description("The identity the last daemon.socket.client.connect event carried")
            .requires(Permission::Read),
    );
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
