//! The parameters a type takes, traced from its `Deserialize`: signatures from Rust types.
//!
//! [`params_of`] runs `T::deserialize` against a deserializer that records what `T` asks for
//! (a struct with these fields, an `i64`, an `Option<String>`…) and answers each question with
//! the simplest value of the kind (0, `""`, an empty array, `None`, the date
//! `19700101T00:00:00`), so that the derived code goes on to the next field. Nothing is
//! deserialized from anywhere; the value built, if any, is dropped.
//!
//! The trace is as good as the type's `Deserialize` lets it be: a field whose type refuses the
//! simple value (a newtype that checks its number is positive, say) is still known by what it
//! asked for, and the fields after it are traced on a second run that leaves it out. What
//! cannot be known is [`Type::Any`]: a `Value`, an enum (a string or a struct), whatever a
//! custom `Deserialize` reads with `deserialize_any`. Field aliases (`#[serde(alias)]`) are
//! left out, unless an alias sorts before its field's name (serde lists both, sorted).

use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

use crate::method::Type;
use crate::types::{BYTES_NAME, DATETIME_NAME};
use crate::value::VALUE_NAME;

/// What a type takes as the parameters of a call (as [`crate::from_params`] reads them).
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// A struct: parameters with names, in the order of its fields.
    Named(Vec<Field>),
    /// A tuple (or one value: `i64`, `String`): parameters by position.
    Positional(Vec<FieldType>),
    /// `()`: no parameters.
    Nothing,
    /// Anything, or what the trace cannot tell (`Value`, a map, a `Vec`, a custom
    /// `Deserialize`).
    Any,
}

/// A parameter with a name.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// The name of the parameter: the field's, as serde names it (renames applied).
    pub name: &'static str,
    /// Its type (an `Option`'s is the type inside).
    pub ty: Type,
    /// An `Option`: the parameter may be left out or nil.
    pub optional: bool,
}

/// A parameter without a name.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FieldType {
    /// Its type (an `Option`'s is the type inside).
    pub ty: Type,
    /// An `Option`: the parameter may be left out or nil.
    pub optional: bool,
}

/// The parameters `T` takes: see the [module documentation](self).
///
/// ```
/// use tomte_rpc::schema::{params_of, Field, Shape};
/// use tomte_rpc::Type;
///
/// #[derive(serde::Deserialize)]
/// struct Args {
///     path: String,
///     depth: Option<u32>,
/// }
/// assert_eq!(
///     params_of::<Args>(),
///     Shape::Named(vec![
///         Field { name: "path", ty: Type::String, optional: false },
///         Field { name: "depth", ty: Type::Int, optional: true },
///     ])
/// );
/// ```
pub fn params_of<T: DeserializeOwned>() -> Shape {
    let mut trace = Trace::default();
    // Each run that stops on a field leaves that field out of the next: at most one run more
    // than there are fields.
    loop {
        let result = T::deserialize(Top { trace: &mut trace, optional: false });
        let Err(e) = result else { break };
        let Outcome::Named = trace.outcome else { break };
        let Some(i) = trace.current.take() else { break };
        trace.skip[i] = true;
        // A name handed out whose value was never asked for, refused as a duplicate: an alias.
        trace.alias[i] = e.duplicate && !trace.value_asked;
    }
    trace.shape()
}

#[derive(Default)]
enum Outcome {
    #[default]
    Any,
    Nothing,
    Named,
    Positional,
    Single(FieldType),
}

#[derive(Default)]
struct Trace {
    outcome: Outcome,
    /// The struct's field names (for `Named`).
    fields: &'static [&'static str],
    /// What each field or element asked for, once it did.
    records: Vec<Option<FieldType>>,
    /// Fields left out of the runs to come.
    skip: Vec<bool>,
    /// Fields that turned out to be aliases of others.
    alias: Vec<bool>,
    /// The field being read: its name handed out, its value not read yet.
    current: Option<usize>,
    /// Whether the value of `current` was asked for.
    value_asked: bool,
}

impl Trace {
    fn shape(self) -> Shape {
        let known = |r: Option<FieldType>| r.unwrap_or(FieldType { ty: Type::Any, optional: false });
        match self.outcome {
            Outcome::Any => Shape::Any,
            Outcome::Nothing => Shape::Nothing,
            Outcome::Single(t) => Shape::Positional(vec![t]),
            Outcome::Positional => Shape::Positional(self.records.into_iter().map(known).collect()),
            Outcome::Named => Shape::Named(
                self.fields
                    .iter()
                    .zip(self.records)
                    .zip(self.alias)
                    .filter(|(_, alias)| !alias)
                    .map(|((name, r), _)| {
                        let FieldType { ty, optional } = known(r);
                        Field { name, ty, optional }
                    })
                    .collect(),
            ),
        }
    }
}

/// Why a trace run stopped (the type refused a simple value); never shown to anyone.
#[derive(Debug)]
struct Error {
    message: String,
    /// The type refused a field as given twice: the field was an alias of one given before.
    duplicate: bool,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for Error {}
impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error { message: msg.to_string(), duplicate: false }
    }
    fn duplicate_field(field: &'static str) -> Error {
        Error { message: format!("duplicate field `{field}`"), duplicate: true }
    }
}

/// How deep the simple values of nested structs, tuples and enums go (a recursive type ends
/// with an `Option` or a `Vec`, which are simple at once; this is for those that do not).
const MAX_DEPTH: usize = 16;

/// Methods that record a type, then answer with the simplest value of the kind.
macro_rules! recorded {
    ($($method:ident($($arg:ident: $argty:ty),*) => $ty:expr;)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $argty,)* visitor: V) -> Result<V::Value, Error> {
            self.record($ty);
            Simple { depth: 0 }.$method($($arg,)* visitor)
        }
    )*};
}

/// The methods of `recorded!` common to the top and to fields: the scalars.
macro_rules! recorded_scalars {
    () => {
        recorded! {
            deserialize_bool() => Type::Boolean;
            deserialize_i8() => Type::Int;
            deserialize_i16() => Type::Int;
            deserialize_i32() => Type::Int;
            deserialize_i64() => Type::Int;
            deserialize_i128() => Type::Int;
            deserialize_u8() => Type::Int;
            deserialize_u16() => Type::Int;
            deserialize_u32() => Type::Int;
            deserialize_u64() => Type::Int;
            deserialize_u128() => Type::Int;
            deserialize_f32() => Type::Double;
            deserialize_f64() => Type::Double;
            deserialize_char() => Type::String;
            deserialize_str() => Type::String;
            deserialize_string() => Type::String;
            deserialize_identifier() => Type::String;
            deserialize_bytes() => Type::Base64;
            deserialize_byte_buf() => Type::Base64;
            deserialize_enum(name: &'static str, variants: &'static [&'static str]) => Type::Any;
        }
    };
}

/// The type itself: its shape as parameters.
struct Top<'a> {
    trace: &'a mut Trace,
    optional: bool,
}

impl Top<'_> {
    fn record(self, ty: Type) {
        self.trace.outcome = Outcome::Single(FieldType { ty, optional: self.optional });
    }
}

impl<'de> Deserializer<'de> for Top<'_> {
    type Error = Error;

    recorded_scalars!();

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.trace.outcome = Outcome::Any;
        Simple { depth: 0 }.deserialize_any(visitor)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_any(visitor)
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.trace.outcome = Outcome::Any;
        Simple { depth: 0 }.deserialize_map(visitor)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.trace.outcome = Outcome::Any;
        Simple { depth: 0 }.deserialize_seq(visitor)
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.trace.outcome = Outcome::Nothing;
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(Top { trace: self.trace, optional: true })
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Error> {
        if name == VALUE_NAME {
            self.deserialize_any(visitor)
        } else if name == DATETIME_NAME {
            self.record(Type::DateTime);
            Simple { depth: 0 }.deserialize_newtype_struct(name, visitor)
        } else if name == BYTES_NAME {
            self.record(Type::Base64);
            Simple { depth: 0 }.deserialize_newtype_struct(name, visitor)
        } else {
            visitor.visit_newtype_struct(self)
        }
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.trace.outcome = Outcome::Positional;
        self.trace.records = vec![None; len];
        visitor.visit_seq(Elements { trace: self.trace, next: 0 })
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let trace = self.trace;
        trace.outcome = Outcome::Named;
        if trace.fields != fields {
            trace.fields = fields;
            trace.records = vec![None; fields.len()];
            trace.skip = vec![false; fields.len()];
            trace.alias = vec![false; fields.len()];
        }
        trace.current = None;
        visitor.visit_map(Fields { trace, next: 0 })
    }
}

/// The elements of a tuple, each recorded.
struct Elements<'a> {
    trace: &'a mut Trace,
    next: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        let Some(slot) = self.trace.records.get_mut(self.next) else { return Ok(None) };
        self.next += 1;
        seed.deserialize(Recorder { slot, optional: false }).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.trace.records.len() - self.next)
    }
}

/// The fields of a struct, each recorded; those skipped are left out.
struct Fields<'a> {
    trace: &'a mut Trace,
    next: usize,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let trace = &mut *self.trace;
        let Some(i) = (self.next..trace.fields.len()).find(|&i| !trace.skip[i]) else { return Ok(None) };
        self.next = i + 1;
        trace.current = Some(i);
        trace.value_asked = false;
        seed.deserialize(BorrowedStrDeserializer::<Error>::new(trace.fields[i])).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let trace = &mut *self.trace;
        let Some(i) = trace.current else { return Err(de::Error::custom("a value asked for before its name")) };
        trace.value_asked = true;
        let out = seed.deserialize(Recorder { slot: &mut trace.records[i], optional: false })?;
        trace.current = None;
        Ok(out)
    }
}

/// A field or an element: records what it is asked for.
struct Recorder<'a> {
    slot: &'a mut Option<FieldType>,
    optional: bool,
}

impl Recorder<'_> {
    fn record(self, ty: Type) {
        *self.slot = Some(FieldType { ty, optional: self.optional });
    }
}

impl<'de> Deserializer<'de> for Recorder<'_> {
    type Error = Error;

    recorded_scalars!();
    recorded! {
        deserialize_any() => Type::Any;
        deserialize_ignored_any() => Type::Any;
        deserialize_unit() => Type::Nil;
        deserialize_unit_struct(name: &'static str) => Type::Nil;
        deserialize_seq() => Type::Array;
        deserialize_tuple(len: usize) => Type::Array;
        deserialize_tuple_struct(name: &'static str, len: usize) => Type::Array;
        deserialize_map() => Type::Struct;
        deserialize_struct(name: &'static str, fields: &'static [&'static str]) => Type::Struct;
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(Recorder { slot: self.slot, optional: true })
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Error> {
        if name == VALUE_NAME {
            self.deserialize_any(visitor)
        } else if name == DATETIME_NAME {
            self.record(Type::DateTime);
            Simple { depth: 0 }.deserialize_newtype_struct(name, visitor)
        } else if name == BYTES_NAME {
            self.record(Type::Base64);
            Simple { depth: 0 }.deserialize_newtype_struct(name, visitor)
        } else {
            visitor.visit_newtype_struct(self)
        }
    }
}

/// Answers every question with the simplest value of the kind.
struct Simple {
    depth: usize,
}

impl Simple {
    fn deeper(&self) -> Result<Simple, Error> {
        if self.depth >= MAX_DEPTH {
            Err(de::Error::custom("nested too deep for a simple value"))
        } else {
            Ok(Simple { depth: self.depth + 1 })
        }
    }
}

impl<'de> Deserializer<'de> for Simple {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_bool(false)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i8(0)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i16(0)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i32(0)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i64(0)
    }
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i128(0)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u8(0)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u16(0)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u32(0)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(0)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u128(0)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f32(0.0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(0.0)
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_char('a')
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str("")
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_string(String::new())
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str("")
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_bytes(&[])
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_byte_buf(Vec::new())
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_none()
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Error> {
        if name == DATETIME_NAME {
            visitor.visit_newtype_struct(BorrowedStrDeserializer::<Error>::new("19700101T00:00:00"))
        } else if name == BYTES_NAME {
            visitor.visit_byte_buf(Vec::new())
        } else if name == VALUE_NAME {
            visitor.visit_unit()
        } else {
            visitor.visit_newtype_struct(self.deeper()?)
        }
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(SimpleElements { left: 0, depth: self.depth })
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(SimpleElements { left: len, depth: self.deeper()?.depth })
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
        visitor.visit_map(SimpleFields { fields: &[], next: 0, depth: self.depth })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_map(SimpleFields { fields, next: 0, depth: self.deeper()?.depth })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let Some(variant) = variants.first() else { return Err(de::Error::custom("an enum without variants")) };
        visitor.visit_enum(SimpleVariant { variant, depth: self.deeper()?.depth })
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct SimpleElements {
    left: usize,
    depth: usize,
}

impl<'de> SeqAccess<'de> for SimpleElements {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(Simple { depth: self.depth }).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

struct SimpleFields {
    fields: &'static [&'static str],
    next: usize,
    depth: usize,
}

impl<'de> MapAccess<'de> for SimpleFields {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some(name) = self.fields.get(self.next) else { return Ok(None) };
        self.next += 1;
        seed.deserialize(BorrowedStrDeserializer::<Error>::new(name)).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(Simple { depth: self.depth })
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len() - self.next)
    }
}

/// An enum's first variant, whatever its kind.
struct SimpleVariant {
    variant: &'static str,
    depth: usize,
}

impl<'de> EnumAccess<'de> for SimpleVariant {
    type Error = Error;
    type Variant = SimpleVariant;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, SimpleVariant), Error> {
        let tag = seed.deserialize(BorrowedStrDeserializer::<Error>::new(self.variant))?;
        Ok((tag, self))
    }
}

impl<'de> VariantAccess<'de> for SimpleVariant {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(Simple { depth: self.depth })
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        Simple { depth: self.depth }.deserialize_tuple(len, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        Simple { depth: self.depth }.deserialize_struct("", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::Deserialize;

    use super::*;
    use crate::types::{Bytes, DateTime};
    use crate::value::Value;

    fn field(name: &'static str, ty: Type, optional: bool) -> Field {
        Field { name, ty, optional }
    }
    fn ty(ty: Type) -> FieldType {
        FieldType { ty, optional: false }
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Every {
        a: i64,
        b: Option<String>,
        c: f64,
        d: Bytes,
        e: DateTime,
        f: Vec<i64>,
        g: Value,
        h: HashMap<String, i64>,
        i: bool,
    }

    #[test]
    fn a_struct_is_named_parameters() {
        assert_eq!(
            params_of::<Every>(),
            Shape::Named(vec![
                field("a", Type::Int, false),
                field("b", Type::String, true),
                field("c", Type::Double, false),
                field("d", Type::Base64, false),
                field("e", Type::DateTime, false),
                field("f", Type::Array, false),
                field("g", Type::Any, false),
                field("h", Type::Struct, false),
                field("i", Type::Boolean, false),
            ])
        );
    }

    #[test]
    fn tuples_units_values_and_scalars() {
        assert_eq!(params_of::<(i64, String)>(), Shape::Positional(vec![ty(Type::Int), ty(Type::String)]));
        assert_eq!(params_of::<()>(), Shape::Nothing);
        assert_eq!(params_of::<Value>(), Shape::Any);
        assert_eq!(params_of::<serde_json::Value>(), Shape::Any);
        assert_eq!(params_of::<i64>(), Shape::Positional(vec![ty(Type::Int)]));
        assert_eq!(params_of::<DateTime>(), Shape::Positional(vec![ty(Type::DateTime)]));
        assert_eq!(params_of::<Option<u8>>(), Shape::Positional(vec![FieldType { ty: Type::Int, optional: true }]));
        assert_eq!(params_of::<Vec<i64>>(), Shape::Any);
        assert_eq!(params_of::<HashMap<String, Value>>(), Shape::Any);

        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct Unit;
        assert_eq!(params_of::<Unit>(), Shape::Nothing);
        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct Pair(u16, Option<Bytes>);
        assert_eq!(
            params_of::<Pair>(),
            Shape::Positional(vec![ty(Type::Int), FieldType { ty: Type::Base64, optional: true }])
        );
        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct Wrapper(Every);
        assert!(matches!(params_of::<Wrapper>(), Shape::Named(fields) if fields.len() == 9));
    }

    #[test]
    fn nested_structs_enums_and_types_that_refuse_simple_values() {
        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct Inner {
            x: u32,
            when: DateTime,
            mode: Mode,
        }
        #[allow(dead_code)]
        #[derive(Deserialize)]
        enum Mode {
            Fast,
            Slow(u32),
        }
        #[allow(dead_code)]
        #[derive(Deserialize)]
        #[serde(try_from = "i64")]
        struct Positive(i64);
        impl TryFrom<i64> for Positive {
            type Error = &'static str;
            fn try_from(v: i64) -> Result<Positive, &'static str> {
                if v > 0 {
                    Ok(Positive(v))
                } else {
                    Err("not positive")
                }
            }
        }
        #[allow(dead_code)]
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Outer {
            inner: Inner,
            count: Positive,
            maybe: Option<Positive>,
            mode: Mode,
            #[serde(rename = "tags")]
            labels: Vec<String>,
            #[serde(alias = "zz")]
            last: (i64, f64),
        }
        assert_eq!(
            params_of::<Outer>(),
            Shape::Named(vec![
                field("inner", Type::Struct, false),
                field("count", Type::Int, false),
                field("maybe", Type::Int, true),
                field("mode", Type::Any, false),
                field("tags", Type::Array, false),
                field("last", Type::Array, false),
            ])
        );
        assert_eq!(params_of::<(Positive, String)>(), Shape::Positional(vec![ty(Type::Int), ty(Type::Any)]));
        assert_eq!(params_of::<Mode>(), Shape::Positional(vec![ty(Type::Any)]));
    }

    #[test]
    fn a_recursive_type_ends() {
        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct Node {
            name: String,
            next: Box<Node>,
        }
        assert_eq!(
            params_of::<Node>(),
            Shape::Named(vec![field("name", Type::String, false), field("next", Type::Struct, false)])
        );
    }
}
