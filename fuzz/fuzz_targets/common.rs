// A registry with a method of each shape, shared by the targets that serve requests.
use tomte_rpc::{Method, Registry, Type, Value};

pub fn registry() -> Registry<()> {
    let mut r = Registry::new();
    r.add(
        Method::new("my.echo", |mut p, _: &mut ()| Ok(Value::String(p.take("message")?)))
            .returns(Type::String)
            .param(Type::String, "message"),
    )
    .unwrap();
    r.add(Method::new("test.echo", |p, _: &mut ()| Ok(p.into_values().into_iter().next().unwrap_or_default())))
        .unwrap();
    r
}
