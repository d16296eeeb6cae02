//! The XML-RPC validator1 suite (<http://xmlrpc.com/validator1Docs.html>), written with typed
//! parameters: each method's parameters are a struct whose fields name them, checked as the
//! protocol defines (over XML-RPC, `manyTypesTest`'s date must be a `dateTime.iso8601` and its
//! double a `<double>`).
//!
//! ```text
//! cargo run --example validator -- run --socket tcp://127.0.0.1:10045
//! python3 -c 'import xmlrpc.client as x; print(x.ServerProxy("http://127.0.0.1:10045/").validator1.simpleStructReturnTest(7))'
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tomte::{Bytes, Daemon, DateTime, Fault, Method, Type, Value};

/// The three members the validator's structs carry.
#[derive(Deserialize)]
struct Stooges {
    moe: i64,
    larry: i64,
    curly: i64,
}

impl Stooges {
    fn sum(&self) -> Result<i64, Fault> {
        self.moe
            .checked_add(self.larry)
            .and_then(|s| s.checked_add(self.curly))
            .ok_or_else(|| Fault::invalid_params("the sum overflows"))
    }
}

#[derive(Deserialize)]
struct Curly {
    curly: i64,
}

#[derive(Deserialize)]
struct ArrayOfStructs {
    array: Vec<Curly>,
}

#[derive(Deserialize)]
struct Text {
    string: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entities {
    ct_left_angle_brackets: usize,
    ct_right_angle_brackets: usize,
    ct_ampersands: usize,
    ct_apostrophes: usize,
    ct_quotes: usize,
}

#[derive(Deserialize)]
struct EasyStruct {
    stooges: Stooges,
}

#[derive(Deserialize)]
struct EchoStruct {
    /// Any struct, returned as it came (members in their order).
    value: Value,
}

#[derive(Deserialize)]
struct ManyTypes {
    number: i64,
    boolean: bool,
    string: String,
    double: f64,
    date: DateTime,
    bytes: Bytes,
}

#[derive(Deserialize)]
struct Strings {
    array: Vec<String>,
}

/// year → month → day → the day's stooges.
#[derive(Deserialize)]
struct Calendar {
    calendar: BTreeMap<String, BTreeMap<String, BTreeMap<String, Stooges>>>,
}

#[derive(Deserialize)]
struct Number {
    number: i64,
}

#[derive(Serialize)]
struct Times {
    times10: i64,
    times100: i64,
    times1000: i64,
}

fn overflow() -> Fault {
    Fault::invalid_params("the result overflows")
}

fn main() {
    let mut daemon = Daemon::new("validator");
    daemon
        .method(
            Method::typed("validator1.arrayOfStructsTest", |p: ArrayOfStructs, _| {
                p.array.iter().try_fold(0i64, |sum, s| sum.checked_add(s.curly)).ok_or_else(overflow)
            })
            .description("The sum of the curly members of an array of structs")
            .returns(Type::Int),
        )
        .method(
            Method::typed("validator1.countTheEntities", |Text { string }, _| {
                let count = |c: char| string.chars().filter(|&x| x == c).count();
                Ok(Entities {
                    ct_left_angle_brackets: count('<'),
                    ct_right_angle_brackets: count('>'),
                    ct_ampersands: count('&'),
                    ct_apostrophes: count('\''),
                    ct_quotes: count('"'),
                })
            })
            .description("How many <, >, &, ' and \" a string holds")
            .returns(Type::Struct),
        )
        .method(
            Method::typed("validator1.easyStructTest", |p: EasyStruct, _| p.stooges.sum())
                .description("moe + larry + curly")
                .returns(Type::Int),
        )
        .method(
            Method::typed("validator1.echoStructTest", |p: EchoStruct, _| match p.value {
                v @ Value::Struct(_) => Ok(v),
                other => {
                    Err(Fault::invalid_params(format!("parameter 'value': expected struct, got {}", other.type_name())))
                }
            })
            .description("Returns its struct unchanged")
            .returns(Type::Struct),
        )
        .method(
            Method::typed("validator1.manyTypesTest", |p: ManyTypes, _| {
                Ok((p.number, p.boolean, p.string, p.double, p.date, p.bytes))
            })
            .description("Returns its six parameters, of six types, as an array")
            .returns(Type::Array),
        )
        .method(
            Method::typed("validator1.moderateSizeArrayCheck", |Strings { array }, _| {
                match (array.first(), array.last()) {
                    (Some(first), Some(last)) => Ok(format!("{first}{last}")),
                    _ => Err(Fault::invalid_params("parameter 'array': empty")),
                }
            })
            .description("The first and the last strings of an array, joined")
            .returns(Type::String),
        )
        .method(
            Method::typed("validator1.nestedStructTest", |p: Calendar, _| {
                let day = p.calendar.get("2000").and_then(|y| y.get("04")).and_then(|m| m.get("01"));
                day.ok_or_else(|| Fault::invalid_params("parameter 'calendar': no 2000-04-01"))?.sum()
            })
            .description("moe + larry + curly of April 1st, 2000, in a calendar of years, months and days")
            .returns(Type::Int),
        )
        .method(
            Method::typed("validator1.simpleStructReturnTest", |Number { number }, _| {
                Ok(Times {
                    times10: number.checked_mul(10).ok_or_else(overflow)?,
                    times100: number.checked_mul(100).ok_or_else(overflow)?,
                    times1000: number.checked_mul(1000).ok_or_else(overflow)?,
                })
            })
            .description("The number times 10, 100 and 1000")
            .returns(Type::Struct),
        );
    std::process::exit(tomte::cli::main(daemon));
}
