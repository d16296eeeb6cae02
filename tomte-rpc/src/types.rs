//! Two XML-RPC types that Rust lacks: [`Bytes`] (`base64`) and [`DateTime`] (`dateTime.iso8601`).
//!
//! Both go through serde so that typed parameters and results can use them: with
//! [`crate::to_value`] and [`crate::from_value`] they are [`Value::Base64`] and
//! [`Value::DateTime`], which the JSON-RPC codec writes as strings (the base64 text, the date as
//! written).
//!
//! Straight through serde_json, a [`DateTime`] is a string both ways; [`Bytes`] is written as
//! serde_json writes any bytes (an array of numbers) and read from a base64 string or such an
//! array.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

use crate::value::Value;

/// The name of the newtype struct [`DateTime`] serializes as, so that serializers and
/// deserializers of [`Value`] can tell a date from a string. serde_json ignores it (a newtype
/// struct is its inner value there).
pub const DATETIME_NAME: &str = "$tomte::DateTime";

/// The name of the newtype struct [`Bytes`] asks deserializers for. A deserializer of
/// [`Value`] knows it and gives the bytes of a base64 value (or, lenient, of a base64
/// string); serde_json does not, and gives what it holds (a string, an array of numbers).
pub const BYTES_NAME: &str = "$tomte::Bytes";

/// Base64 as clients write it: the standard alphabet, padding optional.
pub(crate) const BASE64_READ: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Raw bytes: XML-RPC `base64`. serde sees bytes (`serialize_bytes`); read back, it takes bytes,
/// a base64 string (the standard alphabet, padding optional) or a sequence of numbers 0 to 255.
///
/// It is read through a newtype struct named [`BYTES_NAME`], whose content is read with
/// `deserialize_any` in human-readable formats and `deserialize_byte_buf` in the others:
/// serde_json answers `deserialize_byte_buf` on a string with the bytes of the text itself,
/// not with what the base64 text stands for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// The bytes, moved out.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}
impl DerefMut for Bytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}
impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Bytes {
        Bytes(v)
    }
}
impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Bytes {
        Bytes(v.to_vec())
    }
}
impl From<Bytes> for Vec<u8> {
    fn from(v: Bytes) -> Vec<u8> {
        v.0
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("bytes or a base64 string")
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
        Ok(Bytes(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
        decode_base64(v).map(Bytes).map_err(E::custom)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            bytes.push(b);
        }
        Ok(Bytes(bytes))
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Bytes, D::Error> {
        if d.is_human_readable() {
            d.deserialize_any(BytesVisitor)
        } else {
            d.deserialize_byte_buf(BytesVisitor)
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        d.deserialize_newtype_struct(BYTES_NAME, BytesVisitor)
    }
}

/// Decodes base64 text (standard alphabet, padding optional), or says why not.
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    BASE64_READ.decode(text.as_bytes()).map_err(|e| format!("not valid base64: {e}"))
}

/// An XML-RPC `dateTime.iso8601`: validated text, kept as it was written.
///
/// [`DateTime::parse`] takes the XML-RPC form `19980717T14:08:55`, its all-basic variant
/// `19980717T140855` and ISO 8601's extended form `1998-07-17T14:08:55`, each with an optional
/// fraction of a second (`.250`) and an optional zone (`Z`, `+01:00`, `-0500`). It checks that
/// the date exists (29 February only in leap years) and the time too (a leap second `:60` is
/// allowed). XML-RPC dates carry no zone as a rule; what one means is up to the two sides.
///
/// serde sees a newtype struct named [`DATETIME_NAME`] around the text: in [`Value`] terms a
/// [`Value::DateTime`], in JSON a string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DateTime {
    text: String,
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

impl DateTime {
    /// Validates `text` as a date and time (see the type's documentation for the forms).
    pub fn parse(text: &str) -> Result<DateTime, String> {
        let fields = Fields::parse(text.as_bytes())?;
        Ok(fields.with_text(text.to_owned()))
    }

    /// Builds the XML-RPC form (`YYYYMMDDTHH:MM:SS`) of a date and time, checking the ranges.
    pub fn new(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Result<DateTime, String> {
        if year > 9999 {
            return Err(format!("year {year} has more than 4 digits"));
        }
        let fields = Fields { year, month, day, hour, minute, second };
        fields.check()?;
        let text = format!("{year:04}{month:02}{day:02}T{hour:02}:{minute:02}:{second:02}");
        Ok(fields.with_text(text))
    }

    /// The text, as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
    /// The text, as it was written, moved out.
    pub fn into_string(self) -> String {
        self.text
    }

    /// 0 to 9999.
    pub fn year(&self) -> u16 {
        self.year
    }
    /// 1 to 12.
    pub fn month(&self) -> u8 {
        self.month
    }
    /// 1 to 31.
    pub fn day(&self) -> u8 {
        self.day
    }
    /// 0 to 23.
    pub fn hour(&self) -> u8 {
        self.hour
    }
    /// 0 to 59.
    pub fn minute(&self) -> u8 {
        self.minute
    }
    /// 0 to 60 (60 for a leap second).
    pub fn second(&self) -> u8 {
        self.second
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
impl FromStr for DateTime {
    type Err = String;
    fn from_str(s: &str) -> Result<DateTime, String> {
        DateTime::parse(s)
    }
}
impl TryFrom<&str> for DateTime {
    type Error = String;
    fn try_from(s: &str) -> Result<DateTime, String> {
        DateTime::parse(s)
    }
}
impl TryFrom<String> for DateTime {
    type Error = String;
    fn try_from(s: String) -> Result<DateTime, String> {
        let fields = Fields::parse(s.as_bytes())?;
        Ok(fields.with_text(s))
    }
}
impl AsRef<str> for DateTime {
    fn as_ref(&self) -> &str {
        &self.text
    }
}
impl From<DateTime> for String {
    fn from(d: DateTime) -> String {
        d.text
    }
}

impl Serialize for DateTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(DATETIME_NAME, self.text.as_str())
    }
}

struct DateTimeVisitor;

impl<'de> Visitor<'de> for DateTimeVisitor {
    type Value = DateTime;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an ISO 8601 date and time")
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<DateTime, D::Error> {
        let text = String::deserialize(d)?;
        self.visit_string(text)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<DateTime, E> {
        DateTime::parse(v).map_err(|e| E::custom(format!("not an ISO 8601 date: {e}")))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<DateTime, E> {
        DateTime::try_from(v).map_err(|e| E::custom(format!("not an ISO 8601 date: {e}")))
    }
}

impl<'de> Deserialize<'de> for DateTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DateTime, D::Error> {
        d.deserialize_newtype_struct(DATETIME_NAME, DateTimeVisitor)
    }
}

impl From<Bytes> for Value {
    fn from(v: Bytes) -> Value {
        Value::Base64(v.0)
    }
}
impl From<DateTime> for Value {
    fn from(v: DateTime) -> Value {
        Value::DateTime(v.text)
    }
}

/// The parts of a date and time that are checked.
struct Fields {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

impl Fields {
    fn with_text(self, text: String) -> DateTime {
        let Fields { year, month, day, hour, minute, second } = self;
        DateTime { text, year, month, day, hour, minute, second }
    }

    fn parse(text: &[u8]) -> Result<Fields, String> {
        let mut c = Cursor { text, at: 0 };
        let year = c.digits(4, "year")?;
        let extended_date = c.eat(b'-');
        let month = c.digits(2, "month")? as u8;
        if extended_date {
            c.expect(b'-', "'-' after the month")?;
        }
        let day = c.digits(2, "day")? as u8;
        c.expect(b'T', "'T' between the date and the time")?;
        let hour = c.digits(2, "hour")? as u8;
        let extended_time = c.eat(b':');
        let minute = c.digits(2, "minute")? as u8;
        if extended_time {
            c.expect(b':', "':' after the minute")?;
        }
        let second = c.digits(2, "second")? as u8;
        if c.eat(b'.') || c.eat(b',') {
            let start = c.at;
            while c.peek().is_some_and(|b| b.is_ascii_digit()) {
                c.at += 1;
            }
            if c.at == start {
                return Err(format!("expected the digits of a fraction at byte {}", c.at));
            }
        }
        match c.peek() {
            None => {}
            Some(b'Z') => c.at += 1,
            Some(b'+' | b'-') => {
                c.at += 1;
                let hours = c.digits(2, "zone hour")?;
                c.eat(b':');
                let minutes = c.digits(2, "zone minute")?;
                if hours > 23 || minutes > 59 {
                    return Err(format!("zone offset {hours:02}:{minutes:02} is out of range"));
                }
            }
            Some(_) => return Err(format!("unexpected text at byte {}", c.at)),
        }
        if c.at != text.len() {
            return Err(format!("unexpected text at byte {}", c.at));
        }
        let fields = Fields { year, month, day, hour, minute, second };
        fields.check()?;
        Ok(fields)
    }

    fn check(&self) -> Result<(), String> {
        let Fields { year, month, day, hour, minute, second } = *self;
        if !(1..=12).contains(&month) {
            return Err(format!("month {month} is not 1 to 12"));
        }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let days = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if day < 1 || day > days {
            return Err(format!("day {day} is not 1 to {days} in {year:04}-{month:02}"));
        }
        if hour > 23 {
            return Err(format!("hour {hour} is not 0 to 23"));
        }
        if minute > 59 {
            return Err(format!("minute {minute} is not 0 to 59"));
        }
        if second > 60 {
            return Err(format!("second {second} is not 0 to 60"));
        }
        Ok(())
    }
}

struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        self.at += usize::from(found);
        found
    }
    fn expect(&mut self, b: u8, what: &str) -> Result<(), String> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("expected {what} at byte {}", self.at))
        }
    }
    /// `n` (at most 4) ASCII digits, as a number.
    fn digits(&mut self, n: usize, what: &str) -> Result<u16, String> {
        let mut v = 0u16;
        for _ in 0..n {
            match self.peek() {
                Some(b @ b'0'..=b'9') => v = v * 10 + u16::from(b - b'0'),
                _ => return Err(format!("expected {n} digits of the {what} at byte {}", self.at)),
            }
            self.at += 1;
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_every_accepted_form() {
        for text in [
            "19980717T14:08:55",
            "19980717T140855",
            "1998-07-17T14:08:55",
            "1998-07-17T14:08:55Z",
            "1998-07-17T14:08:55.250",
            "1998-07-17T14:08:55,5Z",
            "1998-07-17T14:08:55+01:00",
            "1998-07-17T14:08:55.123456789-05:30",
            "19980717T14:08:55-0500",
        ] {
            let d = DateTime::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(d.as_str(), text);
            assert_eq!(d.to_string(), text);
            assert_eq!(
                (d.year(), d.month(), d.day(), d.hour(), d.minute(), d.second()),
                (1998, 7, 17, 14, 8, 55),
                "{text}"
            );
        }
        assert!(DateTime::parse("20000229T00:00:00").is_ok());
        assert!(DateTime::parse("20240229T23:59:60").is_ok());
        assert_eq!(DateTime::new(2026, 1, 2, 3, 4, 5).unwrap().as_str(), "20260102T03:04:05");
    }

    #[test]
    fn dates_that_do_not_exist_or_are_malformed() {
        for (text, why) in [
            ("19981317T14:08:55", "month 13 is not 1 to 12"),
            ("19980017T14:08:55", "month 0"),
            ("19000229T00:00:00", "day 29 is not 1 to 28 in 1900-02"),
            ("20230229T00:00:00", "day 29 is not 1 to 28"),
            ("19980431T00:00:00", "day 31 is not 1 to 30"),
            ("19980400T00:00:00", "day 0"),
            ("19980717T24:00:00", "hour 24"),
            ("19980717T14:60:00", "minute 60"),
            ("19980717T14:08:61", "second 61"),
            ("19980717 14:08:55", "expected 'T'"),
            ("1998-0717T14:08:55", "'-' after the month"),
            ("19980717T14:0855", "':' after the minute"),
            ("19980717T14:08:5", "digits of the second"),
            ("19980717T14:08:55.", "fraction"),
            ("19980717T14:08:55+25:00", "zone offset 25:00"),
            ("19980717T14:08:55Zjunk", "unexpected text at byte 18"),
            ("19980717T14:08:55 ", "unexpected text"),
            ("", "digits of the year at byte 0"),
            ("١٩٩٨0717T14:08:55", "digits of the year"),
        ] {
            let e = DateTime::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
        assert!(DateTime::new(2023, 2, 29, 0, 0, 0).is_err());
        assert!(DateTime::new(10000, 1, 1, 0, 0, 0).is_err());
    }

    #[test]
    fn json_sees_strings() {
        let d = DateTime::parse("19980717T14:08:55").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), r#""19980717T14:08:55""#);
        assert_eq!(serde_json::from_str::<DateTime>(r#""19980717T14:08:55""#).unwrap(), d);
        let e = serde_json::from_str::<DateTime>(r#""1998""#).unwrap_err();
        assert!(e.to_string().contains("not an ISO 8601 date"), "{e}");

        assert_eq!(serde_json::to_string(&Bytes(b"hi".to_vec())).unwrap(), "[104,105]");
        assert_eq!(serde_json::from_str::<Bytes>(r#""aGk=""#).unwrap(), Bytes(b"hi".to_vec()));
        assert_eq!(serde_json::from_str::<Bytes>(r#""aGk""#).unwrap(), Bytes(b"hi".to_vec()));
        assert_eq!(serde_json::from_str::<Bytes>("[104,105]").unwrap(), Bytes(b"hi".to_vec()));
        let e = serde_json::from_str::<Bytes>(r#""a*k=""#).unwrap_err();
        assert!(e.to_string().contains("not valid base64"), "{e}");
        assert!(serde_json::from_str::<Bytes>("[256]").is_err());

        // Through serde_json's value model and serde's buffering (untagged enums) too.
        assert_eq!(serde_json::from_value::<Bytes>(serde_json::json!("aGk=")).unwrap(), Bytes(b"hi".to_vec()));
        assert_eq!(serde_json::from_value::<DateTime>(serde_json::json!("19980717T14:08:55")).unwrap(), d);
        #[derive(Debug, PartialEq, serde::Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(i64),
            Data { data: Bytes, when: DateTime },
        }
        assert_eq!(
            serde_json::from_str::<Either>(r#"{"data":"aGk=","when":"19980717T14:08:55"}"#).unwrap(),
            Either::Data { data: Bytes(b"hi".to_vec()), when: d }
        );
    }
}
