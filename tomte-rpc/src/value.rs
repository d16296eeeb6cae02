//! The value model shared by every protocol: XML-RPC's types, of which JSON has a subset.

use std::fmt;

use base64::Engine as _;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::fault::Fault;
use crate::structure;

/// One RPC value. Structs keep their members in the order they arrived.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// `nil` / `ex:nil` in XML-RPC, `null` in JSON.
    #[default]
    Nil,
    Bool(bool),
    Int(i64),
    Double(f64),
    String(String),
    /// Raw bytes; XML-RPC `base64`, a base64 string in JSON.
    Base64(Vec<u8>),
    /// XML-RPC `dateTime.iso8601`, kept as the text it came in (`19980717T14:08:55`).
    DateTime(String),
    Array(Vec<Value>),
    Struct(Vec<(String, Value)>),
}

impl Value {
    /// The XML-RPC type name of this value, as signatures spell it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "int",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::Base64(_) => "base64",
            Value::DateTime(_) => "dateTime.iso8601",
            Value::Array(_) => "array",
            Value::Struct(_) => "struct",
        }
    }

    /// The member `name` of a struct, if this is a struct that has it.
    pub fn member(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::DateTime(s) => Some(s),
            _ => None,
        }
    }

    /// Builds a struct from `(name, value)` pairs.
    pub fn structure<K: Into<String>, V: Into<Value>>(members: impl IntoIterator<Item = (K, V)>) -> Value {
        Value::Struct(members.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value { Value::Int(i64::from(v)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        i64::try_from(v).map_or(Value::Double(v as f64), Value::Int)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Value {
        i64::try_from(v).map_or(Value::Double(v as f64), Value::Int)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Double(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::String(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::String(v.to_owned())
    }
}
impl From<()> for Value {
    fn from(_: ()) -> Value {
        Value::Nil
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Value {
        Value::Array(v.into_iter().map(Into::into).collect())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Nil, Into::into)
    }
}

/// Typed extraction of a parameter or result: `params.get::<String>("message")`.
pub trait FromValue: Sized {
    /// Converts, or explains in a fault (−32602) what was expected.
    fn from_value(v: Value) -> Result<Self, Fault>;
}

fn expected(what: &str, got: &Value) -> Fault {
    Fault::invalid_params(format!("expected {what}, got {}", got.type_name()))
}

impl FromValue for Value {
    fn from_value(v: Value) -> Result<Self, Fault> {
        Ok(v)
    }
}
impl FromValue for String {
    fn from_value(v: Value) -> Result<Self, Fault> {
        match v {
            Value::String(s) | Value::DateTime(s) => Ok(s),
            other => Err(expected("string", &other)),
        }
    }
}
impl FromValue for bool {
    fn from_value(v: Value) -> Result<Self, Fault> {
        match v {
            Value::Bool(b) => Ok(b),
            other => Err(expected("boolean", &other)),
        }
    }
}
impl FromValue for i64 {
    fn from_value(v: Value) -> Result<Self, Fault> {
        match v {
            Value::Int(i) => Ok(i),
            other => Err(expected("int", &other)),
        }
    }
}
impl FromValue for i32 {
    fn from_value(v: Value) -> Result<Self, Fault> {
        let i = i64::from_value(v)?;
        i32::try_from(i).map_err(|_| Fault::invalid_params(format!("{i} does not fit in 32 bits")))
    }
}
impl FromValue for u64 {
    fn from_value(v: Value) -> Result<Self, Fault> {
        let i = i64::from_value(v)?;
        u64::try_from(i).map_err(|_| Fault::invalid_params(format!("{i} is negative")))
    }
}
impl FromValue for f64 {
    fn from_value(v: Value) -> Result<Self, Fault> {
        match v {
            Value::Double(d) => Ok(d),
            Value::Int(i) => Ok(i as f64),
            other => Err(expected("double", &other)),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: Value) -> Result<Self, Fault> {
        match v {
            Value::Base64(b) => Ok(b),
            Value::String(s) => base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|e| Fault::invalid_params(format!("bad base64: {e}"))),
            other => Err(expected("base64", &other)),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: Value) -> Result<Self, Fault> {
        match v {
            Value::Nil => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}
impl<T: FromValue> FromValue for Vec<T> {
    fn from_value(v: Value) -> Result<Self, Fault> {
        match v {
            Value::Array(items) => items.into_iter().map(T::from_value).collect(),
            other => Err(expected("array", &other)),
        }
    }
}

// ---- JSON mapping (serde), used by the JSON-RPC codec on the hot path ----

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            // JSON has no NaN or infinity: they become null rather than invalid JSON.
            Value::Double(d) if !d.is_finite() => s.serialize_unit(),
            Value::Double(d) => s.serialize_f64(*d),
            Value::String(v) | Value::DateTime(v) => s.serialize_str(v),
            Value::Base64(b) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Struct(members) => {
                let mut map = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Double(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        // A repeated key keeps its last value in its first place (the rule of every decoder).
        let mut members = structure::Builder::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            members.insert(k, v);
        }
        Ok(Value::Struct(members.finish()))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_order_and_types() {
        let text = r#"{"b":1,"a":[true,null,1.5,"x"],"big":18446744073709551615}"#;
        let v: Value = serde_json::from_str(text).unwrap();
        let Value::Struct(m) = &v else { panic!("not a struct") };
        assert_eq!(m[0].0, "b");
        assert_eq!(m[1].1, Value::Array(vec![true.into(), Value::Nil, 1.5.into(), "x".into()]));
        assert!(matches!(m[2].1, Value::Double(_)));
        assert_eq!(serde_json::to_string(&m[1].1).unwrap(), r#"[true,null,1.5,"x"]"#);
    }

    #[test]
    fn json_numbers_read_as_the_nearest_double() {
        // Found by fuzzing: without serde_json's `float_roundtrip`, an integer beyond i64 read
        // as a double could be one unit in the last place off, so it changed on a round trip.
        for text in ["-9223372166854775808", "18446744073709551616", "9.223372166854775e18", "1.7976931348623157e308"] {
            let Value::Double(d) = serde_json::from_str(text).unwrap() else { panic!("{text}") };
            assert_eq!(d.to_bits(), text.parse::<f64>().unwrap().to_bits(), "{text}");
        }
    }

    #[test]
    fn base64_is_a_string_in_json() {
        let v = Value::Base64(b"hi".to_vec());
        assert_eq!(serde_json::to_string(&v).unwrap(), r#""aGk=""#);
        assert_eq!(Vec::<u8>::from_value("aGk=".into()).unwrap(), b"hi");
    }

    /// The JSON text of every kind of value, as the codec has always written it: the serde
    /// mapping of `Value` may change inside (for `to_value`), never what serde_json sees.
    #[test]
    fn json_text_of_every_value_is_unchanged() {
        let all_bytes = concat!(
            "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xN",
            "Tk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2e",
            "n6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v",
            "8PHy8/T19vf4+fr7/P3+/w==\""
        );
        let cases: Vec<(Value, &str)> = vec![
            (Value::Nil, "null"),
            (Value::Bool(true), "true"),
            (Value::Bool(false), "false"),
            (Value::Int(-42), "-42"),
            (Value::Int(i64::MIN), "-9223372036854775808"),
            (Value::Double(1.5), "1.5"),
            (Value::Double(-0.0), "-0.0"),
            (Value::Double(1e300), "1e+300"),
            (Value::Double(f64::NAN), "null"),
            (Value::Double(-f64::NAN), "null"),
            (Value::Double(f64::INFINITY), "null"),
            (Value::Double(f64::NEG_INFINITY), "null"),
            (Value::String("a \"q\" \u{e9}\n\u{1}".into()), "\"a \\\"q\\\" \u{e9}\\n\\u0001\""),
            (Value::Base64(Vec::new()), "\"\""),
            (Value::Base64(b"hi".to_vec()), "\"aGk=\""),
            (Value::Base64((0..=255).collect()), all_bytes),
            (Value::DateTime("19980717T14:08:55".into()), "\"19980717T14:08:55\""),
            (Value::DateTime("not a date".into()), "\"not a date\""),
            (Value::Array(Vec::new()), "[]"),
            (Value::Struct(Vec::new()), "{}"),
            (
                Value::structure([
                    ("z", Value::Array(vec![Value::Double(f64::NAN), Value::Base64(vec![0]), Value::Nil])),
                    ("a", Value::DateTime("2026-11-25T10:02:31+01:00".into())),
                    ("m", Value::structure([("n", Value::Double(2.0))])),
                ]),
                r#"{"z":[null,"AA==",null],"a":"2026-11-25T10:02:31+01:00","m":{"n":2.0}}"#,
            ),
        ];
        for (v, text) in &cases {
            assert_eq!(serde_json::to_string(v).unwrap(), *text, "{v:?}");
            // Through serde_json's own value model too (which sorts members by name).
            let json = serde_json::to_value(v).unwrap();
            assert_eq!(json, serde_json::from_str::<serde_json::Value>(text).unwrap(), "{v:?}");
        }
    }

    #[test]
    fn extraction_explains_mismatches() {
        let f = String::from_value(Value::Int(5)).unwrap_err();
        assert_eq!(f.code, -32602);
        assert!(f.to_string().contains("expected string, got int"), "{f}");
    }
}
