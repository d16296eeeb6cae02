//! TEMPORARY stand-ins until the serde conversions land (replaced by the real modules).
#![allow(missing_docs)]
use crate::{Fault, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    Strict,
    Lenient,
}
pub fn to_value<T: serde::Serialize + ?Sized>(v: &T) -> Result<Value, Fault> {
    serde_json::to_value(v).and_then(serde_json::from_value).map_err(|e| Fault::internal(e.to_string()))
}
pub fn from_value_as<T: serde::de::DeserializeOwned>(v: Value, _rules: Rules) -> Result<T, Fault> {
    let j = serde_json::to_value(&v).map_err(|e| Fault::internal(e.to_string()))?;
    serde_json::from_value(j).map_err(|e| Fault::invalid_params(e.to_string()))
}
pub fn from_params<T: serde::de::DeserializeOwned>(values: Vec<Value>, names: &[String], rules: Rules) -> Result<T, Fault> {
    if names.is_empty() {
        from_value_as(Value::Array(values), rules)
    } else {
        from_value_as(Value::Struct(names.iter().cloned().zip(values).collect()), rules)
    }
}
pub mod types {
    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct DateTime(String);
    impl DateTime {
        pub fn parse(s: &str) -> Result<DateTime, String> {
            Ok(DateTime(s.to_owned()))
        }
    }
    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct Bytes(pub Vec<u8>);
}
pub use types::{Bytes, DateTime};
pub fn from_value<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, Fault> {
    from_value_as(v, Rules::Lenient)
}
pub mod schema {
    pub struct Field {
        pub name: &'static str,
        pub ty: crate::Type,
    }
    pub struct FieldType {
        pub ty: crate::Type,
    }
    pub enum Shape {
        Named(Vec<Field>),
        Positional(Vec<FieldType>),
        Nothing,
        Any,
    }
    pub fn params_of<T>() -> Shape {
        Shape::Any
    }
}
