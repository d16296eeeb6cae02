//! The method registry: lookup, parameter validation against signatures, dispatch, and the
//! `system.*` introspection methods.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::fault::{self, Fault};
use crate::method::{Body, Later, Method, Params, Reply, Signature};
use crate::permission::{Gate, Permission};
use crate::stats::{Outcome, Start, Stats};
use crate::value::Value;

/// The protocol a call arrived in; a few answers depend on it (`system.multicall`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// JSON-RPC 2.0, in any framing (comodojo's included).
    Json,
    /// XML-RPC, in any framing (comodojo's included).
    Xml,
}

/// The parameters of a call as they arrived: by position or by name.
#[derive(Clone, Debug, PartialEq)]
pub enum Args {
    /// In order: an XML-RPC call's parameters, a JSON-RPC array.
    Positional(Vec<Value>),
    /// By name: a JSON-RPC object, members in the order they came.
    Named(Vec<(String, Value)>),
}

impl Default for Args {
    fn default() -> Args {
        Args::Positional(Vec::new())
    }
}

/// The introspection and reserved methods every registry has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SystemMethod {
    GetCapabilities,
    ListMethods,
    MethodHelp,
    MethodSignature,
    Multicall,
}

/// A capability advertised by `system.getCapabilities`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Capability {
    /// The name it is advertised under (`nil`, `faults_interop`…).
    pub(crate) name: String,
    /// Where its specification is (`specUrl`).
    pub(crate) spec_url: String,
    /// The version of the specification (`specVersion`).
    pub(crate) spec_version: i64,
}

/// Why a method could not be registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryError {
    /// A method of that name is registered already.
    #[error("method '{0}' is already registered")]
    Duplicate(String),
    /// The method has no name.
    #[error("method name is empty")]
    EmptyName,
    /// No method of that name is registered.
    #[error("no method '{0}' is registered")]
    Unknown(String),
}

/// FNV-1a: method names are short, and the table only ever holds registered names, so a
/// client choosing colliding names gains nothing; SipHash would cost more than the lookup.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Methods by name, in registration order (the order `system.listMethods` reports).
pub struct Registry<C> {
    methods: Vec<Method<C>>,
    index: HashMap<String, usize, BuildHasherDefault<Fnv>>,
    /// The method found last (handlers are neither Send nor Sync, so neither is a registry).
    last: std::cell::Cell<usize>,
    capabilities: Vec<Capability>,
    /// Who may call what; none: everyone may call everything.
    gate: Option<Box<dyn Gate<C>>>,
    /// The text of the last call the gate refused (comodojo answers a frame whose one call was
    /// refused with `status: false` and this text).
    refused: std::cell::RefCell<Option<String>>,
    /// Calls per method and outcome, and their latency (see [`crate::stats`]).
    stats: Rc<Stats>,
}

impl<C> Default for Registry<C> {
    fn default() -> Self {
        Registry::new()
    }
}

impl<C> Registry<C> {
    /// A registry holding the five `system.*` methods, in comodojo's order, and comodojo's six
    /// capabilities.
    pub fn new() -> Registry<C> {
        use crate::method::Type::*;
        let mut r = Registry {
            methods: Vec::new(),
            index: HashMap::default(),
            last: std::cell::Cell::new(usize::MAX),
            capabilities: Vec::new(),
            gate: None,
            refused: std::cell::RefCell::new(None),
            stats: Rc::default(),
        };
        let sys = |name: &str, m: SystemMethod| {
            Method::with_body(name.to_owned(), Body::System(m)).requires(Permission::Read)
        };
        let system = [
            sys("system.getCapabilities", SystemMethod::GetCapabilities)
                .description("This method lists all the capabilites that the RPC server has: the (more or less standard) extensions to the RPC spec that it adheres to")
                .returns(Struct),
            sys("system.listMethods", SystemMethod::ListMethods)
                .description("This method lists all the methods that the RPC server knows how to dispatch")
                .returns(Array),
            sys("system.methodHelp", SystemMethod::MethodHelp)
                .description("Returns help text if defined for the method passed, otherwise returns an empty string")
                .returns(String)
                .param(String, "method"),
            sys("system.methodSignature", SystemMethod::MethodSignature)
                .description("Returns an array of known signatures (an array of arrays) for the method name passed. If no signatures are known, returns a none-array (test for type != array to detect missing signature)")
                .returns(Array)
                .param(String, "method"),
            sys("system.multicall", SystemMethod::Multicall)
                .description("Boxcar multiple RPC calls in one request. See http://www.xmlrpc.com/discuss/msgReader$1208 for details")
                .returns(Array)
                .param(Array, "requests"),
        ];
        for m in system {
            r.add(m).expect("system methods are distinct");
        }
        for (name, url, version) in [
            ("xmlrpc", "http://www.xmlrpc.com/spec", 1),
            ("system.multicall", "http://www.xmlrpc.com/discuss/msgReader$1208", 1),
            ("introspection", "http://phpxmlrpc.sourceforge.net/doc-2/ch10.html", 2),
            ("nil", "http://www.ontosys.com/xml-rpc/extensions.php", 1),
            ("faults_interop", "http://xmlrpc-epi.sourceforge.net/specs/rfc.fault_codes.php", 20010516),
            ("json-rpc", "http://www.jsonrpc.org/specification", 2),
        ] {
            r.add_capability(name, url, version);
        }
        r
    }

    /// Registers a method; a name can be registered once.
    pub fn add(&mut self, method: Method<C>) -> Result<(), RegistryError> {
        if method.name.is_empty() {
            return Err(RegistryError::EmptyName);
        }
        if self.index.contains_key(&method.name) {
            return Err(RegistryError::Duplicate(method.name));
        }
        self.index.insert(method.name.clone(), self.methods.len());
        self.methods.push(method);
        self.stats.push();
        Ok(())
    }

    /// Turns call statistics on (the default) or off: off, nothing is recorded and the clock
    /// is not read (only [`Registry::calls_total`] still counts).
    pub fn set_stats(&self, on: bool) {
        self.stats.set_enabled(on);
    }

    /// The call statistics: per method (at the index of [`Registry::names`]), unknown names.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Every call run or refused since the registry was made, unknown names included.
    pub fn calls_total(&self) -> u64 {
        self.stats.total()
    }

    /// The call statistics, shared: for a context that must read them where the registry is
    /// out of reach (a handler's `daemon.status` reporting [`Stats::total`]).
    pub fn shared_stats(&self) -> Rc<Stats> {
        Rc::clone(&self.stats)
    }

    /// Sets the gate every call passes before its parameters are validated (see [`Gate`]);
    /// it replaces the one set before. The `system.*` methods require [`Permission::Read`].
    pub fn set_gate(&mut self, gate: impl Gate<C> + 'static) {
        self.gate = Some(Box::new(gate));
    }

    /// Changes what an already registered method requires (a built-in's, say: `worker.restart`
    /// needing a custom `restart` instead of `control`).
    pub fn set_permission(&mut self, name: &str, permission: Permission) -> Result<(), RegistryError> {
        let i = *self.index.get(name).ok_or_else(|| RegistryError::Unknown(name.to_owned()))?;
        self.methods[i].permission = permission;
        Ok(())
    }

    /// Whether the caller in `ctx` may call `method` (always, without a gate).
    pub fn allows(&self, ctx: &C, method: &Method<C>) -> bool {
        self.gate.as_ref().is_none_or(|g| g.allows(ctx, &method.permission))
    }

    /// Advertises a capability in `system.getCapabilities` (replacing one of the same name).
    pub fn add_capability(&mut self, name: &str, spec_url: &str, spec_version: i64) {
        self.capabilities.retain(|c| c.name != name);
        self.capabilities.push(Capability { name: name.to_owned(), spec_url: spec_url.to_owned(), spec_version });
    }

    /// The text of the call the gate refused last, if one was since the previous take.
    pub(crate) fn take_refused(&self) -> Option<String> {
        self.refused.borrow_mut().take()
    }

    /// The method called `name`, if one is registered.
    pub fn get(&self, name: &str) -> Option<&Method<C>> {
        self.find(name).map(|i| &self.methods[i])
    }

    /// The index of the method called `name`.
    fn find(&self, name: &str) -> Option<usize> {
        // Clients tend to call one method over and over: check the last one found first.
        let last = self.last.get();
        if self.methods.get(last).is_some_and(|m| m.name == name) {
            return Some(last);
        }
        let i = *self.index.get(name)?;
        self.last.set(i);
        Some(i)
    }

    /// Method names in registration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.methods.iter().map(|m| m.name.as_str())
    }

    /// How many methods are registered, the `system.*` ones included.
    pub fn len(&self) -> usize {
        self.methods.len()
    }
    /// Whether no method is registered (never, for a registry from [`Registry::new`]).
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty()
    }

    /// Runs one call: finds the method, asks the gate (if any) whether the caller may call it,
    /// validates `args` against its signatures (the first that matches wins; see
    /// [`crate::Type::accepts`] for what each protocol allows), then runs it. A handler that
    /// panics becomes −32603, not a dead daemon; so does a future that panics when polled.
    ///
    /// An unknown method is −32601 whoever asks: method names are not secrets (they are in the
    /// program), so a refused caller learns nothing it could not read there.
    pub fn dispatch(&self, name: &str, args: Args, ctx: &mut C, protocol: Protocol) -> Reply {
        match self.run(name, args, ctx, protocol) {
            Ok(reply) => reply,
            Err(f) => Reply::Now(Err(f)),
        }
    }

    /// Runs one call that must be answered now: inside a batch or a `system.multicall`, which
    /// are answered whole. A method that answers later is an error here — the one place that
    /// decides it — and its future is dropped (which cancels what it waited for).
    pub fn call(&self, name: &str, args: Args, ctx: &mut C, protocol: Protocol) -> Result<Value, Fault> {
        match self.run(name, args, ctx, protocol)? {
            Reply::Now(result) => result,
            Reply::Later(_) => Err(Fault::internal(format!(
                "{name} answers later, which a batch or a system.multicall cannot wait for: call it alone"
            ))),
        }
    }

    /// Runs one call and records it (a future's end is recorded by its [`Contained`]).
    fn run(&self, name: &str, args: Args, ctx: &mut C, protocol: Protocol) -> Result<Reply, Fault> {
        let Some(index) = self.find(name) else {
            self.stats.count_unknown();
            return Err(Fault::method_not_found());
        };
        let method = &self.methods[index];
        let start = self.stats.start(index);
        if let Some(gate) = &self.gate {
            if let Err(f) = gate.check(ctx, &method.name, &method.permission) {
                *self.refused.borrow_mut() = Some(f.full_message());
                self.stats.finish(index, Outcome::Denied, start);
                return Err(f);
            }
        }
        match self.invoke(method, args, ctx, protocol) {
            Ok(Reply::Now(result)) => {
                self.stats.finish(index, Outcome::of(&result), start);
                Ok(Reply::Now(result))
            }
            Ok(Reply::Later(future)) => {
                let stats = match start {
                    Start::Off => None,
                    start => Some((Rc::clone(&self.stats), index, start)),
                };
                Ok(Reply::Later(Box::pin(Contained { method: name.to_owned(), future, stats })))
            }
            Err(f) => {
                self.stats.finish(index, Outcome::of_fault(&f), start);
                Err(f)
            }
        }
    }

    /// Runs `method` once the gate let the caller through: binds the parameters, then the
    /// handler.
    fn invoke(&self, method: &Method<C>, args: Args, ctx: &mut C, protocol: Protocol) -> Result<Reply, Fault> {
        let name = method.name.as_str();
        let handler = match &method.body {
            Body::System(sys) => {
                let (values, names) = bind(method, args, protocol)?;
                return Ok(Reply::Now(self.system(*sys, Params::in_protocol(values, names, protocol), ctx, protocol)));
            }
            Body::User(h) => {
                let (values, names) = bind(method, args, protocol)?;
                return Ok(run_handler(name, h, Params::in_protocol(values, names, protocol), ctx));
            }
            Body::Typed(h) => h,
        };
        let params = bind_typed(method, args, protocol)?;
        Ok(run_handler(name, handler, params, ctx))
    }

    fn system(&self, which: SystemMethod, p: Params<'_>, ctx: &mut C, protocol: Protocol) -> Result<Value, Fault> {
        match which {
            SystemMethod::ListMethods => Ok(Value::Array(
                self.methods.iter().filter(|m| self.allows(ctx, m)).map(|m| Value::from(m.name.as_str())).collect(),
            )),
            SystemMethod::MethodHelp => {
                let m = self.introspect(&p.get::<String>("method")?, ctx)?;
                Ok(Value::from(m.help().unwrap_or("")))
            }
            SystemMethod::MethodSignature => {
                let m = self.introspect(&p.get::<String>("method")?, ctx)?;
                let sigs = m.signatures();
                if sigs.is_empty() {
                    // The introspection spec's "none-array" for a method without signatures.
                    return Ok(Value::from("undef"));
                }
                Ok(Value::Array(sigs.iter().map(|s| Value::from(s.compact())).collect()))
            }
            SystemMethod::GetCapabilities => Ok(Value::Struct(
                self.capabilities
                    .iter()
                    .map(|c| {
                        let spec = Value::structure([
                            ("specUrl", Value::from(c.spec_url.as_str())),
                            ("specVersion", Value::Int(c.spec_version)),
                        ]);
                        (c.name.clone(), spec)
                    })
                    .collect(),
            )),
            SystemMethod::Multicall => {
                if protocol != Protocol::Xml {
                    return Err(Fault::new(fault::MULTICALL_JSON, "Multicall is available only in XMLRPC"));
                }
                let calls: Vec<Value> = p.get("requests")?;
                if calls.len() > crate::jsonrpc::MAX_BATCH {
                    let why = format!("{} calls exceed the limit of {}", calls.len(), crate::jsonrpc::MAX_BATCH);
                    return Err(Fault::invalid_request(why));
                }
                Ok(Value::Array(calls.into_iter().map(|c| self.multicall_entry(c, ctx)).collect()))
            }
        }
    }

    /// The method `system.methodHelp` or `system.methodSignature` asks about: one the caller
    /// may not call is refused as calling it would be (it is not listed either).
    fn introspect(&self, name: &str, ctx: &C) -> Result<&Method<C>, Fault> {
        let m = self.get(name).ok_or_else(Fault::method_not_found)?;
        match &self.gate {
            Some(g) if !g.allows(ctx, &m.permission) => Err(g.refusal(ctx, &m.name, &m.permission)),
            _ => Ok(m),
        }
    }

    /// One entry of `system.multicall`: `[result]` on success, a fault struct in place otherwise.
    fn multicall_entry(&self, call: Value, ctx: &mut C) -> Value {
        let outcome = match call {
            Value::Struct(members) => {
                let mut name = None;
                let mut params = Vec::new();
                for (k, v) in members {
                    match (k.as_str(), v) {
                        ("methodName", Value::String(s)) => name = Some(s),
                        ("params", Value::Array(a)) => params = a,
                        _ => {}
                    }
                }
                match name {
                    None => Err(Fault::invalid_request("multicall entry without a methodName string")),
                    Some(n) if n == "system.multicall" => {
                        Err(Fault::new(fault::MULTICALL_RECURSION, "Recursive system.multicall forbidden"))
                    }
                    Some(n) => self.call(&n, Args::Positional(params), ctx, Protocol::Xml),
                }
            }
            other => Err(Fault::invalid_request(format!("multicall entry is a {}, not a struct", other.type_name()))),
        };
        match outcome {
            Ok(v) => Value::Array(vec![v]),
            Err(f) => Value::structure([
                ("faultCode", Value::Int(i64::from(f.code))),
                ("faultString", Value::String(f.full_message())),
            ]),
        }
    }
}

/// Runs a user handler, a panic becoming −32603.
fn run_handler<C>(name: &str, handler: &RefCell<crate::method::Handler<C>>, params: Params<'_>, ctx: &mut C) -> Reply {
    // A handler cannot reach the registry, so it is never running already: the borrow holds.
    let mut handler = handler.borrow_mut();
    match catch_unwind(AssertUnwindSafe(|| handler(params, ctx))) {
        Ok(reply) => reply,
        Err(panic) => Reply::Now(Err(panicked(name, &panic))),
    }
}

fn panicked(name: &str, panic: &Box<dyn std::any::Any + Send>) -> Fault {
    Fault::internal(format!("method '{name}' panicked: {}", crate::fault::panic_text(&**panic)))
}

/// A method's future, whose panics become −32603 answers rather than a dead loop, and whose
/// end is recorded in the registry's statistics.
struct Contained {
    method: String,
    future: Later,
    /// Where to record the call, its method's index and its start; taken once recorded
    /// (none: statistics are off).
    stats: Option<(Rc<Stats>, usize, Start)>,
}

impl Contained {
    fn record(&mut self, outcome: Outcome) {
        if let Some((stats, index, start)) = self.stats.take() {
            stats.finish(index, outcome, start);
        }
    }
}

impl Future for Contained {
    type Output = Result<Value, Fault>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let result = match catch_unwind(AssertUnwindSafe(|| this.future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => result,
            Err(panic) => Err(panicked(&this.method, &panic)),
        };
        this.record(Outcome::of(&result));
        Poll::Ready(result)
    }
}

impl Drop for Contained {
    /// A future dropped before its answer (its client went away, or a batch refused it) is a
    /// call that failed.
    fn drop(&mut self) {
        self.record(Outcome::Error);
    }
}

/// Matches arguments to the first signature they fit, and returns them in its order, each
/// converted to its parameter's type (see [`crate::Type::coerce`]).
fn bind<C>(method: &Method<C>, args: Args, protocol: Protocol) -> Result<(Vec<Value>, &[String]), Fault> {
    let sigs = method.signatures();
    if sigs.is_empty() {
        return match args {
            Args::Positional(v) => Ok((v, &[])),
            Args::Named(_) => Err(Fault::invalid_params(format!(
                "{} declares no parameter names; pass parameters by position",
                method.name
            ))),
        };
    }
    let fits = |s: &Signature, values: &[Value]| {
        s.types.len() == values.len() && s.types.iter().zip(values).all(|(t, v)| t.accepts(v, protocol))
    };
    let (values, sig) = match args {
        Args::Positional(values) => match sigs.iter().find(|s| fits(s, &values)) {
            Some(s) => (values, s),
            None => return Err(mismatch(method)),
        },
        Args::Named(mut members) => {
            let mut found = None;
            for s in sigs {
                if s.names.len() != members.len() || !s.names.iter().all(|n| members.iter().any(|(k, _)| k == n)) {
                    continue;
                }
                let ordered: Vec<Value> = s
                    .names
                    .iter()
                    .map(|n| {
                        let i = members.iter().position(|(k, _)| k == n).expect("checked above");
                        std::mem::take(&mut members[i].1)
                    })
                    .collect();
                if fits(s, &ordered) {
                    found = Some((ordered, s));
                    break;
                }
                // Put the values back for the next signature.
                for (n, v) in s.names.iter().zip(ordered) {
                    let i = members.iter().position(|(k, _)| k == n).expect("checked above");
                    members[i].1 = v;
                }
            }
            found.ok_or_else(|| mismatch(method))?
        }
    };
    let values = values
        .into_iter()
        .zip(sig.types.iter().zip(&sig.names))
        .map(|(v, (t, n))| t.coerce(v).map_err(|why| Fault::invalid_params(format!("parameter '{n}': {why}"))))
        .collect::<Result<Vec<Value>, Fault>>()?;
    Ok((values, &sig.names))
}

/// A typed method's arguments: checked against its parameter names only (its type checks the
/// values as it reads them, with the rules of `protocol`).
fn bind_typed<C>(method: &Method<C>, args: Args, protocol: Protocol) -> Result<Params<'_>, Fault> {
    let names: &[String] = method.signatures().first().map_or(&[], |s| &s.names);
    match args {
        Args::Positional(values) => {
            if !method.signatures().is_empty() && values.len() > names.len() {
                return Err(Fault::invalid_params(format!(
                    "{} takes at most {} parameters, got {}: {}",
                    method.name,
                    names.len(),
                    values.len(),
                    method.signatures()[0]
                )));
            }
            let n = names.len().min(values.len());
            Ok(Params::in_protocol(values, &names[..n], protocol))
        }
        Args::Named(members) => {
            let declared = !method.signatures().is_empty();
            if let Some((unknown, _)) = members.iter().find(|(k, _)| declared && !names.contains(k)) {
                return Err(Fault::invalid_params(format!(
                    "unknown parameter '{unknown}': {} expects {}",
                    method.name,
                    method.signatures().first().map_or_else(|| "no parameters".to_owned(), |s| s.to_string())
                )));
            }
            Ok(Params::by_name(members, protocol))
        }
    }
}

fn mismatch<C>(method: &Method<C>) -> Fault {
    let expected: Vec<String> = method.signatures().iter().map(|s| s.to_string()).collect();
    Fault::invalid_params(format!("{} expects {}", method.name, expected.join(" or ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::Type;

    fn registry() -> Registry<u32> {
        let mut r = Registry::new();
        r.add(
            Method::new("my.echo", |mut p, calls: &mut u32| {
                *calls += 1;
                Ok(Value::String(p.take("message")?))
            })
            .description("I'm here to reply your data")
            .returns(Type::String)
            .param(Type::String, "message"),
        )
        .unwrap();
        r.add(
            Method::new("math.sub", |p, _| Ok(Value::Int(p.get::<i64>("a")? - p.get::<i64>("b")?)))
                .returns(Type::Int)
                .param(Type::Int, "a")
                .param(Type::Int, "b")
                .signature()
                .returns(Type::Double)
                .param(Type::Double, "a")
                .param(Type::Double, "b"),
        )
        .unwrap();
        r.add(Method::new("boom", |_, _| panic!("kaboom"))).unwrap();
        r
    }

    #[test]
    fn positional_and_named_params_bind_to_names() {
        let r = registry();
        let mut n = 0;
        let pos = r.call("my.echo", Args::Positional(vec!["hi".into()]), &mut n, Protocol::Json);
        assert_eq!(pos, Ok("hi".into()));
        let named = r.call(
            "math.sub",
            Args::Named(vec![("b".into(), 2.into()), ("a".into(), 5.into())]),
            &mut n,
            Protocol::Json,
        );
        assert_eq!(named, Ok(Value::Int(3)));
        assert_eq!(n, 1);
    }

    #[test]
    fn params_are_validated_before_the_handler_runs() {
        let r = registry();
        let mut n = 0;
        let f = r.call("my.echo", Args::Positional(vec![5.into()]), &mut n, Protocol::Json).unwrap_err();
        assert_eq!(f.code, fault::INVALID_PARAMS);
        assert_eq!(f.full_message(), "Invalid params: my.echo expects (string message) -> string");
        assert_eq!(n, 0, "the handler must not run");
        let f = r.call("my.echo", Args::Named(vec![("msg".into(), "x".into())]), &mut n, Protocol::Json).unwrap_err();
        assert_eq!(f.code, fault::INVALID_PARAMS);
    }

    #[test]
    fn unknown_methods_and_panics_are_faults() {
        let r = registry();
        let mut n = 0;
        assert_eq!(r.call("nope", Args::default(), &mut n, Protocol::Json).unwrap_err().code, fault::METHOD_NOT_FOUND);
        let f = r.call("boom", Args::default(), &mut n, Protocol::Json).unwrap_err();
        assert_eq!(f.code, fault::INTERNAL_ERROR);
        assert!(f.full_message().contains("kaboom"));
    }

    #[test]
    fn introspection() {
        let r = registry();
        let mut n = 0;
        let list = r.call("system.listMethods", Args::default(), &mut n, Protocol::Xml).unwrap();
        let Value::Array(names) = list else { panic!() };
        assert_eq!(names[0], "system.getCapabilities".into());
        assert_eq!(names[5], "my.echo".into());
        let sig = r.call("system.methodSignature", Args::Positional(vec!["math.sub".into()]), &mut n, Protocol::Xml);
        assert_eq!(sig, Ok(Value::from(vec![vec!["int", "int", "int"], vec!["double", "double", "double"]])));
        let help = r.call("system.methodHelp", Args::Positional(vec!["my.echo".into()]), &mut n, Protocol::Xml);
        assert_eq!(help, Ok("I'm here to reply your data".into()));
        let caps = r.call("system.getCapabilities", Args::default(), &mut n, Protocol::Xml).unwrap();
        assert_eq!(caps.member("faults_interop").and_then(|c| c.member("specVersion")), Some(&Value::Int(20010516)));
    }

    #[test]
    fn multicall_wraps_results_and_keeps_faults_in_place() {
        let r = registry();
        let mut n = 0;
        let call = |name: &str, params: Vec<Value>| {
            Value::structure([("methodName", Value::from(name)), ("params", Value::Array(params))])
        };
        let calls = Value::Array(vec![
            call("math.sub", vec![4.into(), 2.into()]),
            call("foo", vec![]),
            call("system.multicall", vec![]),
            Value::Int(3),
        ]);
        let out = r.call("system.multicall", Args::Positional(vec![calls.clone()]), &mut n, Protocol::Xml).unwrap();
        let Value::Array(items) = out else { panic!() };
        assert_eq!(items[0], Value::Array(vec![Value::Int(2)]));
        assert_eq!(items[1].member("faultCode"), Some(&Value::Int(-32601)));
        assert_eq!(items[2].member("faultCode"), Some(&Value::Int(-31001)));
        assert_eq!(items[3].member("faultCode"), Some(&Value::Int(-32600)));
        let json = r.call("system.multicall", Args::Positional(vec![calls]), &mut n, Protocol::Json).unwrap_err();
        assert_eq!(json.code, -31000);
    }

    /// A context that holds the permissions a test grants.
    fn gated(grants: &'static [Permission]) -> Registry<u32> {
        let mut r = registry();
        r.add(
            Method::new("app.stop", |_, calls: &mut u32| {
                *calls += 1;
                Ok(Value::Nil)
            })
            .requires(Permission::Control)
            .param(Type::Int, "code"),
        )
        .unwrap();
        r.set_gate(move |_: &u32, p: &Permission| grants.contains(p));
        r
    }

    #[test]
    fn the_gate_refuses_before_params_are_validated_and_the_handler_runs() {
        let r = gated(&[Permission::Read, Permission::Call]);
        let mut n = 0;
        // Wrong params, and a permission missing: the permission is what the caller hears of.
        let f = r.call("app.stop", Args::Positional(vec!["x".into()]), &mut n, Protocol::Json).unwrap_err();
        assert_eq!(f.code, fault::PERMISSION_DENIED);
        assert_eq!(f.message, "Permission denied");
        assert_eq!(
            f.data,
            Some(Value::from("app.stop requires the 'control' permission, which the caller does not have"))
        );
        assert_eq!(n, 0, "the handler must not run");
        assert_eq!(r.call("my.echo", Args::Positional(vec!["hi".into()]), &mut n, Protocol::Json), Ok("hi".into()));
        // Unknown stays unknown.
        assert_eq!(r.call("nope", Args::default(), &mut n, Protocol::Json).unwrap_err().code, fault::METHOD_NOT_FOUND);
    }

    #[test]
    fn introspection_shows_only_what_the_caller_may_call() {
        let r = gated(&[Permission::Read]);
        let mut n = 0;
        let Ok(Value::Array(names)) = r.call("system.listMethods", Args::default(), &mut n, Protocol::Xml) else {
            panic!()
        };
        assert_eq!(names.len(), 5, "only the system.* methods: {names:?}");
        let help = r.call("system.methodHelp", Args::Positional(vec!["app.stop".into()]), &mut n, Protocol::Xml);
        assert_eq!(help.unwrap_err().code, fault::PERMISSION_DENIED);
        let sig = r.call("system.methodSignature", Args::Positional(vec!["my.echo".into()]), &mut n, Protocol::Xml);
        assert_eq!(sig.unwrap_err().code, fault::PERMISSION_DENIED);
        let none = gated(&[]);
        let f = none.call("system.listMethods", Args::default(), &mut n, Protocol::Xml).unwrap_err();
        assert_eq!(f.code, fault::PERMISSION_DENIED);
    }

    #[test]
    fn each_multicall_entry_is_checked_on_its_own() {
        let r = gated(&[Permission::Read, Permission::Call]);
        let mut n = 0;
        let call = |name: &str, params: Vec<Value>| {
            Value::structure([("methodName", Value::from(name)), ("params", Value::Array(params))])
        };
        let calls = Value::Array(vec![call("my.echo", vec!["a".into()]), call("app.stop", vec![1.into()])]);
        let out = r.call("system.multicall", Args::Positional(vec![calls]), &mut n, Protocol::Xml).unwrap();
        let Value::Array(items) = out else { panic!() };
        assert_eq!(items[0], Value::Array(vec!["a".into()]));
        assert_eq!(items[1].member("faultCode"), Some(&Value::Int(-32001)));
        assert_eq!(n, 1, "only my.echo ran");
    }

    fn typed_registry() -> Registry<()> {
        let mut r = Registry::new();
        r.add(Method::new("t.double", |p, _| p.get::<Value>("x")).returns(Type::Double).param(Type::Double, "x"))
            .unwrap();
        r.add(
            Method::new("t.date", |p, _| p.get::<Value>("when")).returns(Type::DateTime).param(Type::DateTime, "when"),
        )
        .unwrap();
        r.add(Method::new("t.bytes", |p, _| p.get::<Value>("data")).returns(Type::Base64).param(Type::Base64, "data"))
            .unwrap();
        r.add(Method::new_async("t.later", |_, _| async { Ok(Value::from("later")) })).unwrap();
        r
    }

    #[test]
    fn xml_rpc_signatures_are_strict_where_the_protocol_has_the_type() {
        let r = typed_registry();
        let call = |name: &str, v: Value| r.call(name, Args::Positional(vec![v]), &mut (), Protocol::Xml);
        assert_eq!(call("t.double", Value::Int(1)).unwrap_err().code, fault::INVALID_PARAMS);
        assert_eq!(call("t.double", Value::Double(1.5)), Ok(Value::Double(1.5)));
        let f = call("t.date", Value::from("not a date")).unwrap_err();
        assert_eq!(f.code, fault::INVALID_PARAMS);
        assert!(f.full_message().contains("dateTime.iso8601 when"), "{f}");
        assert_eq!(
            call("t.date", Value::DateTime("19980717T14:08:55".into())),
            Ok(Value::DateTime("19980717T14:08:55".into()))
        );
        assert_eq!(call("t.bytes", Value::from("not base64!")).unwrap_err().code, fault::INVALID_PARAMS);
        assert_eq!(call("t.bytes", Value::Base64(vec![0, 1])), Ok(Value::Base64(vec![0, 1])));
    }

    #[test]
    fn json_signatures_convert_what_json_cannot_say_or_refuse_it_naming_the_parameter() {
        let r = typed_registry();
        let call = |name: &str, v: Value| r.call(name, Args::Positional(vec![v]), &mut (), Protocol::Json);
        assert_eq!(call("t.double", Value::Int(2)), Ok(Value::Double(2.0)), "a double parameter receives a double");
        assert_eq!(call("t.bytes", Value::from("AAH/")), Ok(Value::Base64(vec![0, 1, 255])));
        let f = call("t.bytes", Value::from("not base64!")).unwrap_err();
        assert_eq!(f.code, fault::INVALID_PARAMS);
        assert!(f.full_message().contains("parameter 'data': not valid base64"), "{f}");
        assert_eq!(
            call("t.date", Value::from("2026-12-02T10:11:12Z")),
            Ok(Value::DateTime("2026-12-02T10:11:12Z".into()))
        );
        let f = call("t.date", Value::from("yesterday")).unwrap_err();
        assert!(f.full_message().contains("parameter 'when': not an ISO 8601 date"), "{f}");
    }

    #[test]
    fn a_method_answering_later_is_a_future_alone_and_one_clear_error_in_a_batch() {
        let r = typed_registry();
        let Reply::Later(mut future) = r.dispatch("t.later", Args::default(), &mut (), Protocol::Json) else {
            panic!("t.later answers later")
        };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert_eq!(future.as_mut().poll(&mut cx), Poll::Ready(Ok(Value::from("later"))));
        let f = r.call("t.later", Args::default(), &mut (), Protocol::Json).unwrap_err();
        assert_eq!(f.code, fault::INTERNAL_ERROR);
        assert!(f
            .full_message()
            .contains("t.later answers later, which a batch or a system.multicall cannot wait for"));
    }

    #[test]
    fn a_future_that_panics_is_an_internal_error() {
        let mut r: Registry<()> = Registry::new();
        r.add(Method::new_async("t.boom", |_, _| async { panic!("kaboom later") })).unwrap();
        let Reply::Later(mut future) = r.dispatch("t.boom", Args::default(), &mut (), Protocol::Json) else { panic!() };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let Poll::Ready(Err(f)) = future.as_mut().poll(&mut cx) else { panic!("ready with an error") };
        assert_eq!(f.code, fault::INTERNAL_ERROR);
        assert!(f.full_message().contains("method 't.boom' panicked: kaboom later"), "{f}");
    }

    fn index(r: &Registry<u32>, name: &str) -> usize {
        r.names().position(|n| n == name).unwrap()
    }

    #[test]
    fn calls_are_counted_per_method_and_outcome_and_unknown_names_in_one_number() {
        let r = gated(&[Permission::Read, Permission::Call]);
        let mut n = 0;
        for _ in 0..3 {
            r.call("my.echo", Args::Positional(vec!["hi".into()]), &mut n, Protocol::Json).unwrap();
        }
        let _ = r.call("my.echo", Args::Positional(vec![5.into()]), &mut n, Protocol::Json);
        let _ = r.call("boom", Args::default(), &mut n, Protocol::Json);
        let _ = r.call("app.stop", Args::Positional(vec![1.into()]), &mut n, Protocol::Json);
        let _ = r.call("nope", Args::default(), &mut n, Protocol::Json);
        let _ = r.call("nope2", Args::default(), &mut n, Protocol::Json);
        let (echo, boom, stop) = (index(&r, "my.echo"), index(&r, "boom"), index(&r, "app.stop"));
        r.stats().with_methods(|m| {
            assert_eq!(m.len(), r.len(), "one slot per method, none for unknown names");
            assert_eq!(m[echo].calls(Outcome::Ok), 3);
            assert_eq!(m[echo].calls(Outcome::Invalid), 1);
            assert_eq!(m[echo].count(), 4);
            assert_eq!(m[echo].cumulative().last(), Some((f64::INFINITY, 4)));
            assert_eq!(m[boom].calls(Outcome::Error), 1);
            assert_eq!(m[stop].calls(Outcome::Denied), 1);
        });
        assert_eq!(r.stats().unknown(), 2);
        assert_eq!(r.calls_total(), 8);
        r.set_stats(false);
        r.call("my.echo", Args::Positional(vec!["hi".into()]), &mut n, Protocol::Json).unwrap();
        r.stats().with_methods(|m| assert_eq!(m[echo].count(), 4, "off: not recorded"));
        assert_eq!(r.calls_total(), 9, "the total counts on");
    }

    #[test]
    fn multicall_entries_and_futures_are_recorded_when_they_end() {
        let r = registry();
        let mut n = 0;
        let call = |name: &str, params: Vec<Value>| {
            Value::structure([("methodName", Value::from(name)), ("params", Value::Array(params))])
        };
        let calls = Value::Array(vec![call("math.sub", vec![4.into(), 2.into()]), call("math.sub", vec![])]);
        r.call("system.multicall", Args::Positional(vec![calls]), &mut n, Protocol::Xml).unwrap();
        let sub = r.names().position(|n| n == "math.sub").unwrap();
        r.stats().with_methods(|m| {
            assert_eq!((m[sub].calls(Outcome::Ok), m[sub].calls(Outcome::Invalid)), (1, 1));
        });

        let r = typed_registry();
        let later = r.names().position(|n| n == "t.later").unwrap();
        let Reply::Later(mut future) = r.dispatch("t.later", Args::default(), &mut (), Protocol::Json) else {
            panic!()
        };
        r.stats().with_methods(|m| assert_eq!(m[later].count(), 0, "not before it answers"));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_ready());
        drop(future);
        r.stats().with_methods(|m| assert_eq!(m[later].calls(Outcome::Ok), 1, "once"));
        drop(r.dispatch("t.later", Args::default(), &mut (), Protocol::Json));
        let _ = r.call("t.later", Args::default(), &mut (), Protocol::Json);
        r.stats().with_methods(|m| assert_eq!(m[later].calls(Outcome::Error), 2, "dropped unanswered"));
    }
}
