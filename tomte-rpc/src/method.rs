//! Methods: a name, a description, signatures (`[return, param…]` with names) and a handler.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::fault::Fault;
use crate::permission::Permission;
use crate::registry::Protocol;
use crate::value::{FromValue, Value};

/// A type in a signature, named as XML-RPC introspection names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// `int`: a [`Value::Int`].
    Int,
    /// `double`: a [`Value::Double`].
    Double,
    /// `boolean`: a [`Value::Bool`].
    Boolean,
    /// `string`: a [`Value::String`].
    String,
    /// `base64`: a [`Value::Base64`].
    Base64,
    /// `dateTime.iso8601`: a [`Value::DateTime`].
    DateTime,
    /// `array`: a [`Value::Array`].
    Array,
    /// `struct`: a [`Value::Struct`].
    Struct,
    /// `nil`: [`Value::Nil`].
    Nil,
    /// Anything: an untyped parameter or result.
    Any,
}

impl Type {
    /// The name introspection gives it (`int`, `dateTime.iso8601`, `any`…).
    pub fn name(self) -> &'static str {
        match self {
            Type::Int => "int",
            Type::Double => "double",
            Type::Boolean => "boolean",
            Type::String => "string",
            Type::Base64 => "base64",
            Type::DateTime => "dateTime.iso8601",
            Type::Array => "array",
            Type::Struct => "struct",
            Type::Nil => "nil",
            Type::Any => "any",
        }
    }

    /// Reads a type name, aliases included (`i4`, `integer`, `bool`, `float`, `null`, `ex:nil`…).
    pub fn parse(name: &str) -> Option<Type> {
        Some(match name {
            "int" | "i4" | "i8" | "integer" => Type::Int,
            "double" | "float" => Type::Double,
            "boolean" | "bool" => Type::Boolean,
            "string" => Type::String,
            "base64" => Type::Base64,
            "dateTime.iso8601" | "datetime" => Type::DateTime,
            "array" => Type::Array,
            "struct" => Type::Struct,
            "nil" | "ex:nil" | "null" => Type::Nil,
            "any" | "mixed" | "undefined" => Type::Any,
            _ => return None,
        })
    }

    /// Whether a value that arrived in `protocol` may stand for a parameter of this type.
    ///
    /// XML-RPC has every type, so a value must be of the type itself: a `double` parameter
    /// takes a `<double>`, a date a `<dateTime.iso8601>`, bytes a `<base64>`. JSON has no
    /// int/double, date or bytes distinction, so there an int passes for a double and a string
    /// for a date or bytes ([`Type::coerce`] then converts it, or refuses it).
    pub fn accepts(self, v: &Value, protocol: Protocol) -> bool {
        let exact = matches!(
            (self, v),
            (Type::Any, _)
                | (Type::Int, Value::Int(_))
                | (Type::Double, Value::Double(_))
                | (Type::Boolean, Value::Bool(_))
                | (Type::String, Value::String(_))
                | (Type::Base64, Value::Base64(_))
                | (Type::DateTime, Value::DateTime(_))
                | (Type::Array, Value::Array(_))
                | (Type::Struct, Value::Struct(_))
                | (Type::Nil, Value::Nil)
        );
        exact
            || protocol == Protocol::Json
                && matches!(
                    (self, v),
                    (Type::Double, Value::Int(_)) | (Type::Base64 | Type::DateTime, Value::String(_))
                )
    }

    /// Converts a value [`Type::accepts`] took into this type: a JSON int for a double becomes
    /// a double, a string for bytes is decoded from base64, a string for a date is checked to
    /// be an ISO 8601 date. The error is the detail of a −32602 fault.
    pub fn coerce(self, v: Value) -> Result<Value, String> {
        use base64::Engine as _;
        match (self, v) {
            (Type::Double, Value::Int(i)) => Ok(Value::Double(i as f64)),
            (Type::Base64, Value::String(s)) => base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map(Value::Base64)
                .map_err(|e| format!("not valid base64: {e}")),
            (Type::DateTime, Value::String(s)) => match crate::types::DateTime::parse(&s) {
                Ok(_) => Ok(Value::DateTime(s)),
                Err(e) => Err(format!("not an ISO 8601 date: {e}")),
            },
            (_, v) => Ok(v),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One way to call a method: its result type and its parameters, in order, with names.
#[derive(Clone, Debug, PartialEq)]
pub struct Signature {
    /// The type of the result.
    pub returns: Type,
    /// The names of the parameters, in order.
    pub names: Vec<String>,
    /// The types of the parameters, in order, one for each name.
    pub types: Vec<Type>,
}

impl Signature {
    fn new() -> Signature {
        Signature { returns: Type::Any, names: Vec::new(), types: Vec::new() }
    }

    /// The introspection form: `[return, param…]` as type names.
    pub fn compact(&self) -> Vec<&'static str> {
        std::iter::once(self.returns.name()).chain(self.types.iter().map(|t| t.name())).collect()
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, (n, t)) in self.names.iter().zip(&self.types).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{t} {n}")?;
        }
        write!(f, ") -> {}", self.returns)
    }
}

/// The parameters of one call, matched to a signature so they can be read by name.
#[derive(Debug)]
pub struct Params<'a> {
    values: Vec<Value>,
    names: &'a [String],
    protocol: Protocol,
    /// A typed method's parameters passed by name, as they came (its type decides the rest).
    named: Option<Vec<(String, Value)>>,
}

impl<'a> Params<'a> {
    /// Parameters that arrived in JSON (see [`Params::in_protocol`]).
    pub fn new(values: Vec<Value>, names: &'a [String]) -> Params<'a> {
        Params { values, names, protocol: Protocol::Json, named: None }
    }

    /// Parameters that arrived in `protocol`, which decides how strictly [`Params::parse`]
    /// reads types (see [`crate::Rules`]).
    pub fn in_protocol(values: Vec<Value>, names: &'a [String], protocol: Protocol) -> Params<'a> {
        Params { values, names, protocol, named: None }
    }

    /// A typed method's parameters passed by name.
    pub(crate) fn by_name(members: Vec<(String, Value)>, protocol: Protocol) -> Params<'static> {
        Params { values: Vec::new(), names: &[], protocol, named: Some(members) }
    }

    /// The protocol the call arrived in.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// All the parameters as one typed value: a struct takes them by name (or, when the method
    /// declares no names, by position in field order), a tuple by position. A missing, extra
    /// or mistyped parameter is −32602 naming it.
    ///
    /// ```
    /// # use tomte_rpc::{Params, Value};
    /// #[derive(serde::Deserialize)]
    /// struct Add { a: i64, b: i64 }
    /// let names = ["a".to_owned(), "b".to_owned()];
    /// let p = Params::new(vec![Value::Int(2), Value::Int(3)], &names);
    /// let add: Add = p.parse().unwrap();
    /// assert_eq!(add.a + add.b, 5);
    /// ```
    pub fn parse<T: serde::de::DeserializeOwned>(self) -> Result<T, Fault> {
        let rules = match self.protocol {
            Protocol::Json => crate::Rules::Lenient,
            Protocol::Xml => crate::Rules::Strict,
        };
        match self.named {
            Some(members) => crate::from_value_as(Value::Struct(members), rules),
            None => crate::from_params(self.values, self.names, rules),
        }
    }

    /// How many parameters there are.
    pub fn len(&self) -> usize {
        self.values.len()
    }
    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn index(&self, name: &str) -> Result<usize, Fault> {
        self.names
            .iter()
            .position(|n| n == name)
            .filter(|&i| i < self.values.len())
            .ok_or_else(|| Fault::invalid_params(format!("missing parameter '{name}'")))
    }

    /// The parameter `name`, by reference.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.index(name).ok().map(|i| &self.values[i])
    }

    /// The parameter `name`, converted (a copy; see [`Params::take`] to move it out).
    pub fn get<T: FromValue>(&self, name: &str) -> Result<T, Fault> {
        let i = self.index(name)?;
        T::from_value(self.values[i].clone()).map_err(|f| with_name(f, name))
    }

    /// The parameter `name`, moved out and converted; a second take finds `nil`.
    pub fn take<T: FromValue>(&mut self, name: &str) -> Result<T, Fault> {
        let i = self.index(name)?;
        T::from_value(std::mem::take(&mut self.values[i])).map_err(|f| with_name(f, name))
    }

    /// The parameter at `index` (0-based), converted.
    pub fn at<T: FromValue>(&self, index: usize) -> Result<T, Fault> {
        let v = self.values.get(index).ok_or_else(|| Fault::invalid_params(format!("missing parameter #{index}")))?;
        T::from_value(v.clone())
    }

    /// All values, in signature order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }
    /// All values, in signature order, moved out.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }
}

fn with_name(mut f: Fault, name: &str) -> Fault {
    if let Some(Value::String(d)) = &mut f.data {
        *d = format!("parameter '{name}': {d}");
    }
    f
}

/// An answer that comes later: a future the daemon's loop drives (see [`Reply::Later`]).
pub type Later = Pin<Box<dyn Future<Output = Result<Value, Fault>>>>;

/// What a handler gives back: its answer now, or a future of it.
pub enum Reply {
    /// The answer, known now.
    Now(Result<Value, Fault>),
    /// The answer comes later: the loop polls the future whenever one of its wake-ups (a
    /// worker's answer, a timer) arrives, and answers the call when it is ready. Inside a
    /// batch or a `system.multicall`, which are answered whole at once, it is an error instead.
    Later(Later),
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Now(r) => f.debug_tuple("Now").field(r).finish(),
            Reply::Later(_) => f.write_str("Later(..)"),
        }
    }
}

/// A typed handler's result as a value. The common answers (a value already, a string, a
/// number) move in as they are; anything else goes through serde ([`crate::to_value`]).
fn answer<R: serde::Serialize + 'static>(r: R) -> Result<Value, Fault> {
    use std::any::Any;
    let mut slot = Some(r);
    let any: &mut dyn Any = &mut slot;
    macro_rules! moved {
        ($($t:ty => $make:expr),* $(,)?) => {$(
            if let Some(v) = any.downcast_mut::<Option<$t>>().and_then(Option::take) {
                return Ok($make(v));
            }
        )*};
    }
    moved!(Value => |v| v, String => Value::String, i64 => Value::Int, bool => Value::Bool, f64 => Value::Double);
    crate::to_value(&slot)
}

/// What a method runs; `C` is the context the daemon hands to every call.
pub(crate) type Handler<C> = Box<dyn FnMut(Params<'_>, &mut C) -> Reply>;

pub(crate) enum Body<C> {
    /// In a cell: a handler may change its own captures (`FnMut`), and the registry is shared.
    User(RefCell<Handler<C>>),
    /// A typed handler checks its own parameters against the traced shape (see `typed`).
    Typed(RefCell<Handler<C>>),
    System(crate::registry::SystemMethod),
}

/// A method to register: `Method::new("my.echo", handler).returns(Type::String).param(Type::String, "message")`.
pub struct Method<C> {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) signatures: Vec<Signature>,
    /// False until a signature is declared: such a method takes any parameters.
    pub(crate) declared: bool,
    /// A typed method whose parameter type takes anything (`Value`): no signature to declare.
    open: bool,
    pub(crate) permission: Permission,
    pub(crate) body: Body<C>,
}

impl<C: 'static> Method<C> {
    /// A method answering at once: the handler reads its [`Params`] and returns the answer.
    pub fn new<F>(name: impl Into<String>, mut handler: F) -> Method<C>
    where
        F: FnMut(Params<'_>, &mut C) -> Result<Value, Fault> + 'static,
    {
        let handler: Handler<C> = Box::new(move |p, ctx| Reply::Now(handler(p, ctx)));
        Method::with_body(name.into(), Body::User(RefCell::new(handler)))
    }

    /// A method answering later: the handler starts the work with the context (asking workers,
    /// say) and returns a future of the answer, which must not borrow the context. The call is
    /// answered when the future is ready; the daemon serves everyone else meanwhile.
    pub fn new_async<F, Fut>(name: impl Into<String>, mut handler: F) -> Method<C>
    where
        F: FnMut(Params<'_>, &mut C) -> Fut + 'static,
        Fut: Future<Output = Result<Value, Fault>> + 'static,
    {
        let handler: Handler<C> = Box::new(move |p, ctx| Reply::Later(Box::pin(handler(p, ctx))));
        Method::with_body(name.into(), Body::User(RefCell::new(handler)))
    }

    /// A method whose parameters are one typed value `P` (a struct: each field a parameter,
    /// named once, in the struct) and whose answer is any `R: Serialize`. The signature is
    /// derived from `P` (see [`crate::schema`]) for `system.methodSignature`; the result type
    /// is `any` unless [`Method::returns`] says more.
    ///
    /// ```
    /// # use tomte_rpc::{Method, Type};
    /// #[derive(serde::Deserialize)]
    /// struct Add { a: i64, b: i64 }
    /// let m: Method<()> = Method::typed("math.add", |p: Add, _| Ok(p.a + p.b)).returns(Type::Int);
    /// assert_eq!(m.signatures()[0].to_string(), "(int a, int b) -> int");
    /// ```
    pub fn typed<P, R, F>(name: impl Into<String>, mut handler: F) -> Method<C>
    where
        P: serde::de::DeserializeOwned + 'static,
        R: serde::Serialize + 'static,
        F: FnMut(P, &mut C) -> Result<R, Fault> + 'static,
    {
        let handler: Handler<C> = Box::new(move |p: Params<'_>, ctx: &mut C| {
            Reply::Now(p.parse::<P>().and_then(|p| handler(p, ctx)).and_then(answer))
        });
        Method::traced::<P>(name.into(), handler)
    }

    /// As [`Method::typed`], answering later (see [`Method::new_async`]).
    pub fn typed_async<P, R, F, Fut>(name: impl Into<String>, mut handler: F) -> Method<C>
    where
        P: serde::de::DeserializeOwned + 'static,
        R: serde::Serialize + 'static,
        F: FnMut(P, &mut C) -> Fut + 'static,
        Fut: Future<Output = Result<R, Fault>> + 'static,
    {
        let handler: Handler<C> = Box::new(move |p: Params<'_>, ctx: &mut C| match p.parse::<P>() {
            Ok(p) => {
                let fut = handler(p, ctx);
                Reply::Later(Box::pin(async move { fut.await.and_then(answer) }))
            }
            Err(f) => Reply::Now(Err(f)),
        });
        Method::traced::<P>(name.into(), handler)
    }

    /// A typed method: its signature from `P`'s shape.
    fn traced<P: serde::de::DeserializeOwned>(name: String, handler: Handler<C>) -> Method<C> {
        use crate::schema::Shape;
        let mut m = Method::with_body(name, Body::Typed(RefCell::new(handler)));
        let sig = m.current();
        match crate::schema::params_of::<P>() {
            Shape::Named(fields) => {
                for f in fields {
                    sig.names.push(f.name.to_owned());
                    sig.types.push(f.ty);
                }
            }
            Shape::Positional(types) => {
                for (i, f) in types.into_iter().enumerate() {
                    sig.names.push(format!("arg{}", i + 1));
                    sig.types.push(f.ty);
                }
            }
            Shape::Nothing => {}
            // Anything at all: no signature to show.
            Shape::Any => {
                m.open = true;
                return m;
            }
        }
        m.declared = true;
        m
    }
}

impl<C> Method<C> {
    pub(crate) fn with_body(name: String, body: Body<C>) -> Method<C> {
        Method {
            name,
            description: None,
            signatures: vec![Signature::new()],
            declared: false,
            open: false,
            permission: Permission::Call,
            body,
        }
    }

    /// The permission a caller must hold to run the method ([`Permission::Call`] unless set).
    pub fn requires(mut self, permission: Permission) -> Self {
        self.permission = permission;
        self
    }

    /// Sets the help text `system.methodHelp` answers.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Sets the result type of the current signature.
    pub fn returns(mut self, t: Type) -> Self {
        self.declared = !self.open;
        self.current().returns = t;
        self
    }

    /// Adds a parameter to the current signature.
    pub fn param(mut self, t: Type, name: impl Into<String>) -> Self {
        self.declared = true;
        let sig = self.current();
        sig.names.push(name.into());
        sig.types.push(t);
        self
    }

    /// Starts another signature; `returns` and `param` then apply to it.
    pub fn signature(mut self) -> Self {
        if self.declared {
            self.signatures.push(Signature::new());
        }
        self.declared = true;
        self
    }

    fn current(&mut self) -> &mut Signature {
        self.signatures.last_mut().expect("a method always has a signature")
    }

    /// The name it is called by.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// What a caller must hold to run it (see [`Method::requires`]).
    pub fn permission(&self) -> &Permission {
        &self.permission
    }
    /// The help text (see [`Method::description`]), if one was set.
    pub fn help(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// The declared signatures; empty when the method takes anything.
    pub fn signatures(&self) -> &[Signature] {
        if self.declared {
            &self.signatures
        } else {
            &[]
        }
    }
}
