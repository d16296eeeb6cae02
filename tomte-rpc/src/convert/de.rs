//! A serde deserializer that reads a [`Value`], naming in its faults where a mismatch is.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use base64::Engine as _;
use serde::de::value::{BorrowedStrDeserializer, SeqDeserializer, StringDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::forward_to_deserialize_any;

use crate::fault::Fault;
use crate::types::{decode_base64, BYTES_NAME, DATETIME_NAME};
use crate::value::{to_f32, Value, VALUE_NAME};

/// How strictly the types of values are read.
///
/// XML-RPC has every type, so what a caller sends is what it means: [`Rules::Strict`] takes a
/// `double` only from a double, bytes only from base64, a date only from a date. JSON has no
/// bytes, no dates, and numbers that may look like integers: [`Rules::Lenient`] also takes a
/// double from an int, bytes from a base64 string (standard alphabet, padding optional), a date
/// from a string that [`crate::DateTime::parse`] takes, and a string from a date.
///
/// Both take an int only from an int (an `i8` or a `u16` only if it is in range), a boolean
/// only from a boolean, and nil only for an `Option` (`None`) or `()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rules {
    /// XML-RPC's: the value's type must be the one asked for.
    Strict,
    /// JSON's: what JSON cannot say (a double that is integral, bytes, a date) is read from
    /// what JSON says instead.
    Lenient,
}

/// Deserializes a value into `T`, with the lenient (JSON) rules: see [`Rules`] and
/// [`from_value_as`].
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, Fault> {
    from_value_as(value, Rules::Lenient)
}

/// Deserializes a value into `T`, with the strict (XML-RPC) rules: see [`Rules`] and
/// [`from_value_as`].
pub fn from_value_strict<T: DeserializeOwned>(value: Value) -> Result<T, Fault> {
    from_value_as(value, Rules::Strict)
}

/// Deserializes a value into `T` with `rules`.
///
/// A struct is read from a [`Value::Struct`] by member name (unknown members are ignored
/// unless the type is `#[serde(deny_unknown_fields)]`), or from a [`Value::Array`] by position,
/// its fields in order (at most as many elements as fields; an `Option` field may be left out).
/// A tuple is read from an array by position, trailing `Option`s may be left out. A `Vec<u8>`
/// is read from an array of ints or from base64. An enum's unit variant is read from a string
/// (its name), other variants from a struct of one member named as the variant. `Option` is
/// `None` for [`Value::Nil`].
///
/// A `Value` deserializes into itself, exactly; a `serde_json::Value` into what the value is
/// in JSON (a base64 value is its base64 text, a date a string, NaN null).
///
/// Two limits come from serde's derive. A field with `#[serde(alias)]` takes a place among the
/// positions for each alias (serde lists the aliases with the fields). Untagged enums and
/// `#[serde(flatten)]` read the value through serde's own buffer: there serde's own rules
/// hold whatever `rules` says (a double is read from an int, say), and base64 values and
/// dates are strings ([`crate::Bytes`] and [`crate::DateTime`] take those).
///
/// A mismatch is a fault −32602 (`Fault::invalid_params`) whose detail names the parameter, the
/// member path in it: `parameter 'n': expected int, got string`, `parameter 'opts.depth': …`,
/// `parameter 'list[2]': …`, `parameter #1: …` (by position), `missing parameter 'b'`, `unknown
/// parameter 'x'`, `expects at most 2 parameters, got 3`.
pub fn from_value_as<T: DeserializeOwned>(value: Value, rules: Rules) -> Result<T, Fault> {
    T::deserialize(ValueDeserializer { value, rules }).map_err(Error::into_fault)
}

/// Deserializes the parameters of a call into `T`, with `rules`.
///
/// `values` are the parameters in order; `names` the names of the method's parameters, in the
/// same order, if it declares them (empty if not).
///
/// * A struct, a map, or anything read as any value (`Value`, `serde_json::Value`): with names,
///   the struct `{names[0]: values[0], …}` (more values than names is a fault); without, the
///   array of the values, so a struct takes them by position, its fields in order.
/// * A tuple or a sequence (`Vec<T>`): the values by position.
/// * `()`: no values.
/// * `Option<T>`: `None` for no value or one nil, else `T` read from the values.
/// * Anything else (`i64`, `String`, [`crate::DateTime`], an enum…): the one value.
///
/// The faults name the parameters as [`from_value_as`]'s do.
pub fn from_params<T: DeserializeOwned>(values: Vec<Value>, names: &[String], rules: Rules) -> Result<T, Fault> {
    T::deserialize(ParamsDeserializer { values, names, rules }).map_err(Error::into_fault)
}

// ---- errors ----

/// What went wrong, and where: the path from the value read down to the mismatch.
#[derive(Debug)]
pub(crate) struct Error(Box<Inner>);

#[derive(Debug)]
struct Inner {
    /// Innermost first: a path grows as the error goes up.
    path: Vec<Segment>,
    kind: Kind,
}

#[derive(Debug)]
enum Segment {
    Key(String),
    Index(usize),
}

#[derive(Debug)]
enum Kind {
    Message(String),
    /// The path's last segment is missing.
    Missing,
    /// The path's last segment is not a field of the target.
    Unknown,
    TooMany {
        max: usize,
        got: usize,
    },
}

impl Error {
    fn new(kind: Kind) -> Error {
        Error(Box::new(Inner { path: Vec::new(), kind }))
    }
    fn message(msg: impl Into<String>) -> Error {
        Error::new(Kind::Message(msg.into()))
    }
    fn expected(what: &str, got: &Value) -> Error {
        Error::message(format!("expected {what}, got {}", got.type_name()))
    }
    fn too_many(max: usize, got: usize) -> Error {
        Error::new(Kind::TooMany { max, got })
    }
    fn missing(segment: Segment) -> Error {
        Error::new(Kind::Missing).within(segment)
    }
    /// The error, one level up: inside the member or element `segment`.
    fn within(mut self, segment: Segment) -> Error {
        self.0.path.push(segment);
        self
    }
    fn into_fault(self) -> Fault {
        Fault::invalid_params(self.to_string())
    }

    /// `'opts.depth'`, `'list[2]'`, `#1`, `#1.depth`.
    fn write_path(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut segments = self.0.path.iter().rev();
        let quoted = match segments.next() {
            Some(Segment::Key(k)) => {
                f.write_char('\'')?;
                f.write_str(k)?;
                true
            }
            Some(Segment::Index(i)) => {
                write!(f, "#{i}")?;
                false
            }
            None => false,
        };
        for segment in segments {
            match segment {
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        if quoted {
            f.write_char('\'')?;
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let top = self.0.path.is_empty();
        match &self.0.kind {
            Kind::Message(m) if top => f.write_str(m),
            Kind::Message(m) => {
                f.write_str("parameter ")?;
                self.write_path(f)?;
                write!(f, ": {m}")
            }
            Kind::Missing => {
                f.write_str("missing parameter ")?;
                self.write_path(f)
            }
            Kind::Unknown => {
                f.write_str("unknown parameter ")?;
                self.write_path(f)
            }
            Kind::TooMany { max, got } if top => write!(f, "expects at most {max} parameters, got {got}"),
            Kind::TooMany { max, got } => {
                f.write_str("parameter ")?;
                self.write_path(f)?;
                write!(f, ": expects at most {max} elements, got {got}")
            }
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error::message(msg.to_string())
    }
    fn missing_field(field: &'static str) -> Error {
        Error::missing(Segment::Key(field.to_owned()))
    }
    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Error {
        Error::new(Kind::Unknown).within(Segment::Key(field.to_owned()))
    }
}

// ---- a value ----

struct ValueDeserializer {
    value: Value,
    rules: Rules,
}

impl ValueDeserializer {
    fn new(value: Value, rules: Rules) -> ValueDeserializer {
        ValueDeserializer { value, rules }
    }
}

/// Visits the elements of an array; `pad_to` elements at least, the missing ones absent (for a
/// tuple, whose trailing `Option`s may be left out).
fn visit_items<'de, V: Visitor<'de>>(
    items: Vec<Value>,
    pad_to: usize,
    rules: Rules,
    visitor: V,
) -> Result<V::Value, Error> {
    let len = items.len();
    let mut seq = Items { iter: items.into_iter(), index: 0, pad_to, rules };
    let out = visitor.visit_seq(&mut seq)?;
    match seq.iter.len() {
        0 => Ok(out),
        left => Err(Error::too_many(len - left, len)),
    }
}

fn visit_members<'de, V: Visitor<'de>>(entries: Entries, rules: Rules, visitor: V) -> Result<V::Value, Error> {
    visitor.visit_map(Members { entries, key: Cow::Borrowed(""), value: None, rules })
}

macro_rules! deserialize_int {
    ($($method:ident $visit:ident $t:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.value {
                Value::Int(i) => match <$t>::try_from(i) {
                    Ok(n) => visitor.$visit(n),
                    Err(_) => Err(Error::message(format!("{i} is out of range ({} to {})", <$t>::MIN, <$t>::MAX))),
                },
                other => Err(Error::expected("int", &other)),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for ValueDeserializer {
    type Error = Error;

    /// Each value as what it naturally is; base64 as its base64 text and a date as a string,
    /// as in JSON (a visitor that wants bytes asks for them: `deserialize_byte_buf`).
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Nil => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => visitor.visit_i64(i),
            Value::Double(d) => visitor.visit_f64(d),
            Value::String(s) | Value::DateTime(s) => visitor.visit_string(s),
            Value::Base64(b) => visitor.visit_string(base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Array(items) => visit_items(items, 0, self.rules, visitor),
            Value::Struct(members) => visit_members(Entries::Named(members.into_iter()), self.rules, visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Bool(b) => visitor.visit_bool(b),
            other => Err(Error::expected("boolean", &other)),
        }
    }

    deserialize_int!(
        deserialize_i8 visit_i8 i8,
        deserialize_i16 visit_i16 i16,
        deserialize_i32 visit_i32 i32,
        deserialize_u8 visit_u8 u8,
        deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32,
        deserialize_u64 visit_u64 u64,
        deserialize_u128 visit_u128 u128,
    );

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Int(i) => visitor.visit_i64(i),
            other => Err(Error::expected("int", &other)),
        }
    }
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Int(i) => visitor.visit_i128(i.into()),
            other => Err(Error::expected("int", &other)),
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Double(d) => visitor.visit_f64(d),
            Value::Int(i) if self.rules == Rules::Lenient => visitor.visit_f64(i as f64),
            other => Err(Error::expected("double", &other)),
        }
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let d = match self.value {
            Value::Double(d) => d,
            Value::Int(i) if self.rules == Rules::Lenient => i as f64,
            other => return Err(Error::expected("double", &other)),
        };
        visitor.visit_f32(to_f32(d).map_err(Error::message)?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => visitor.visit_char(c),
                    _ => Err(Error::message(format!("expected one character, got a string of {}", s.chars().count()))),
                }
            }
            other => Err(Error::expected("string", &other)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) => visitor.visit_string(s),
            Value::DateTime(s) if self.rules == Rules::Lenient => visitor.visit_string(s),
            other => Err(Error::expected("string", &other)),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_byte_buf(visitor)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Base64(b) => visitor.visit_byte_buf(b),
            Value::String(s) if self.rules == Rules::Lenient => {
                visitor.visit_byte_buf(decode_base64(&s).map_err(Error::message)?)
            }
            other => Err(Error::expected("base64", &other)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Nil => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Nil => visitor.visit_unit(),
            other => Err(Error::expected("nil", &other)),
        }
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Error> {
        if name == VALUE_NAME {
            // `Value` itself is asked for (see `ValueVisitor` in value.rs): what JSON cannot say
            // goes through the two visits it never makes.
            return match self.value {
                Value::Base64(b) => visitor.visit_byte_buf(b),
                Value::DateTime(s) => visitor.visit_enum(DateTimeEnum(s)),
                other => ValueDeserializer::new(other, self.rules).deserialize_any(visitor),
            };
        }
        if name == BYTES_NAME {
            // `Bytes`.
            return self.deserialize_byte_buf(visitor);
        }
        if name == DATETIME_NAME {
            // `DateTime`, which checks the text.
            return match self.value {
                Value::DateTime(s) => visitor.visit_newtype_struct(StringDeserializer::<Error>::new(s)),
                Value::String(s) if self.rules == Rules::Lenient => {
                    visitor.visit_newtype_struct(StringDeserializer::<Error>::new(s))
                }
                other => Err(Error::expected("dateTime.iso8601", &other)),
            };
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Array(items) => visit_items(items, 0, self.rules, visitor),
            Value::Base64(bytes) => {
                let mut seq = SeqDeserializer::<_, Error>::new(bytes.into_iter());
                let out = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            other => Err(Error::expected("array", &other)),
        }
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Array(items) if items.len() > len => Err(Error::too_many(len, items.len())),
            Value::Array(items) => visit_items(items, len, self.rules, visitor),
            Value::Base64(_) => self.deserialize_seq(visitor),
            other => Err(Error::expected("array", &other)),
        }
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Struct(members) => visit_members(Entries::Named(members.into_iter()), self.rules, visitor),
            other => Err(Error::expected("struct", &other)),
        }
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Value::Struct(members) => visit_members(Entries::Named(members.into_iter()), self.rules, visitor),
            // By position: element i is the field i.
            Value::Array(items) if items.len() > fields.len() => Err(Error::too_many(fields.len(), items.len())),
            Value::Array(items) => {
                visit_members(Entries::Positional(fields.iter(), items.into_iter()), self.rules, visitor)
            }
            other => Err(Error::expected("struct", &other)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let rules = self.rules;
        match self.value {
            Value::String(variant) => visitor.visit_enum(Enum { variant, value: None, rules }),
            Value::Struct(mut members) if members.len() == 1 => {
                let (variant, value) = members.pop().expect("one member");
                visitor.visit_enum(Enum { variant, value: Some(value), rules })
            }
            other => Err(Error::expected("string or struct of one member", &other)),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) => visitor.visit_string(s),
            other => Err(Error::expected("string", &other)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// The elements of an array.
struct Items {
    iter: std::vec::IntoIter<Value>,
    index: usize,
    pad_to: usize,
    rules: Rules,
}

impl<'de> SeqAccess<'de> for Items {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        let i = self.index;
        let out = match self.iter.next() {
            Some(v) => seed.deserialize(ValueDeserializer::new(v, self.rules)),
            None if i < self.pad_to => seed.deserialize(Absent),
            None => return Ok(None),
        };
        self.index += 1;
        out.map(Some).map_err(|e| e.within(Segment::Index(i)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len().max(self.pad_to.saturating_sub(self.index)))
    }
}

/// An element that is not there: an `Option` is `None`, anything else is missing.
struct Absent;

impl<'de> Deserializer<'de> for Absent {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::new(Kind::Missing))
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_none()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// The members of a struct: by name, or the elements of an array named by the fields.
enum Entries {
    Named(std::vec::IntoIter<(String, Value)>),
    Positional(std::slice::Iter<'static, &'static str>, std::vec::IntoIter<Value>),
}

impl Entries {
    fn next(&mut self) -> Option<(Cow<'static, str>, Value)> {
        match self {
            Entries::Named(members) => members.next().map(|(k, v)| (Cow::Owned(k), v)),
            Entries::Positional(fields, values) => {
                let v = values.next()?;
                fields.next().map(|k| (Cow::Borrowed(*k), v))
            }
        }
    }
    fn len(&self) -> usize {
        match self {
            Entries::Named(members) => members.len(),
            Entries::Positional(_, values) => values.len(),
        }
    }
}

struct Members {
    entries: Entries,
    /// The key of the value to be read next.
    key: Cow<'static, str>,
    value: Option<Value>,
    rules: Rules,
}

impl<'de> MapAccess<'de> for Members {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        match self.entries.next() {
            None => Ok(None),
            Some((k, v)) => {
                self.key = k;
                self.value = Some(v);
                seed.deserialize(KeyDeserializer(&self.key)).map(Some)
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self.value.take().ok_or_else(|| Error::message("a member's value was read before its name"))?;
        seed.deserialize(ValueDeserializer::new(value, self.rules))
            .map_err(|e| e.within(Segment::Key(self.key.clone().into_owned())))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A member's name: a string, or the integer or boolean it spells.
struct KeyDeserializer<'a>(&'a str);

macro_rules! deserialize_key_parsed {
    ($($method:ident $visit:ident $t:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0.parse::<$t>() {
                Ok(v) => visitor.$visit(v),
                Err(_) => Err(Error::message(format!("the member name '{}' is not {}", self.0, stringify!($t)))),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for KeyDeserializer<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str(self.0)
    }

    deserialize_key_parsed!(
        deserialize_bool visit_bool bool,
        deserialize_i8 visit_i8 i8,
        deserialize_i16 visit_i16 i16,
        deserialize_i32 visit_i32 i32,
        deserialize_i64 visit_i64 i64,
        deserialize_i128 visit_i128 i128,
        deserialize_u8 visit_u8 u8,
        deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32,
        deserialize_u64 visit_u64 u64,
        deserialize_u128 visit_u128 u128,
    );

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(serde::de::value::StrDeserializer::<Error>::new(self.0))
    }

    forward_to_deserialize_any! {
        f32 f64 char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

/// An enum: a variant's name, with its value unless it is a unit variant.
struct Enum {
    variant: String,
    value: Option<Value>,
    rules: Rules,
}

impl<'de> EnumAccess<'de> for Enum {
    type Error = Error;
    type Variant = Enum;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Enum), Error> {
        let tag = seed.deserialize(KeyDeserializer(&self.variant))?;
        Ok((tag, self))
    }
}

impl Enum {
    fn content(self) -> Result<(ValueDeserializer, String), Error> {
        match self.value {
            Some(v) => Ok((ValueDeserializer::new(v, self.rules), self.variant)),
            None => Err(Error::message(format!(
                "the variant '{}' needs a value (a struct of one member named '{}')",
                self.variant, self.variant
            ))),
        }
    }
}

impl<'de> VariantAccess<'de> for Enum {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            None | Some(Value::Nil) => Ok(()),
            Some(other) => {
                Err(Error::message(format!("the variant '{}' takes no value, got {}", self.variant, other.type_name())))
            }
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        let (d, variant) = self.content()?;
        seed.deserialize(d).map_err(|e| e.within(Segment::Key(variant)))
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        let (d, variant) = self.content()?;
        d.deserialize_tuple(len, visitor).map_err(|e| e.within(Segment::Key(variant)))
    }
    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        let (d, variant) = self.content()?;
        d.deserialize_struct("", fields, visitor).map_err(|e| e.within(Segment::Key(variant)))
    }
}

/// A date given to `Value`'s visitor: an enum of one newtype variant named [`DATETIME_NAME`].
struct DateTimeEnum(String);

impl<'de> EnumAccess<'de> for DateTimeEnum {
    type Error = Error;
    type Variant = DateTimeEnum;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, DateTimeEnum), Error> {
        let tag = seed.deserialize(BorrowedStrDeserializer::<Error>::new(DATETIME_NAME))?;
        Ok((tag, self))
    }
}

impl<'de> VariantAccess<'de> for DateTimeEnum {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Err(Error::message("a date is not a unit variant"))
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(StringDeserializer::<Error>::new(self.0))
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::message("a date is not a tuple variant"))
    }
    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], _visitor: V) -> Result<V::Value, Error> {
        Err(Error::message("a date is not a struct variant"))
    }
}

// ---- the parameters of a call ----

struct ParamsDeserializer<'a> {
    values: Vec<Value>,
    names: &'a [String],
    rules: Rules,
}

impl ParamsDeserializer<'_> {
    /// All the parameters as one value: a struct by name if there are names, else an array.
    fn whole(self) -> Result<ValueDeserializer, Error> {
        if self.names.is_empty() {
            return Ok(ValueDeserializer::new(Value::Array(self.values), self.rules));
        }
        if self.values.len() > self.names.len() {
            return Err(Error::too_many(self.names.len(), self.values.len()));
        }
        let members = self.names.iter().cloned().zip(self.values).collect();
        Ok(ValueDeserializer::new(Value::Struct(members), self.rules))
    }

    fn positional(self) -> ValueDeserializer {
        ValueDeserializer::new(Value::Array(self.values), self.rules)
    }

    /// The one parameter, read by `read`.
    fn single<T>(self, read: impl FnOnce(ValueDeserializer) -> Result<T, Error>) -> Result<T, Error> {
        let segment = || match self.names.first() {
            Some(name) => Segment::Key(name.clone()),
            None => Segment::Index(0),
        };
        let count = self.values.len();
        let mut values = self.values.into_iter();
        match values.next() {
            None => Err(Error::missing(segment())),
            Some(v) if count == 1 => read(ValueDeserializer::new(v, self.rules)).map_err(|e| e.within(segment())),
            Some(_) => Err(Error::too_many(1, count)),
        }
    }
}

macro_rules! params_single {
    ($($method:ident),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.single(|d| d.$method(visitor))
        }
    )*};
}

impl<'de> Deserializer<'de> for ParamsDeserializer<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.whole()?.deserialize_any(visitor)
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.whole()?.deserialize_map(visitor)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // The names are the struct's own fields, in order (a typed method's always are): pair
        // them by position, with no copy of the names.
        let same = self.names.len() <= fields.len() && self.names.iter().zip(fields).all(|(n, f)| n == f);
        if same && !self.names.is_empty() && self.values.len() <= self.names.len() {
            return self.positional().deserialize_struct(name, fields, visitor);
        }
        self.whole()?.deserialize_struct(name, fields, visitor)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.positional().deserialize_seq(visitor)
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.positional().deserialize_tuple(len, visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.positional().deserialize_tuple_struct(name, len, visitor)
    }

    /// `None` for no parameter or one nil, else `Some` of all of them.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.values.as_slice() {
            [] | [Value::Nil] => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.values.len() {
            0 => visitor.visit_unit(),
            n => Err(Error::too_many(0, n)),
        }
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Error> {
        if name == VALUE_NAME {
            self.whole()?.deserialize_newtype_struct(name, visitor)
        } else if name == DATETIME_NAME || name == BYTES_NAME {
            self.single(|d| d.deserialize_newtype_struct(name, visitor))
        } else {
            visitor.visit_newtype_struct(self)
        }
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.single(|d| d.deserialize_enum(name, variants, visitor))
    }

    params_single!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_identifier,
    );
}
