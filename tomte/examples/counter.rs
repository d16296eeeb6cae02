//! A stateful service: the running total lives in the application's state, parameters are
//! typed with serde, results are plain Rust values.
//!
//! * `counter.add(n: int) -> int` adds `n` to the total and answers the new total;
//! * `counter.get() -> int` answers the total.
//!
//! ```text
//! cargo run --example counter -- run --socket tcp://127.0.0.1:10043
//! curl -s localhost:10043 -d '{"jsonrpc":"2.0","method":"counter.add","params":{"n":5},"id":1}'
//! python3 -c 'import xmlrpc.client as x; print(x.ServerProxy("http://127.0.0.1:10043/").counter.add(2))'
//! ```

use serde::Deserialize;
use tomte::{Ctx, Daemon, Fault, Method, Type};

/// The application's state: one thread owns it, so no lock and no `Rc<RefCell>`.
#[derive(Default)]
struct Counter {
    total: i64,
}

/// The parameters of `counter.add`, named once: the field is the parameter.
#[derive(Deserialize)]
struct Add {
    n: i64,
}

fn main() {
    let mut daemon = Daemon::with_state("counter", Counter::default());
    daemon
        .method(
            Method::typed("counter.add", |Add { n }, ctx: &mut Ctx<Counter>| {
                let total = &mut ctx.state().total;
                *total = total.checked_add(n).ok_or_else(|| Fault::invalid_params("the total would overflow"))?;
                Ok(*total)
            })
            .description("Adds n to the running total and returns the new total")
            .returns(Type::Int),
        )
        .method(
            Method::typed("counter.get", |(): (), ctx: &mut Ctx<Counter>| Ok(ctx.state().total))
                .description("Returns the running total")
                .returns(Type::Int),
        );
    std::process::exit(tomte::cli::main(daemon));
}
