use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::*;
use crate::fault::{Fault, INTERNAL_ERROR, INVALID_PARAMS};
use crate::types::{Bytes, DateTime};
use crate::value::Value;

/// Equal, doubles compared bit for bit (so NaN equals the same NaN, and 0.0 differs from -0.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Struct(x), Value::Struct(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((kx, x), (ky, y))| kx == ky && same(x, y))
        }
        _ => a == b,
    }
}

/// The detail of an invalid-params fault.
fn detail(f: Fault) -> String {
    assert_eq!(f.code, INVALID_PARAMS, "{f}");
    match f.data {
        Some(Value::String(d)) => d,
        other => panic!("no detail: {other:?}"),
    }
}

fn every_kind_of_value() -> Vec<Value> {
    let scalars = vec![
        Value::Nil,
        Value::Bool(true),
        Value::Bool(false),
        Value::Int(0),
        Value::Int(i64::MIN),
        Value::Int(i64::MAX),
        Value::Double(1.5),
        Value::Double(-0.0),
        Value::Double(f64::NAN),
        Value::Double(f64::from_bits(0x7ff8_0000_dead_beef)),
        Value::Double(-f64::NAN),
        Value::Double(f64::INFINITY),
        Value::Double(f64::NEG_INFINITY),
        Value::Double(f64::MIN_POSITIVE / 2.0),
        Value::String(String::new()),
        Value::String("héllo \"x\"".into()),
        Value::Base64(Vec::new()),
        Value::Base64((0..=255).collect()),
        Value::DateTime("19980717T14:08:55".into()),
        Value::DateTime("not checked".into()),
        Value::Array(Vec::new()),
        Value::Struct(Vec::new()),
    ];
    let mut all = scalars.clone();
    all.push(Value::Array(scalars.clone()));
    all.push(Value::Struct(scalars.iter().enumerate().map(|(i, v)| (format!("m{i}"), v.clone())).collect()));
    all.push(Value::structure([
        ("z", Value::Array(vec![Value::Array(vec![Value::Base64(vec![1, 2])]), Value::Double(f64::NAN)])),
        ("a", Value::structure([("when", Value::DateTime("2026-11-25T10:02:31+01:00".into()))])),
    ]));
    all
}

#[test]
fn values_serialize_into_themselves() {
    for v in every_kind_of_value() {
        let back = to_value(&v).unwrap();
        assert!(same(&back, &v), "{v:?} became {back:?}");
    }
}

#[test]
fn values_deserialize_into_themselves() {
    for v in every_kind_of_value() {
        for rules in [Rules::Strict, Rules::Lenient] {
            let back: Value = from_value_as(v.clone(), rules).unwrap();
            assert!(same(&back, &v), "{v:?} became {back:?}");
        }
        // Inside a derived struct too, and an Option.
        #[derive(Deserialize)]
        struct Holder {
            v: Value,
            o: Option<Value>,
        }
        let h: Holder = from_value(Value::structure([("v", v.clone()), ("o", v.clone())])).unwrap();
        assert!(same(&h.v, &v), "{v:?} became {:?}", h.v);
        assert!(same(&h.o.unwrap_or(Value::Nil), &v));
    }
}

#[test]
fn serde_json_values_read_values_as_json_would() {
    for v in every_kind_of_value() {
        let via_value: serde_json::Value = from_value(v.clone()).unwrap();
        let via_text: serde_json::Value = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(via_value, via_text, "{v:?}");
        // And back: what JSON can say comes back as itself.
        let again = to_value(&via_value).unwrap();
        let json_again: Value = serde_json::from_value(via_value).unwrap();
        assert!(same(&again, &json_again), "{v:?}");
    }
}

#[derive(Debug, PartialEq, Deserialize, Serialize)]
struct Add {
    a: i64,
    b: i64,
}

#[test]
fn a_struct_from_named_and_from_positional_parameters() {
    let named = Value::structure([("b", 2), ("a", 1)]);
    assert_eq!(from_value::<Add>(named.clone()).unwrap(), Add { a: 1, b: 2 });
    assert_eq!(from_value_strict::<Add>(named).unwrap(), Add { a: 1, b: 2 });
    let positional = Value::from(vec![1, 2]);
    assert_eq!(from_value::<Add>(positional).unwrap(), Add { a: 1, b: 2 });
}

#[test]
fn faults_name_the_parameter() {
    let missing = from_value::<Add>(Value::structure([("a", 1)])).unwrap_err();
    assert_eq!(detail(missing), "missing parameter 'b'");
    let missing = from_value::<Add>(Value::from(vec![1])).unwrap_err();
    assert_eq!(detail(missing), "missing parameter 'b'");

    let extra = from_value::<Add>(Value::from(vec![1, 2, 3])).unwrap_err();
    assert_eq!(detail(extra), "expects at most 2 parameters, got 3");

    #[derive(Debug, Deserialize)]
    struct N {
        #[allow(dead_code)]
        n: i64,
    }
    let wrong = from_value::<N>(Value::structure([("n", "five")])).unwrap_err();
    assert_eq!(detail(wrong), "parameter 'n': expected int, got string");
    let wrong = from_value::<N>(Value::from(vec!["five"])).unwrap_err();
    assert_eq!(detail(wrong), "parameter 'n': expected int, got string");
    // Unknown members are ignored, unless the type denies them.
    assert!(from_value::<N>(Value::structure([("n", Value::Int(5)), ("x", Value::Nil)])).is_ok());

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Strict {
        #[allow(dead_code)]
        n: i64,
    }
    let unknown = from_value::<Strict>(Value::structure([("n", Value::Int(5)), ("x", Value::Nil)])).unwrap_err();
    assert_eq!(detail(unknown), "unknown parameter 'x'");

    let range = from_value::<u8>(Value::Int(300)).unwrap_err();
    assert_eq!(detail(range), "300 is out of range (0 to 255)");
    let range = from_value::<i8>(Value::Int(-129)).unwrap_err();
    assert_eq!(detail(range), "-129 is out of range (-128 to 127)");
    let range = from_value::<u64>(Value::Int(-1)).unwrap_err();
    assert_eq!(detail(range), "-1 is out of range (0 to 18446744073709551615)");
    assert_eq!(from_value::<u64>(Value::Int(i64::MAX)).unwrap(), i64::MAX as u64);
    assert_eq!(from_value::<i128>(Value::Int(-3)).unwrap(), -3);
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Opts {
    depth: u32,
    label: Option<String>,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Walk {
    path: String,
    opts: Opts,
    list: Vec<i64>,
    pairs: Vec<(String, i64)>,
}

#[test]
fn faults_name_the_path_to_nested_members() {
    let walk = |opts: Value, list: Value| {
        from_value::<Walk>(Value::structure([
            ("path", Value::from("/")),
            ("opts", opts),
            ("list", list),
            ("pairs", Value::Array(vec![Value::from(vec![Value::from("x"), Value::Int(1)])])),
        ]))
    };
    let good = walk(Value::structure([("depth", 3)]), Value::from(vec![1, 2])).unwrap();
    assert_eq!(good.opts, Opts { depth: 3, label: None });
    assert_eq!(good.pairs, vec![("x".to_owned(), 1)]);

    let e = walk(Value::structure([("depth", "3")]), Value::from(vec![1])).unwrap_err();
    assert_eq!(detail(e), "parameter 'opts.depth': expected int, got string");
    let e = walk(Value::structure([("label", "x")]), Value::from(vec![1])).unwrap_err();
    assert_eq!(detail(e), "missing parameter 'opts.depth'");
    let e =
        walk(Value::structure([("depth", Value::Int(1)), ("deep", Value::Int(2))]), Value::from(vec![1])).unwrap_err();
    assert_eq!(detail(e), "unknown parameter 'opts.deep'");
    let e = walk(Value::structure([("depth", -1)]), Value::from(vec![1])).unwrap_err();
    assert_eq!(detail(e), "parameter 'opts.depth': -1 is out of range (0 to 4294967295)");
    let e = walk(Value::structure([("depth", 1)]), Value::Array(vec![1.into(), 2.into(), "x".into()])).unwrap_err();
    assert_eq!(detail(e), "parameter 'list[2]': expected int, got string");
    // Positional fields of a nested struct.
    let e = walk(Value::Array(vec![1.into(), 2.into(), 3.into()]), Value::from(vec![1])).unwrap_err();
    assert_eq!(detail(e), "parameter 'opts': expects at most 2 elements, got 3");
    let e = walk(Value::Array(vec![1.into(), 2.into()]), Value::from(vec![1])).unwrap_err();
    assert_eq!(detail(e), "parameter 'opts.label': expected string, got int");

    let e = from_value::<Walk>(Value::structure([
        ("path", Value::from("/")),
        ("opts", Value::structure([("depth", 1)])),
        ("list", Value::Array(Vec::new())),
        ("pairs", Value::Array(vec![Value::from(vec![Value::from("x"), Value::from("y")])])),
    ]))
    .unwrap_err();
    assert_eq!(detail(e), "parameter 'pairs[0][1]': expected int, got string");

    // Positions name the parameters when they are all there is.
    let e = from_value::<(i64, String)>(Value::from(vec![Value::Int(1), Value::Int(2)])).unwrap_err();
    assert_eq!(detail(e), "parameter #1: expected string, got int");
    let e = from_value::<(i64, String)>(Value::from(vec![1])).unwrap_err();
    assert_eq!(detail(e), "missing parameter #1");
    let e = from_value::<(i64, String)>(Value::from(vec![1, 2, 3])).unwrap_err();
    assert_eq!(detail(e), "expects at most 2 parameters, got 3");
    let e =
        from_value::<(i64, Opts)>(Value::from(vec![Value::Int(1), Value::structure([("depth", true)])])).unwrap_err();
    assert_eq!(detail(e), "parameter #1.depth: expected int, got boolean");
    let e = from_value::<Add>(Value::Int(1)).unwrap_err();
    assert_eq!(detail(e), "expected struct, got int");
}

#[test]
fn options_may_be_nil_or_left_out() {
    #[derive(Debug, PartialEq, Deserialize)]
    struct O {
        a: i64,
        b: Option<String>,
        #[serde(default)]
        c: Vec<i64>,
    }
    let full = O { a: 1, b: Some("x".into()), c: vec![2] };
    let bare = O { a: 1, b: None, c: Vec::new() };
    assert_eq!(from_value::<O>(Value::structure([("a", Value::Int(1))])).unwrap(), bare);
    assert_eq!(from_value::<O>(Value::structure([("a", Value::Int(1)), ("b", Value::Nil)])).unwrap(), bare);
    assert_eq!(from_value::<O>(Value::from(vec![1])).unwrap(), bare);
    assert_eq!(from_value::<O>(Value::from(vec![Value::Int(1), Value::Nil])).unwrap(), bare);
    assert_eq!(
        from_value::<O>(Value::from(vec![Value::Int(1), Value::from("x"), Value::from(vec![2])])).unwrap(),
        full
    );
    assert_eq!(from_value::<(i64, Option<String>)>(Value::from(vec![1])).unwrap(), (1, None));
    assert_eq!(from_value::<Option<i64>>(Value::Nil).unwrap(), None);
    assert_eq!(from_value::<Option<i64>>(Value::Int(3)).unwrap(), Some(3));
}

#[test]
fn strict_and_lenient_rules() {
    #[derive(Debug, PartialEq, Deserialize)]
    struct D {
        x: f64,
        y: f32,
    }
    let ints = Value::structure([("x", 2), ("y", 3)]);
    assert_eq!(from_value::<D>(ints.clone()).unwrap(), D { x: 2.0, y: 3.0 });
    assert_eq!(detail(from_value_strict::<D>(ints).unwrap_err()), "parameter 'x': expected double, got int");
    let doubles = Value::structure([("x", 2.5), ("y", 1e300)]);
    assert_eq!(
        detail(from_value_strict::<D>(doubles).unwrap_err()),
        "parameter 'y': 1e300 is out of range for a 32-bit float"
    );
    // Neither takes an int from a double.
    assert_eq!(detail(from_value::<i64>(Value::Double(1.0)).unwrap_err()), "expected int, got double");

    #[derive(Debug, PartialEq, Deserialize)]
    struct B {
        data: Bytes,
    }
    let text = Value::structure([("data", "aGk=")]);
    assert_eq!(from_value::<B>(text.clone()).unwrap(), B { data: Bytes(b"hi".to_vec()) });
    assert_eq!(from_value::<B>(Value::structure([("data", "aGk")])).unwrap(), B { data: Bytes(b"hi".to_vec()) });
    assert_eq!(detail(from_value_strict::<B>(text).unwrap_err()), "parameter 'data': expected base64, got string");
    let raw = Value::structure([("data", Value::Base64(b"hi".to_vec()))]);
    assert_eq!(from_value_strict::<B>(raw.clone()).unwrap(), B { data: Bytes(b"hi".to_vec()) });
    assert_eq!(from_value::<B>(raw.clone()).unwrap(), B { data: Bytes(b"hi".to_vec()) });
    let bad = detail(from_value::<B>(Value::structure([("data", "a*k=")])).unwrap_err());
    assert!(bad.starts_with("parameter 'data': not valid base64: "), "{bad}");
    // A Vec<u8> reads base64 as the sequence of its bytes, or an array of ints.
    assert_eq!(from_value_strict::<Vec<u8>>(Value::Base64(vec![1, 2])).unwrap(), vec![1, 2]);
    assert_eq!(from_value_strict::<Vec<u8>>(Value::from(vec![1, 2])).unwrap(), vec![1, 2]);

    #[derive(Debug, PartialEq, Deserialize)]
    struct W {
        when: DateTime,
    }
    let date = DateTime::parse("1998-07-17T14:08:55Z").unwrap();
    let text = Value::structure([("when", "1998-07-17T14:08:55Z")]);
    assert_eq!(from_value::<W>(text.clone()).unwrap(), W { when: date.clone() });
    assert_eq!(
        detail(from_value_strict::<W>(text).unwrap_err()),
        "parameter 'when': expected dateTime.iso8601, got string"
    );
    let typed = Value::structure([("when", Value::DateTime("1998-07-17T14:08:55Z".into()))]);
    assert_eq!(from_value_strict::<W>(typed.clone()).unwrap(), W { when: date.clone() });
    assert_eq!(from_value::<W>(typed.clone()).unwrap(), W { when: date });
    let bad = detail(from_value::<W>(Value::structure([("when", "1998-13-01T00:00:00")])).unwrap_err());
    assert_eq!(bad, "parameter 'when': not an ISO 8601 date: month 13 is not 1 to 12");
    let bad = detail(from_value_strict::<W>(Value::structure([("when", Value::DateTime("x".into()))])).unwrap_err());
    assert!(bad.starts_with("parameter 'when': not an ISO 8601 date: "), "{bad}");

    // A string is only a string when strict; lenient, a date's text passes for one.
    let d = Value::DateTime("19980717T14:08:55".into());
    assert_eq!(detail(from_value_strict::<String>(d.clone()).unwrap_err()), "expected string, got dateTime.iso8601");
    assert_eq!(from_value::<String>(d).unwrap(), "19980717T14:08:55");
    assert_eq!(detail(from_value_strict::<bool>(Value::Int(1)).unwrap_err()), "expected boolean, got int");
}

#[test]
fn enums_from_strings_and_one_member_structs() {
    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    enum Mode {
        Fast,
        Depth(u32),
        Span(i64, i64),
        Named { limit: i64 },
    }
    let cases = [
        (Mode::Fast, Value::from("Fast")),
        (Mode::Depth(3), Value::structure([("Depth", 3)])),
        (Mode::Span(1, 2), Value::structure([("Span", vec![1, 2])])),
        (Mode::Named { limit: 5 }, Value::structure([("Named", Value::structure([("limit", 5)]))])),
    ];
    for (mode, value) in cases {
        assert_eq!(to_value(&mode).unwrap(), value);
        assert_eq!(from_value::<Mode>(value).unwrap(), mode);
    }
    let e = from_value::<Mode>(Value::structure([("Depth", "x")])).unwrap_err();
    assert_eq!(detail(e), "parameter 'Depth': expected int, got string");
    let e = from_value::<Mode>(Value::from("Slow")).unwrap_err();
    assert!(detail(e).contains("unknown variant `Slow`"));
    let e = from_value::<Mode>(Value::from("Depth")).unwrap_err();
    assert!(detail(e).contains("needs a value"));
    let e = from_value::<Mode>(Value::Int(1)).unwrap_err();
    assert_eq!(detail(e), "expected string or struct of one member, got int");
}

#[test]
fn maps_with_names_of_every_kind() {
    let m: HashMap<String, i64> = from_value(Value::structure([("a", 1), ("b", 2)])).unwrap();
    assert_eq!(m, HashMap::from([("a".to_owned(), 1), ("b".to_owned(), 2)]));
    let m: BTreeMap<i64, bool> = from_value(Value::structure([("10", true), ("-2", false)])).unwrap();
    assert_eq!(m, BTreeMap::from([(10, true), (-2, false)]));
    assert_eq!(to_value(&m).unwrap(), Value::structure([("-2", false), ("10", true)]));
    let e = from_value::<BTreeMap<i64, bool>>(Value::structure([("x", true)])).unwrap_err();
    assert_eq!(detail(e), "the member name 'x' is not i64");
    let e =
        from_value::<HashMap<String, i64>>(Value::structure([("a", Value::Int(1)), ("b", Value::Nil)])).unwrap_err();
    assert_eq!(detail(e), "parameter 'b': expected int, got nil");
}

#[derive(Serialize)]
struct Report {
    name: &'static str,
    data: Bytes,
    when: DateTime,
    note: Option<String>,
    missing: Option<i64>,
    list: Vec<u16>,
    counts: BTreeMap<&'static str, u64>,
    by_host: HashMap<String, f32>,
    pair: (char, ()),
    raw: Value,
}

#[test]
fn to_value_of_a_struct() {
    let r = Report {
        name: "r",
        data: Bytes(vec![0, 255]),
        when: DateTime::parse("19980717T14:08:55").unwrap(),
        note: Some("n".into()),
        missing: None,
        list: vec![1, 2],
        counts: BTreeMap::from([("b", u64::MAX), ("a", 1)]),
        by_host: HashMap::from([("h".to_owned(), 0.5)]),
        pair: ('c', ()),
        raw: Value::Base64(vec![7]),
    };
    let expected = Value::structure([
        ("name", Value::from("r")),
        ("data", Value::Base64(vec![0, 255])),
        ("when", Value::DateTime("19980717T14:08:55".into())),
        ("note", Value::from("n")),
        ("missing", Value::Nil),
        ("list", Value::from(vec![1, 2])),
        ("counts", Value::structure([("a", Value::Int(1)), ("b", Value::Double(u64::MAX as f64))])),
        ("by_host", Value::structure([("h", 0.5)])),
        ("pair", Value::Array(vec![Value::from("c"), Value::Nil])),
        ("raw", Value::Base64(vec![7])),
    ]);
    assert_eq!(to_value(&r).unwrap(), expected);
    // The JSON-RPC codec then writes what JSON can say.
    assert_eq!(
        serde_json::to_string(&expected).unwrap(),
        concat!(
            r#"{"name":"r","data":"AP8=","when":"19980717T14:08:55","note":"n","missing":null,"list":[1,2],"#,
            r#""counts":{"a":1,"b":1.8446744073709552e+19},"by_host":{"h":0.5},"pair":["c",null],"raw":"Bw=="}"#
        )
    );
}

#[test]
fn to_value_refuses_what_has_no_representation() {
    let f = to_value(&i128::MAX).unwrap_err();
    assert_eq!(f.code, INTERNAL_ERROR);
    assert!(f.full_message().contains("does not fit in 64 bits"), "{f}");
    assert_eq!(to_value(&-5i128).unwrap(), Value::Int(-5));
    assert_eq!(to_value(&(u64::MAX as u128)).unwrap(), Value::Double(u64::MAX as f64));
    assert!(to_value(&u128::MAX).is_err());

    let f = to_value(&HashMap::from([((1, 2), 3)])).unwrap_err();
    assert_eq!(f.code, INTERNAL_ERROR);
    assert!(f.full_message().contains("a map key must be a string, an integer, a boolean or a character, not a tuple"));
    assert!(to_value(&BTreeMap::from([(Value::Nil.type_name(), 1)])).is_ok());
    assert_eq!(to_value(&HashMap::from([(true, 1)])).unwrap(), Value::structure([("true", 1)]));
    assert_eq!(to_value(&HashMap::from([('x', 1)])).unwrap(), Value::structure([("x", 1)]));
    assert_eq!(to_value(&'x').unwrap(), Value::from("x"));
    assert_eq!(to_value(&1.5f32).unwrap(), Value::Double(1.5));
    assert_eq!(to_value("s").unwrap(), Value::from("s"));
    assert_eq!(to_value(&[1u8, 2]).unwrap(), Value::from(vec![1, 2]));
}

#[derive(Debug, PartialEq, Deserialize)]
struct Greet {
    name: String,
    times: Option<u32>,
}

#[test]
fn parameters_by_name_or_by_position() {
    let names = ["name".to_owned(), "times".to_owned()];
    let greet = |values: Vec<Value>, names: &[String]| from_params::<Greet>(values, names, Rules::Strict);
    let want = Greet { name: "x".into(), times: Some(2) };
    assert_eq!(greet(vec!["x".into(), 2.into()], &names).unwrap(), want);
    assert_eq!(greet(vec!["x".into(), 2.into()], &[]).unwrap(), want);
    assert_eq!(greet(vec!["x".into()], &names).unwrap(), Greet { name: "x".into(), times: None });
    assert_eq!(detail(greet(vec![], &names).unwrap_err()), "missing parameter 'name'");
    assert_eq!(detail(greet(vec![1.into()], &names).unwrap_err()), "parameter 'name': expected string, got int");
    assert_eq!(
        detail(greet(vec![1.into(), 2.into(), 3.into()], &names).unwrap_err()),
        "expects at most 2 parameters, got 3"
    );
    assert_eq!(
        detail(greet(vec![1.into(), 2.into(), 3.into()], &[]).unwrap_err()),
        "expects at most 2 parameters, got 3"
    );

    // Tuples and sequences by position, names or not.
    let t: (String, i64) = from_params(vec!["a".into(), 1.into()], &names, Rules::Strict).unwrap();
    assert_eq!(t, ("a".to_owned(), 1));
    let v: Vec<i64> = from_params(vec![1.into(), 2.into()], &[], Rules::Strict).unwrap();
    assert_eq!(v, vec![1, 2]);
    // One value.
    let n = ["n".to_owned()];
    assert_eq!(from_params::<i64>(vec![5.into()], &n, Rules::Strict).unwrap(), 5);
    assert_eq!(from_params::<i64>(vec![5.into()], &[], Rules::Strict).unwrap(), 5);
    assert_eq!(
        detail(from_params::<i64>(vec!["5".into()], &n, Rules::Strict).unwrap_err()),
        "parameter 'n': expected int, got string"
    );
    assert_eq!(
        detail(from_params::<i64>(vec!["5".into()], &[], Rules::Strict).unwrap_err()),
        "parameter #0: expected int, got string"
    );
    assert_eq!(detail(from_params::<i64>(vec![], &n, Rules::Strict).unwrap_err()), "missing parameter 'n'");
    assert_eq!(detail(from_params::<i64>(vec![], &[], Rules::Strict).unwrap_err()), "missing parameter #0");
    assert_eq!(
        detail(from_params::<i64>(vec![1.into(), 2.into()], &[], Rules::Strict).unwrap_err()),
        "expects at most 1 parameters, got 2"
    );
    assert_eq!(from_params::<Option<i64>>(vec![], &n, Rules::Strict).unwrap(), None);
    assert_eq!(from_params::<Option<i64>>(vec![5.into()], &n, Rules::Strict).unwrap(), Some(5));
    assert_eq!(from_params::<Option<i64>>(vec![Value::Nil], &n, Rules::Strict).unwrap(), None);
    let when: DateTime = from_params(vec!["19980717T14:08:55".into()], &[], Rules::Lenient).unwrap();
    assert_eq!(when.year(), 1998);
    // No values.
    from_params::<()>(vec![], &[], Rules::Strict).unwrap();
    assert_eq!(
        detail(from_params::<()>(vec![1.into()], &[], Rules::Strict).unwrap_err()),
        "expects at most 0 parameters, got 1"
    );
    // Everything, as one value.
    let all: Value = from_params(vec!["x".into(), 2.into()], &names, Rules::Strict).unwrap();
    assert_eq!(all, Value::structure([("name", Value::from("x")), ("times", Value::Int(2))]));
    let all: Value = from_params(vec!["x".into(), 2.into()], &[], Rules::Strict).unwrap();
    assert_eq!(all, Value::Array(vec!["x".into(), 2.into()]));
    let map: HashMap<String, Value> = from_params(vec!["x".into()], &names, Rules::Strict).unwrap();
    assert_eq!(map.len(), 1);
    let json: serde_json::Value = from_params(vec![Value::Base64(b"hi".to_vec())], &n, Rules::Strict).unwrap();
    assert_eq!(json, serde_json::json!({"n": "aGk="}));
}

#[test]
fn a_newtype_that_checks_is_named_in_the_fault() {
    #[derive(Debug, Deserialize)]
    #[serde(try_from = "i64")]
    struct Positive(#[allow(dead_code)] i64);
    impl TryFrom<i64> for Positive {
        type Error = String;
        fn try_from(v: i64) -> Result<Positive, String> {
            if v > 0 {
                Ok(Positive(v))
            } else {
                Err(format!("{v} is not positive"))
            }
        }
    }
    #[derive(Debug, Deserialize)]
    struct P {
        #[allow(dead_code)]
        count: Positive,
    }
    let e = from_value::<P>(Value::structure([("count", 0)])).unwrap_err();
    assert_eq!(detail(e), "parameter 'count': 0 is not positive");
}

#[test]
fn types_that_buffer_read_base64_and_dates_as_json_gives_them() {
    // Untagged enums and flattened structs read through serde's buffer (deserialize_any), where
    // a base64 value is its text and a date a string: Bytes and DateTime take those.
    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(i64),
        Data { data: Bytes, when: DateTime },
    }
    let v = Value::structure([
        ("data", Value::Base64(b"hi".to_vec())),
        ("when", Value::DateTime("19980717T14:08:55".into())),
    ]);
    let when = DateTime::parse("19980717T14:08:55").unwrap();
    assert_eq!(from_value_strict::<Either>(v.clone()).unwrap(), Either::Data { data: Bytes(b"hi".to_vec()), when });
    assert_eq!(from_value_strict::<Either>(Value::Int(4)).unwrap(), Either::Number(4));

    #[derive(Debug, Deserialize)]
    struct Flat {
        data: Bytes,
        #[serde(flatten)]
        rest: HashMap<String, Value>,
    }
    let flat: Flat = from_value(v).unwrap();
    assert_eq!(flat.data, Bytes(b"hi".to_vec()));
    assert_eq!(flat.rest["when"], Value::from("19980717T14:08:55"));
}

#[test]
fn characters_and_units() {
    assert_eq!(from_value::<char>(Value::from("é")).unwrap(), 'é');
    assert_eq!(detail(from_value::<char>(Value::from("ab")).unwrap_err()), "expected one character, got a string of 2");
    from_value::<()>(Value::Nil).unwrap();
    assert_eq!(detail(from_value::<()>(Value::Int(0)).unwrap_err()), "expected nil, got int");
}
