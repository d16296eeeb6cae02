//! Methods: a name, a description, signatures (`[return, param…]` with names) and a handler.

use std::fmt;

use crate::fault::Fault;
use crate::permission::Permission;
use crate::value::{FromValue, Value};

/// A type in a signature, named as XML-RPC introspection names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Int,
    Double,
    Boolean,
    String,
    Base64,
    DateTime,
    Array,
    Struct,
    Nil,
    /// Anything: an untyped parameter or result.
    Any,
}

impl Type {
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

    /// Whether a value may stand for a parameter of this type. JSON has no double/int, base64
    /// or date distinction, so an int passes for a double and a string for base64 or a date.
    pub fn accepts(self, v: &Value) -> bool {
        matches!(
            (self, v),
            (Type::Any, _)
                | (Type::Int, Value::Int(_))
                | (Type::Double, Value::Double(_) | Value::Int(_))
                | (Type::Boolean, Value::Bool(_))
                | (Type::String, Value::String(_))
                | (Type::Base64, Value::Base64(_) | Value::String(_))
                | (Type::DateTime, Value::DateTime(_) | Value::String(_))
                | (Type::Array, Value::Array(_))
                | (Type::Struct, Value::Struct(_))
                | (Type::Nil, Value::Nil)
        )
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
    pub returns: Type,
    pub names: Vec<String>,
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
}

impl<'a> Params<'a> {
    pub fn new(values: Vec<Value>, names: &'a [String]) -> Params<'a> {
        Params { values, names }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }
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

/// What a method runs; `C` is the context the daemon hands to every call.
pub type Handler<C> = Box<dyn Fn(Params<'_>, &mut C) -> Result<Value, Fault>>;

pub(crate) enum Body<C> {
    User(Handler<C>),
    System(crate::registry::SystemMethod),
}

/// A method to register: `Method::new("my.echo", handler).returns(Type::String).param(Type::String, "message")`.
pub struct Method<C> {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) signatures: Vec<Signature>,
    /// False until a signature is declared: such a method takes any parameters.
    pub(crate) declared: bool,
    pub(crate) permission: Permission,
    pub(crate) body: Body<C>,
}

impl<C> Method<C> {
    pub fn new<F>(name: impl Into<String>, handler: F) -> Method<C>
    where
        F: Fn(Params<'_>, &mut C) -> Result<Value, Fault> + 'static,
    {
        Method::with_body(name.into(), Body::User(Box::new(handler)))
    }

    pub(crate) fn with_body(name: String, body: Body<C>) -> Method<C> {
        Method {
            name,
            description: None,
            signatures: vec![Signature::new()],
            declared: false,
            permission: Permission::Call,
            body,
        }
    }

    /// The permission a caller must hold to run the method ([`Permission::Call`] unless set).
    pub fn requires(mut self, permission: Permission) -> Self {
        self.permission = permission;
        self
    }

    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Sets the result type of the current signature.
    pub fn returns(mut self, t: Type) -> Self {
        self.declared = true;
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

    pub fn name(&self) -> &str {
        &self.name
    }
    /// What a caller must hold to run it (see [`Method::requires`]).
    pub fn permission(&self) -> &Permission {
        &self.permission
    }
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
