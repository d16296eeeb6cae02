//! The value model shared by every protocol: XML-RPC's types, of which JSON has a subset.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;

use base64::Engine as _;
use serde::de::{self, Deserialize, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::fault::Fault;
use crate::structure;
use crate::types::{Bytes, DateTime, DATETIME_NAME};

/// One RPC value. Structs keep their members in the order they arrived.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// `nil` / `ex:nil` in XML-RPC, `null` in JSON.
    #[default]
    Nil,
    /// `boolean` in XML-RPC, `true`/`false` in JSON.
    Bool(bool),
    /// A 64-bit integer: XML-RPC `int` (`i4`) or `i8`, a JSON integer that fits.
    Int(i64),
    /// A double: XML-RPC `double`; in JSON a number with a fraction or an exponent, or an integer
    /// too big for [`Value::Int`].
    Double(f64),
    /// XML-RPC `string` (or a `<value>` without a type), a JSON string.
    String(String),
    /// Raw bytes; XML-RPC `base64`, a base64 string in JSON.
    Base64(Vec<u8>),
    /// XML-RPC `dateTime.iso8601`, kept as the text it came in (`19980717T14:08:55`).
    DateTime(String),
    /// XML-RPC `array`, a JSON array.
    Array(Vec<Value>),
    /// XML-RPC `struct`, a JSON object: named members in order (the decoders keep one per name).
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

    /// The member `name` of a struct, if this is a struct that has it (as [`Value::member`]).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.member(name)
    }

    /// The text of a string or of a date.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::DateTime(s) => Some(s),
            _ => None,
        }
    }

    /// An int's value.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// A double's value; an int is not one (see [`FromValue`] for `f64`, which converts).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Double(d) => Some(*d),
            _ => None,
        }
    }

    /// A boolean's value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The bytes of a [`Value::Base64`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Base64(b) => Some(b),
            _ => None,
        }
    }

    /// The items of an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The members of a struct, in their order.
    pub fn as_struct(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Struct(members) => Some(members),
            _ => None,
        }
    }

    /// Whether this is [`Value::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
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
impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::Double(f64::from(v))
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
/// A struct whose members are sorted by name (a hash map has no order of its own, and the
/// same map should always be written the same way).
impl<K: Into<String>, V: Into<Value>, S> From<HashMap<K, V, S>> for Value {
    fn from(v: HashMap<K, V, S>) -> Value {
        let mut members: Vec<(String, Value)> = v.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Value::Struct(members)
    }
}
/// A struct whose members are in the map's order.
impl<K: Into<String>, V: Into<Value>> From<BTreeMap<K, V>> for Value {
    fn from(v: BTreeMap<K, V>) -> Value {
        Value::Struct(v.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// Typed extraction of a parameter or result: `params.get::<String>("message")`.
pub trait FromValue: Sized {
    /// Converts, or explains in a fault (−32602) what was expected.
    fn from_value(v: Value) -> Result<Self, Fault>;

    /// Converts a value into a `Vec` of such values: an array, element by element. What
    /// `Vec<T>` uses; `u8` overrides it so that `Vec<u8>` takes base64 too.
    #[doc(hidden)]
    fn from_value_vec(v: Value) -> Result<Vec<Self>, Fault> {
        match v {
            Value::Array(items) => items.into_iter().map(Self::from_value).collect(),
            other => Err(expected("array", &other)),
        }
    }
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
macro_rules! from_value_int {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: Value) -> Result<Self, Fault> {
                let i = i64::from_value(v)?;
                <$t>::try_from(i).map_err(|_| {
                    Fault::invalid_params(format!("{i} is out of range ({} to {})", <$t>::MIN, <$t>::MAX))
                })
            }
        }
    )*};
}
from_value_int!(i16, i8, u32, u16, usize);

/// An int 0 to 255; a `Vec<u8>` is read from base64 (or a base64 string, or an array of ints).
impl FromValue for u8 {
    fn from_value(v: Value) -> Result<Self, Fault> {
        let i = i64::from_value(v)?;
        u8::try_from(i).map_err(|_| Fault::invalid_params(format!("{i} is out of range (0 to 255)")))
    }
    fn from_value_vec(v: Value) -> Result<Vec<u8>, Fault> {
        match v {
            Value::Base64(b) => Ok(b),
            Value::String(s) => base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|e| Fault::invalid_params(format!("bad base64: {e}"))),
            Value::Array(items) => items.into_iter().map(u8::from_value).collect(),
            other => Err(expected("base64", &other)),
        }
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
/// A double (or an int) that fits in 32 bits: a finite double beyond `f32::MAX` is refused,
/// others are rounded to the nearest `f32`.
impl FromValue for f32 {
    fn from_value(v: Value) -> Result<Self, Fault> {
        to_f32(f64::from_value(v)?).map_err(Fault::invalid_params)
    }
}
pub(crate) fn to_f32(d: f64) -> Result<f32, String> {
    if d.is_finite() && d.abs() > f64::from(f32::MAX) {
        Err(format!("{d:?} is out of range for a 32-bit float"))
    } else {
        Ok(d as f32)
    }
}
impl FromValue for Bytes {
    fn from_value(v: Value) -> Result<Self, Fault> {
        match v {
            Value::Base64(b) => Ok(Bytes(b)),
            Value::String(s) => crate::types::decode_base64(&s).map(Bytes).map_err(Fault::invalid_params),
            other => Err(expected("base64", &other)),
        }
    }
}
/// A date, or a string that [`DateTime::parse`] takes.
impl FromValue for DateTime {
    fn from_value(v: Value) -> Result<Self, Fault> {
        match v {
            Value::DateTime(s) | Value::String(s) => {
                DateTime::try_from(s).map_err(|e| Fault::invalid_params(format!("not an ISO 8601 date: {e}")))
            }
            other => Err(expected("dateTime.iso8601", &other)),
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
        T::from_value_vec(v)
    }
}
/// A struct's members; a member that does not convert is named in the fault.
impl<T: FromValue, S: BuildHasher + Default> FromValue for HashMap<String, T, S> {
    fn from_value(v: Value) -> Result<Self, Fault> {
        match v {
            Value::Struct(members) => members.into_iter().map(|(k, v)| member_from_value(k, v)).collect(),
            other => Err(expected("struct", &other)),
        }
    }
}
/// A struct's members, by name; a member that does not convert is named in the fault.
impl<T: FromValue> FromValue for BTreeMap<String, T> {
    fn from_value(v: Value) -> Result<Self, Fault> {
        match v {
            Value::Struct(members) => members.into_iter().map(|(k, v)| member_from_value(k, v)).collect(),
            other => Err(expected("struct", &other)),
        }
    }
}
fn member_from_value<T: FromValue>(name: String, v: Value) -> Result<(String, T), Fault> {
    match T::from_value(v) {
        Ok(t) => Ok((name, t)),
        Err(mut f) => {
            if let Some(Value::String(d)) = &mut f.data {
                *d = format!("member '{name}': {d}");
            }
            Err(f)
        }
    }
}

/// `TryFrom<Value>` for the types [`FromValue`] converts to (what `Value::try_into` needs).
macro_rules! try_from_value {
    ($([$($g:tt)*] $t:ty),* $(,)?) => {$(
        impl<$($g)*> TryFrom<Value> for $t {
            type Error = Fault;
            fn try_from(v: Value) -> Result<Self, Fault> {
                <$t as FromValue>::from_value(v)
            }
        }
    )*};
}
try_from_value!(
    [] String, [] bool, [] i64, [] i32, [] i16, [] i8, [] u64, [] u32, [] u16, [] u8, [] usize, [] f64, [] f32,
    [] Bytes, [] DateTime,
    [T: FromValue] Vec<T>,
    [T: FromValue, S: BuildHasher + Default] HashMap<String, T, S>,
    [T: FromValue] BTreeMap<String, T>,
);

// ---- JSON mapping (serde), used by the JSON-RPC codec on the hot path ----

/// The name of the newtype struct a [`Value::Base64`] serializes as, around its base64 text.
pub(crate) const BASE64_NAME: &str = "$tomte::Base64";
/// The name of the newtype struct `Value`'s `Deserialize` asks for; see [`ValueVisitor`].
pub(crate) const VALUE_NAME: &str = "$tomte::Value";

/// A base64 value is a newtype struct named `$tomte::Base64` around its base64 text and a date
/// one named [`DATETIME_NAME`] around the date's text: serde_json writes a newtype struct as
/// the value inside, so JSON sees strings, while [`crate::to_value`] knows them by name and
/// makes them `Base64` and `DateTime` again. JSON has no NaN or infinity: serde_json writes
/// such a double as `null` (never invalid JSON), `to_value` keeps it.
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            // NaN and the infinities too: serde_json writes them as null, to_value keeps them.
            Value::Double(d) => s.serialize_f64(*d),
            Value::String(v) => s.serialize_str(v),
            Value::DateTime(v) => s.serialize_newtype_struct(DATETIME_NAME, v.as_str()),
            Value::Base64(b) => {
                s.serialize_newtype_struct(BASE64_NAME, base64::engine::general_purpose::STANDARD.encode(b).as_str())
            }
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

/// Reads any value. `Value`'s `Deserialize` asks for a newtype struct named `$tomte::Value`,
/// which serde_json (as most deserializers) answers with [`Visitor::visit_newtype_struct`]:
/// that reads the value inside with `deserialize_any`, as `Value` always did. The
/// deserializer of [`crate::from_value`] knows the name, so it knows a `Value` is asked for
/// and answers a base64 value with [`Visitor::visit_byte_buf`] and a date with
/// [`Visitor::visit_enum`] of one variant named [`DATETIME_NAME`] around the text: JSON has
/// no bytes and no enums, and to every other visitor (`serde_json::Value`'s, say) it gives a
/// base64 value as its text and a date as a string, as JSON would.
struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Base64(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Base64(v))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (DateTimeTag, variant) = data.variant()?;
        variant.newtype_variant::<String>().map(Value::DateTime)
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

/// The one variant name [`ValueVisitor::visit_enum`] takes.
struct DateTimeTag;

impl<'de> Deserialize<'de> for DateTimeTag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DateTimeTag, D::Error> {
        struct TagVisitor;
        impl Visitor<'_> for TagVisitor {
            type Value = DateTimeTag;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a date")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DateTimeTag, E> {
                if v == DATETIME_NAME {
                    Ok(DateTimeTag)
                } else {
                    Err(E::unknown_variant(v, &[DATETIME_NAME]))
                }
            }
        }
        d.deserialize_identifier(TagVisitor)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_newtype_struct(VALUE_NAME, ValueVisitor)
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
    fn accessors_take_only_their_own_type() {
        let s = Value::structure([("a", Value::Int(1)), ("b", Value::Base64(vec![9]))]);
        assert_eq!(s.get("a").and_then(Value::as_i64), Some(1));
        assert_eq!(s.get("b").and_then(Value::as_bytes), Some(&[9u8][..]));
        assert_eq!(s.get("c"), None);
        assert_eq!(s.as_struct().map(<[_]>::len), Some(2));
        assert_eq!(Value::Int(1).as_f64(), None);
        assert_eq!(Value::Double(1.5).as_f64(), Some(1.5));
        assert_eq!(Value::Double(1.0).as_i64(), None);
        assert_eq!(Value::Bool(true).as_bool(), Some(true));
        assert_eq!(Value::Int(1).as_bool(), None);
        assert_eq!(Value::from(vec![1, 2]).as_array().map(<[_]>::len), Some(2));
        assert_eq!(Value::String("x".into()).as_bytes(), None);
        assert!(Value::Nil.is_nil());
        assert!(!Value::Int(0).is_nil());
    }

    #[test]
    fn conversions_of_maps_and_small_types() {
        let h = HashMap::from([("b", 2), ("a", 1), ("c", 3)]);
        assert_eq!(Value::from(h), Value::structure([("a", 1), ("b", 2), ("c", 3)]));
        let b = BTreeMap::from([("y".to_owned(), true), ("x".to_owned(), false)]);
        assert_eq!(Value::from(b.clone()), Value::structure([("x", false), ("y", true)]));
        assert_eq!(BTreeMap::<String, bool>::from_value(Value::from(b.clone())).unwrap(), b);
        let e = HashMap::<String, i64>::from_value(Value::structure([("k", "v")])).unwrap_err();
        assert!(e.to_string().contains("member 'k': expected int, got string"), "{e}");
        assert_eq!(Value::from(1.5f32), Value::Double(1.5));
        assert_eq!(Value::from(Bytes(vec![1])), Value::Base64(vec![1]));
        let d = DateTime::parse("19980717T14:08:55").unwrap();
        assert_eq!(Value::from(d.clone()), Value::DateTime("19980717T14:08:55".into()));

        assert_eq!(u8::from_value(Value::Int(255)).unwrap(), 255);
        assert!(u8::from_value(Value::Int(256)).unwrap_err().to_string().contains("256 is out of range (0 to 255)"));
        assert!(i8::from_value(Value::Int(-129)).is_err());
        assert!(u16::from_value(Value::Int(-1)).is_err());
        assert_eq!(u32::from_value(Value::Int(4_294_967_295)).unwrap(), u32::MAX);
        assert!(u32::from_value(Value::Int(4_294_967_296)).is_err());
        assert_eq!(i16::from_value(Value::Int(-32768)).unwrap(), i16::MIN);
        assert_eq!(usize::from_value(Value::Int(7)).unwrap(), 7);
        assert!(usize::from_value(Value::Int(-7)).is_err());
        assert_eq!(f32::from_value(Value::Int(2)).unwrap(), 2.0);
        assert!(f32::from_value(Value::Double(1e39)).unwrap_err().to_string().contains("1e39 is out of range"));
        assert!(f32::from_value(Value::Double(f64::INFINITY)).unwrap().is_infinite());
        // Vec<u8> still reads base64 and base64 strings, and now arrays of ints too.
        assert_eq!(Vec::<u8>::from_value(Value::Base64(vec![1])).unwrap(), vec![1]);
        assert_eq!(Vec::<u8>::from_value(Value::from(vec![1, 2])).unwrap(), vec![1, 2]);
        assert!(Vec::<u8>::from_value(Value::Int(1)).unwrap_err().to_string().contains("expected base64, got int"));
        assert_eq!(Vec::<u16>::from_value(Value::from(vec![1, 2])).unwrap(), vec![1, 2]);

        assert_eq!(Bytes::from_value("aGk".into()).unwrap(), Bytes(b"hi".to_vec()));
        assert_eq!(DateTime::from_value(Value::DateTime("19980717T14:08:55".into())).unwrap(), d);
        assert_eq!(DateTime::from_value("19980717T14:08:55".into()).unwrap(), d);
        let e = DateTime::from_value(Value::DateTime("1998".into())).unwrap_err();
        assert!(e.to_string().contains("not an ISO 8601 date"), "{e}");

        let n: i64 = Value::Int(3).try_into().unwrap();
        assert_eq!(n, 3);
        let s: Result<String, Fault> = Value::Int(3).try_into();
        assert_eq!(s.unwrap_err().code, -32602);
        let v: Vec<bool> = Value::from(vec![true]).try_into().unwrap();
        assert_eq!(v, vec![true]);
        let m: HashMap<String, f64> = Value::structure([("x", 1)]).try_into().unwrap();
        assert_eq!(m["x"], 1.0);
        let d2: DateTime = Value::from(d.clone()).try_into().unwrap();
        assert_eq!(d2, d);
    }

    #[test]
    fn extraction_explains_mismatches() {
        let f = String::from_value(Value::Int(5)).unwrap_err();
        assert_eq!(f.code, -32602);
        assert!(f.to_string().contains("expected string, got int"), "{f}");
    }
}
