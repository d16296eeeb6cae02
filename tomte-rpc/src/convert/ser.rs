//! A serde serializer whose output is a [`Value`].

use std::fmt;

use base64::Engine as _;
use serde::ser::{self, Impossible, Serialize};

use crate::fault::Fault;
use crate::structure;
use crate::types::DATETIME_NAME;
use crate::value::{Value, BASE64_NAME};

/// Serializes `value` into a [`Value`].
///
/// | Rust (serde)                          | Value                                   |
/// |---------------------------------------|-----------------------------------------|
/// | `bool`                                | `Bool`                                  |
/// | integers                              | `Int`; a `u64` beyond `i64::MAX` a `Double` (as `From<u64>`) |
/// | `f32`, `f64`                          | `Double` (NaN and infinities kept)      |
/// | `char`, `str`, `String`               | `String`                                |
/// | bytes ([`crate::Bytes`], serde_bytes) | `Base64`                                |
/// | [`crate::DateTime`]                   | `DateTime`                              |
/// | `()`, `None`, a unit struct           | `Nil`                                   |
/// | `Some(v)`, a newtype struct           | what `v` is                             |
/// | sequences, tuples, tuple structs      | `Array`                                 |
/// | structs, maps                         | `Struct` (fields in order; map keys may be strings, integers, booleans, characters) |
/// | enum: unit variant                    | `String` (the variant's name)           |
/// | enum: other variants                  | `Struct` of one member, the variant's name |
///
/// A [`Value`] serializes into itself, exactly (base64 values, dates and NaNs included).
///
/// What has no representation is a fault −32603 (internal: the program's types are at fault,
/// not the caller) that says why: a 128-bit integer beyond 64 bits, a map key that is not a
/// string, an integer, a boolean or a character.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, Fault> {
    value.serialize(ValueSerializer).map_err(|e| Fault::internal(e.0))
}

/// Why a value could not be serialized.
#[derive(Debug)]
pub(crate) struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Error {}
impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error(msg.to_string())
    }
}

struct ValueSerializer;

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = Error;
    type SerializeSeq = Items;
    type SerializeTuple = Items;
    type SerializeTupleStruct = Items;
    type SerializeTupleVariant = VariantItems;
    type SerializeMap = Members;
    type SerializeStruct = Fields;
    type SerializeStructVariant = VariantFields;

    fn serialize_bool(self, v: bool) -> Result<Value, Error> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, Error> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, Error> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, Error> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, Error> {
        Ok(Value::Int(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, Error> {
        i64::try_from(v).map(Value::Int).map_err(|_| Error(format!("the integer {v} does not fit in 64 bits")))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, Error> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, Error> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, Error> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, Error> {
        u64::try_from(v).map(Value::from).map_err(|_| Error(format!("the integer {v} does not fit in 64 bits")))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, Error> {
        Ok(Value::Double(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, Error> {
        Ok(Value::Double(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, Error> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, Error> {
        Ok(Value::String(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, Error> {
        Ok(Value::Base64(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Value, Error> {
        Ok(Value::Nil)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, Error> {
        Ok(Value::Nil)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, Error> {
        Ok(Value::Nil)
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<Value, Error> {
        Ok(Value::String(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, value: &T) -> Result<Value, Error> {
        // The names `Value` and `DateTime` serialize under (see their `Serialize`).
        if name == DATETIME_NAME {
            match value.serialize(self)? {
                Value::String(s) => Ok(Value::DateTime(s)),
                other => Err(Error(format!("a date must serialize as a string, not as {}", other.type_name()))),
            }
        } else if name == BASE64_NAME {
            match value.serialize(self)? {
                Value::String(s) => base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .map(Value::Base64)
                    .map_err(|e| Error(format!("bad base64 in a base64 value: {e}"))),
                other => Err(Error(format!("a base64 value must serialize as a string, not as {}", other.type_name()))),
            }
        } else {
            value.serialize(self)
        }
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, Error> {
        Ok(Value::Struct(vec![(variant.to_owned(), value.serialize(self)?)]))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Items, Error> {
        Ok(Items(Vec::with_capacity(len.unwrap_or(0).min(4096))))
    }
    fn serialize_tuple(self, len: usize) -> Result<Items, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Items, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantItems, Error> {
        Ok(VariantItems { variant, items: Items(Vec::with_capacity(len.min(4096))) })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Members, Error> {
        Ok(Members { members: structure::Builder::new(), key: None })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Fields, Error> {
        Ok(Fields(Vec::with_capacity(len.min(4096))))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantFields, Error> {
        Ok(VariantFields { variant, fields: Fields(Vec::with_capacity(len.min(4096))) })
    }
}

struct Items(Vec<Value>);

impl ser::SerializeSeq for Items {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.0.push(value.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Array(self.0))
    }
}
impl ser::SerializeTuple for Items {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Value, Error> {
        ser::SerializeSeq::end(self)
    }
}
impl ser::SerializeTupleStruct for Items {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Value, Error> {
        ser::SerializeSeq::end(self)
    }
}

struct VariantItems {
    variant: &'static str,
    items: Items,
}

impl ser::SerializeTupleVariant for VariantItems {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(&mut self.items, value)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Struct(vec![(self.variant.to_owned(), Value::Array(self.items.0))]))
    }
}

/// A map's entries; a key met twice keeps its last value in its first place, as decoders do.
struct Members {
    members: structure::Builder,
    key: Option<String>,
}

impl ser::SerializeMap for Members {
    type Ok = Value;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(key.serialize(KeySerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self.key.take().ok_or_else(|| Error("a map value came without its key".to_owned()))?;
        self.members.insert(key, value.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Struct(self.members.finish()))
    }
}

struct Fields(Vec<(String, Value)>);

impl ser::SerializeStruct for Fields {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        self.0.push((key.to_owned(), value.serialize(ValueSerializer)?));
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Struct(self.0))
    }
}

struct VariantFields {
    variant: &'static str,
    fields: Fields,
}

impl ser::SerializeStructVariant for VariantFields {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        ser::SerializeStruct::serialize_field(&mut self.fields, key, value)
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Struct(vec![(self.variant.to_owned(), Value::Struct(self.fields.0))]))
    }
}

/// Serializes a map key into a member name.
struct KeySerializer;

fn bad_key(what: &str) -> Error {
    Error(format!("a map key must be a string, an integer, a boolean or a character, not {what}"))
}

impl ser::Serializer for KeySerializer {
    type Ok = String;
    type Error = Error;
    type SerializeSeq = Impossible<String, Error>;
    type SerializeTuple = Impossible<String, Error>;
    type SerializeTupleStruct = Impossible<String, Error>;
    type SerializeTupleVariant = Impossible<String, Error>;
    type SerializeMap = Impossible<String, Error>;
    type SerializeStruct = Impossible<String, Error>;
    type SerializeStructVariant = Impossible<String, Error>;

    fn serialize_bool(self, v: bool) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_i8(self, v: i8) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_i16(self, v: i16) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_i32(self, v: i32) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_i64(self, v: i64) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_i128(self, v: i128) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_u8(self, v: u8) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_u16(self, v: u16) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_u32(self, v: u32) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_u64(self, v: u64) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_u128(self, v: u128) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_f32(self, _v: f32) -> Result<String, Error> {
        Err(bad_key("a double"))
    }
    fn serialize_f64(self, _v: f64) -> Result<String, Error> {
        Err(bad_key("a double"))
    }
    fn serialize_char(self, v: char) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_str(self, v: &str) -> Result<String, Error> {
        Ok(v.to_owned())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<String, Error> {
        Err(bad_key("bytes"))
    }
    fn serialize_none(self) -> Result<String, Error> {
        Err(bad_key("none"))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<String, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<String, Error> {
        Err(bad_key("a unit"))
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<String, Error> {
        Err(bad_key(&format!("the unit struct {name}")))
    }
    /// An enum of unit variants names members by variant (as serde_json does).
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<String, Error> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> Result<String, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _value: &T,
    ) -> Result<String, Error> {
        Err(bad_key(&format!("the variant {name}::{variant}")))
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(bad_key("a sequence"))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(bad_key("a tuple"))
    }
    fn serialize_tuple_struct(self, name: &'static str, _len: usize) -> Result<Self::SerializeTupleStruct, Error> {
        Err(bad_key(&format!("the tuple struct {name}")))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(bad_key(&format!("the variant {name}::{variant}")))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(bad_key("a map"))
    }
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Self::SerializeStruct, Error> {
        Err(bad_key(&format!("the struct {name}")))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(bad_key(&format!("the variant {name}::{variant}")))
    }
}
