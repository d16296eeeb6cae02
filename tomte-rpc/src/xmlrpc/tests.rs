//! The unit tests of the XML-RPC codec and `serve`.

use super::encode::DECLARATION;
use super::*;
use crate::fault::{self, Fault};
use crate::method::{Method, Type};
use crate::value::Value;

fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_call("t", std::slice::from_ref(v), &mut out).unwrap();
    out
}

/// encode → decode gives the value back, and encoding that again gives the same bytes
/// (which also tells −0.0 from 0.0).
fn round_trip(v: &Value) {
    let bytes = encode(v);
    let (name, params) =
        decode_call(&bytes).unwrap_or_else(|f| panic!("{f} decoding {}", String::from_utf8_lossy(&bytes)));
    assert_eq!(name, "t");
    assert_eq!(params.len(), 1);
    assert_eq!(&params[0], v, "through {}", String::from_utf8_lossy(&bytes));
    assert_eq!(encode(&params[0]), bytes);
    // The same value as a response.
    let mut resp = Vec::new();
    encode_response(&Ok(v.clone()), &mut resp);
    assert_eq!(decode_response(&resp).unwrap().as_ref(), Ok(v));
}

fn call_doc(params: &str) -> String {
    format!("<?xml version=\"1.0\"?><methodCall><methodName>t</methodName><params>{params}</params></methodCall>")
}

fn one(value_xml: &str) -> Result<Value, Fault> {
    decode_call(call_doc(&format!("<param>{value_xml}</param>")).as_bytes()).map(|(_, mut p)| p.remove(0))
}

fn parse_fault(doc: &[u8]) -> Fault {
    let f = decode_call(doc).unwrap_err();
    assert_eq!(f.code, fault::PARSE_ERROR, "{f}");
    f
}

#[test]
fn hand_built_values_round_trip() {
    let nested = Value::structure([
        ("a", Value::from(vec![Value::Int(1), Value::Nil, Value::from("x")])),
        ("b", Value::structure([("c", Value::Array(vec![Value::Array(vec![])]))])),
        ("", Value::Struct(vec![])),
    ]);
    let values = vec![
        Value::Nil,
        Value::Bool(true),
        Value::Bool(false),
        Value::Int(0),
        Value::Int(-1),
        Value::Int(i64::from(i32::MAX)),
        Value::Int(i64::from(i32::MIN)),
        Value::Int(i64::from(i32::MAX) + 1),
        Value::Int(i64::from(i32::MIN) - 1),
        Value::Int(i64::MAX),
        Value::Int(i64::MIN),
        Value::Double(0.0),
        Value::Double(-0.0),
        Value::Double(1.0),
        Value::Double(0.1),
        Value::Double(-2.5e-8),
        Value::Double(1e300),
        Value::Double(f64::MAX),
        Value::Double(f64::MIN_POSITIVE),
        Value::Double(5e-324),
        Value::String(String::new()),
        Value::from("hello"),
        Value::from("  spaces around  "),
        Value::from("<tag> & \"quotes\" 'apos' ]]> &amp;"),
        Value::from("line\r\nbreaks\rand\ttabs\n"),
        Value::from("\r"),
        Value::from("héllo ☃ 日本語 🦀 \u{10FFFF} \u{FFFD}"),
        Value::Base64(Vec::new()),
        Value::Base64((0..=255).collect()),
        Value::Base64(vec![0]),
        Value::DateTime("19980717T14:08:55".into()),
        Value::DateTime("2026-11-25T10:02:31+01:00".into()),
        Value::Array(vec![]),
        Value::Struct(vec![]),
        Value::structure([("z", 1), ("a", 2), ("m", 3)]),
        Value::structure([("<&>", Value::from("\r"))]),
        nested,
    ];
    for v in &values {
        round_trip(v);
    }
    round_trip(&Value::Array(values));
}

/// A small deterministic generator: many random values, all of which must round-trip.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn string(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a", "Z", " ", "\t", "\n", "\r", "\r\n", "<", ">", "&", "&amp;", "]]>", "\"", "'", "é", "☃", "🦀",
            "\u{FFFD}", "0",
        ];
        (0..self.below(12)).map(|_| PIECES[self.below(PIECES.len() as u64) as usize]).collect()
    }
    fn value(&mut self, depth: usize) -> Value {
        let kinds = if depth >= 5 { 7 } else { 9 };
        match self.below(kinds) {
            0 => Value::Nil,
            1 => Value::Bool(self.below(2) == 1),
            2 => Value::Int(match self.below(4) {
                0 => self.next() as i64,
                1 => i64::from(self.next() as i32),
                2 => [i64::MIN, i64::MAX, 0, -1][self.below(4) as usize],
                _ => self.below(1000) as i64 - 500,
            }),
            3 => loop {
                let d = f64::from_bits(self.next());
                if d.is_finite() {
                    break Value::Double(d);
                }
            },
            4 => Value::String(self.string()),
            5 => Value::Base64((0..self.below(40)).map(|_| self.next() as u8).collect()),
            6 => Value::DateTime(format!(
                "2026{:02}{:02}T{:02}:00:00",
                1 + self.below(12),
                1 + self.below(28),
                self.below(24)
            )),
            7 => Value::Array((0..self.below(5)).map(|_| self.value(depth + 1)).collect()),
            _ => Value::Struct(
                (0..self.below(5)).map(|i| (format!("{i}{}", self.string()), self.value(depth + 1))).collect(),
            ),
        }
    }
}

#[test]
fn random_values_round_trip() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        round_trip(&rng.value(0));
    }
}

#[test]
fn doubles_are_plain_decimals() {
    for d in [1e300, 1e-300, 5e-324, f64::MAX, 123456789.125, -0.0, 3.0] {
        let mut out = Vec::new();
        encode_value(&Value::Double(d), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let inner = text.trim_start_matches("<value><double>").trim_end_matches("</double></value>");
        assert!(inner.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-'), "{inner}");
        assert_eq!(inner.parse::<f64>().unwrap().to_bits(), d.to_bits());
    }
    // Exponents are read, as many clients write them.
    assert_eq!(one("<value><double>1.5e+3</double></value>"), Ok(Value::Double(1500.0)));
    assert_eq!(one("<value><double> -.5 </double></value>"), Ok(Value::Double(-0.5)));
    for bad in ["nan", "inf", "1e999", "", "1.2.3", "0x10", "1e"] {
        parse_fault(call_doc(&format!("<param><value><double>{bad}</double></value></param>")).as_bytes());
    }
}

#[test]
fn values_without_an_xml_rpc_form() {
    let mut out = b"keep".to_vec();
    assert_eq!(
        encode_value(&Value::Double(f64::NAN), &mut out).map_err(|e| e.to_string()),
        Err("XML-RPC has no representation for the double NaN".into())
    );
    assert_eq!(
        encode_value(&Value::from(vec![Value::Double(f64::INFINITY)]), &mut out),
        Err(EncodeError::NonFinite(f64::INFINITY))
    );
    assert_eq!(encode_value(&Value::from("bell\u{7}"), &mut out), Err(EncodeError::IllegalChar(7)));
    assert_eq!(encode_value(&Value::from("\u{FFFE}"), &mut out), Err(EncodeError::IllegalChar(0xFFFE)));
    assert_eq!(encode_call("a\0b", &[], &mut out), Err(EncodeError::IllegalChar(0)));
    let mut deep = Value::Nil;
    for _ in 0..=MAX_DEPTH {
        deep = Value::Array(vec![deep]);
    }
    assert_eq!(encode_value(&deep, &mut out), Err(EncodeError::TooDeep));
    assert_eq!(out, b"keep", "nothing is appended on error");
    // A server turns them into fault −32500, and a fault itself is always writable.
    let mut resp = Vec::new();
    encode_response(&Ok(Value::Double(f64::NAN)), &mut resp);
    let f = decode_response(&resp).unwrap().unwrap_err();
    assert_eq!(f.code, fault::APPLICATION_ERROR);
    assert_eq!(f.message, "Application error: XML-RPC has no representation for the double NaN");
    resp.clear();
    encode_response(&Err(Fault::internal("bad \u{1} byte")), &mut resp);
    let f = decode_response(&resp).unwrap().unwrap_err();
    assert_eq!(f.message, "Internal error: bad \u{FFFD} byte");
    // One level less is fine.
    let Value::Array(mut inner) = deep else { unreachable!() };
    round_trip(&inner.remove(0));
}

#[test]
fn untyped_values_are_strings() {
    assert_eq!(one("<value>plain</value>"), Ok(Value::from("plain")));
    assert_eq!(one("<value>  spaced  </value>"), Ok(Value::from("  spaced  ")));
    assert_eq!(one("<value></value>"), Ok(Value::from("")));
    assert_eq!(one("<value/>"), Ok(Value::from("")));
    assert_eq!(one("<value>a &lt;b&gt; &amp; &#233;&#x2603; &quot;&apos;</value>"), Ok(Value::from("a <b> & é☃ \"'")));
    assert_eq!(one("<value>  <string> kept </string>  </value>"), Ok(Value::from(" kept ")));
    parse_fault(call_doc("<param><value>text<string>x</string></value></param>").as_bytes());
}

#[test]
fn cdata_comments_and_references() {
    assert_eq!(one("<value><string><![CDATA[<not a tag> & ]]></string></value>"), Ok(Value::from("<not a tag> & ")));
    assert_eq!(
        one("<value><string>a<![CDATA[<b>]]>c&amp;d<!-- gone -->e</string></value>"),
        Ok(Value::from("a<b>c&de"))
    );
    assert_eq!(one("<value><![CDATA[raw]]></value>"), Ok(Value::from("raw")));
    assert_eq!(one("<value><string>a&#13;b\r\nc\rd</string></value>"), Ok(Value::from("a\rb\nc\nd")));
    assert_eq!(one("<value><base64>\n  aGVs\r\n  bG8=\n</base64></value>"), Ok(Value::Base64(b"hello".to_vec())));
    assert_eq!(one("<value><base64>aGVsbG8</base64></value>"), Ok(Value::Base64(b"hello".to_vec())));
}

#[test]
fn all_the_type_spellings() {
    assert_eq!(one("<value><i4>-42</i4></value>"), Ok(Value::Int(-42)));
    assert_eq!(one("<value><int> +7 </int></value>"), Ok(Value::Int(7)));
    assert_eq!(one("<value><i8>-9223372036854775808</i8></value>"), Ok(Value::Int(i64::MIN)));
    assert_eq!(one("<value><ex:i8>5</ex:i8></value>"), Ok(Value::Int(5)));
    assert_eq!(one("<value><boolean>1</boolean></value>"), Ok(Value::Bool(true)));
    assert_eq!(one("<value><boolean>false</boolean></value>"), Ok(Value::Bool(false)));
    assert_eq!(one("<value><nil/></value>"), Ok(Value::Nil));
    assert_eq!(one("<value><nil></nil></value>"), Ok(Value::Nil));
    assert_eq!(one("<value><ex:nil/></value>"), Ok(Value::Nil));
    assert_eq!(
        one(r#"<value><ex:nil xmlns:ex="http://ws.apache.org/xmlrpc/namespaces/extensions"/></value>"#),
        Ok(Value::Nil)
    );
    assert_eq!(one("<value><string/></value>"), Ok(Value::from("")));
    assert_eq!(
        one("<value><dateTime.iso8601> 19980717T14:08:55 </dateTime.iso8601></value>"),
        Ok(Value::DateTime("19980717T14:08:55".into()))
    );
    assert_eq!(one("<value><array/></value>"), Ok(Value::Array(vec![])));
    assert_eq!(one("<value><array><data/></array></value>"), Ok(Value::Array(vec![])));
    assert_eq!(one("<value><struct/></value>"), Ok(Value::Struct(vec![])));
    // A repeated member name keeps its last value, in its first place.
    let s = "<value><struct><member><name>a</name><value>1</value></member><member><name>b</name><value>2</value></member><member><name>a</name><value>3</value></member></struct></value>";
    assert_eq!(one(s), Ok(Value::structure([("a", "3"), ("b", "2")])));
    for bad in [
        "<value><int>1.5</int></value>",
        "<value><int>99999999999999999999</int></value>",
        "<value><int></int></value>",
        "<value><boolean>yes</boolean></value>",
        "<value><nil>x</nil></value>",
        "<value><base64>!!!!</base64></value>",
        "<value><string><b>bold</b></string></value>",
        "<value><array><value>1</value></array></value>",
        "<value><struct><member><value>1</value><name>a</name></member></struct></value>",
        "<value><struct><member><name>a</name></member></struct></value>",
        "<value><string>a</string><string>b</string></value>",
    ] {
        parse_fault(call_doc(&format!("<param>{bad}</param>")).as_bytes());
    }
}

#[test]
fn big_structs_with_repeated_names_stay_linear() {
    let mut doc = String::from("<value><struct>");
    for i in 0..20_000 {
        doc.push_str(&format!("<member><name>k{}</name><value><int>{i}</int></value></member>", i % 10_000));
    }
    doc.push_str("</struct></value>");
    let Ok(Value::Struct(members)) = one(&doc) else { panic!("not a struct") };
    assert_eq!(members.len(), 10_000);
    assert_eq!(members[3], ("k3".to_owned(), Value::Int(10_003)));
}

#[test]
fn unknown_type_tag() {
    let f = parse_fault(call_doc("<param><value><float>1.5</float></value></param>").as_bytes());
    assert!(f.full_message().contains("unknown value type <float>"), "{f}");
    let f = parse_fault(call_doc("<param><value><params/></value></param>").as_bytes());
    assert!(f.full_message().contains("<params> is not a value type"), "{f}");
}

#[test]
fn whitespace_between_tags_as_python_writes_it() {
    let doc = "<?xml version='1.0'?>\n<methodCall>\n<methodName>my.echo</methodName>\n<params>\n<param>\n<value><string>hello</string></value>\n</param>\n<param>\n<value><array><data>\n<value><int>1</int></value>\n<value><struct>\n<member>\n<name>k</name>\n<value><boolean>0</boolean></value>\n</member>\n</struct></value>\n</data></array></value>\n</param>\n</params>\n</methodCall>\n";
    let (name, params) = decode_call(doc.as_bytes()).unwrap();
    assert_eq!(name, "my.echo");
    assert_eq!(params, vec![Value::from("hello"), Value::Array(vec![Value::Int(1), Value::structure([("k", false)])])]);
}

#[test]
fn documents_without_params_bom_and_prolog() {
    assert_eq!(decode_call(b"<methodCall><methodName>a.b</methodName></methodCall>"), Ok(("a.b".into(), vec![])));
    assert_eq!(
        decode_call(b"<methodCall><methodName> a.b </methodName><params/></methodCall>"),
        Ok(("a.b".into(), vec![]))
    );
    let doc = "\u{FEFF}<?xml version=\"1.0\" encoding=\"utf-8\"?><!-- hi --><?pi x?>\n<methodCall><methodName>x</methodName></methodCall><!-- bye -->\n";
    assert_eq!(decode_call(doc.as_bytes()), Ok(("x".into(), vec![])));
    // A Latin-1 document is transcoded (see `encodings` for the others).
    let mut latin = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><methodCall><methodName>x</methodName><params><param><value>caf".to_vec();
    latin.extend_from_slice(b"\xe9</value></param></params></methodCall>");
    assert_eq!(decode_call(&latin), Ok(("x".into(), vec![Value::from("café")])));
    let f = parse_fault(
        b"<methodCall><methodName>x</methodName><params><param><value>\xff</value></param></params></methodCall>",
    );
    assert!(f.full_message().contains("UTF-8"), "{f}");
}

#[test]
fn encodings() {
    let doc = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<methodCall><methodName>my.echo</methodName><params><param><value><string>é 🦀 ☃</string></value></param></params></methodCall>";
    let want = Ok(("my.echo".to_owned(), vec![Value::from("é 🦀 ☃")]));
    let mut le = vec![0xFF, 0xFE];
    le.extend(doc.encode_utf16().flat_map(u16::to_le_bytes));
    let mut be = vec![0xFE, 0xFF];
    be.extend(doc.encode_utf16().flat_map(u16::to_be_bytes));
    assert_eq!(decode_call(&le), want);
    assert_eq!(decode_call(&be), want);
    // Without a BOM, `<?` in 16-bit units tells UTF-16 and its byte order.
    assert_eq!(decode_call(&le[2..]), want);
    assert_eq!(decode_call(&be[2..]), want);
    // ISO-8859-1 by the declaration: é is the single byte 0xE9.
    let latin = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><methodCall><methodName>my.echo</methodName><params><param><value>\xe9t\xe9</value></param></params></methodCall>";
    assert_eq!(decode_call(latin), Ok(("my.echo".to_owned(), vec![Value::from("été")])));
    let cp1252 = b"<?xml version='1.0' encoding='windows-1252'?><methodCall><methodName>x</methodName><params><param><value>\x80 \x93q\x94</value></param></params></methodCall>";
    assert_eq!(decode_call(cp1252), Ok(("x".to_owned(), vec![Value::from("€ \u{201C}q\u{201D}")])));
    // Labelled UTF-16 but plainly 8-bit: read as UTF-8, as libxml2 does.
    let labelled = doc.as_bytes();
    assert_eq!(decode_call(labelled), want);
    // Odd bytes in UTF-16 are a parse error; an unknown encoding is −32701.
    let f = parse_fault(&le[..le.len() - 1]);
    assert!(f.full_message().contains("not valid UTF-16LE"), "{f}");
    for name in ["bogus-enc", "ISO-2022-KR"] {
        let doc =
            format!("<?xml version=\"1.0\" encoding=\"{name}\"?><methodCall><methodName>x</methodName></methodCall>");
        let f = decode_call(doc.as_bytes()).unwrap_err();
        assert_eq!(f.code, fault::UNSUPPORTED_ENCODING, "{f}");
        assert_eq!(
            f.full_message(),
            format!("Parse error. Unsupported encoding: unsupported encoding {name:?} (send UTF-8)")
        );
        assert_eq!(decode_response(doc.as_bytes()).unwrap_err().code, fault::UNSUPPORTED_ENCODING);
        let mut calls = 0;
        assert_eq!(serve_str(&registry(), &mut calls, &doc).unwrap_err().code, fault::UNSUPPORTED_ENCODING);
    }
    // Served: the answer is UTF-8 whatever the request was in.
    let mut out = Vec::new();
    serve(&registry(), &mut 0, &be, &mut out);
    assert_eq!(decode_response(&out), Ok(Ok(Value::from("é 🦀 ☃"))));
}

#[test]
fn malformed_documents() {
    for (doc, detail) in [
        ("", "expected <methodCall>"),
        ("   ", "expected <methodCall>"),
        ("<?xml version=\"1.0\"?><methodCall><methodName>my.echo</method", "not well-formed"),
        ("<methodCall><methodName>x</methodName>", "expected <params> or </methodCall>"),
        ("<methodCall><methodName>x</methodName></methodCall><methodCall>", "expected the end of the document"),
        ("<methodCall><methodName>x</methodName></methodCall>trailing", "expected the end of the document"),
        ("junk<methodCall><methodName>x</methodName></methodCall>", "expected <methodCall>"),
        ("<methodCall><methodName></methodName></methodCall>", "empty <methodName>"),
        ("<methodCall><methodName>x</methodName><params><param></param></params></methodCall>", "expected <value>"),
        (
            "<methodCall><methodName>x</methodName><params><value>1</value></params></methodCall>",
            "expected <param> or </params>",
        ),
        (
            "<methodCall><methodName>x</methodName><params><param><value>1</wrong></param></params></methodCall>",
            "not well-formed",
        ),
        ("<methodCall><methodName>x</methodName></methodCall></extra>", "not well-formed"),
        ("<methodResponse><params/></methodResponse>", "expected <methodCall>"),
        ("<methodCall><methodName>a &foo; b</methodName></methodCall>", "unknown entity &foo;"),
        ("<methodCall><methodName>a & b</methodName></methodCall>", "not well-formed"),
        ("<methodCall><methodName>&#0;</methodName></methodCall>", "bad character reference"),
        ("<methodCall><methodName>&#1;</methodName></methodCall>", "U+0001 is not allowed"),
        ("<methodCall><methodName>a\u{1}</methodName></methodCall>", "U+0001 is not allowed"),
        ("<methodCall><methodName>&#xFFFE;</methodName></methodCall>", "U+FFFE is not allowed"),
        ("<methodCall><methodName>x</methodName><?xml version=\"1.0\"?></methodCall>", "XML declaration"),
    ] {
        let f = parse_fault(doc.as_bytes());
        assert!(f.full_message().contains(detail), "{doc:?}: {f}");
        assert!(f.full_message().contains("at byte"), "{doc:?}: {f}");
    }
}

#[test]
fn dtds_and_entities_are_refused() {
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><methodCall><methodName>&xxe;</methodName></methodCall>"#;
    let f = parse_fault(xxe.as_bytes());
    assert!(f.full_message().contains("DTDs"), "{f}");
    let mut laughs = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n");
    for i in 1..10 {
        laughs.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">\n",
            format!("&lol{};", if i == 1 { String::new() } else { (i - 1).to_string() }).repeat(10)
        ));
    }
    laughs.push_str(
        "]>\n<methodCall><methodName>x</methodName><params><param><value>&lol9;</value></param></params></methodCall>",
    );
    let f = parse_fault(laughs.as_bytes());
    assert!(f.full_message().contains("DTDs"), "{f}");
    // Without the DTD, the entity is simply unknown.
    let f = parse_fault(call_doc("<param><value>&lol9;</value></param>").as_bytes());
    assert!(f.full_message().contains("unknown entity &lol9;"), "{f}");
    // A DOCTYPE anywhere, not only in the prolog.
    parse_fault(b"<methodCall><!DOCTYPE x><methodName>x</methodName></methodCall>");
}

#[test]
fn deep_nesting_is_refused_without_recursion() {
    let nest = |levels: usize, open: &str, close: &str| {
        call_doc(&format!("<param><value>{}<nil/>{}</value></param>", open.repeat(levels), close.repeat(levels)))
    };
    let arrays = |n| nest(n, "<array><data><value>", "</value></data></array>");
    let structs = |n| nest(n, "<struct><member><name>m</name><value>", "</value></member></struct>");
    for doc in [arrays(MAX_DEPTH), structs(MAX_DEPTH)] {
        let (_, params) = decode_call(doc.as_bytes()).unwrap();
        round_trip(&params[0]);
    }
    for doc in [arrays(MAX_DEPTH + 1), structs(MAX_DEPTH + 1), arrays(10_000), structs(10_000)] {
        let f = parse_fault(doc.as_bytes());
        assert!(f.full_message().contains("nest deeper than 64 levels"), "{f}");
    }
    // Deep nesting of anything else stops at the first element out of place.
    let junk = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
    parse_fault(junk.as_bytes());
    let junk = call_doc(&format!("<param><value>{}</value></param>", "<x>".repeat(10_000)));
    parse_fault(junk.as_bytes());
}

#[test]
fn never_panics_on_prefixes_and_mutations() {
    let mut doc = Vec::new();
    let v = Value::structure([
        ("a", Value::from(vec![Value::Int(1), Value::Double(-1.5), Value::Nil])),
        ("b", Value::Base64(b"\x00\xff".to_vec())),
        ("c", Value::from("x<&>\r")),
        ("d", Value::DateTime("19980717T14:08:55".into())),
    ]);
    encode_call("m", &[v, Value::Bool(true)], &mut doc).unwrap();
    for end in 0..doc.len() {
        assert!(decode_call(&doc[..end]).is_err());
        let _ = decode_response(&doc[..end]);
    }
    for i in 0..doc.len() {
        for b in [b'<', b'>', b'/', b'&', b';', b'a', b' ', 0, 0xC3, 0xFF] {
            let mut m = doc.clone();
            m[i] = b;
            let _ = decode_call(&m);
        }
    }
}

#[test]
fn responses_and_faults() {
    let mut out = Vec::new();
    encode_response(&Ok(Value::from("hello")), &mut out);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><params><param><value><string>hello</string></value></param></params></methodResponse>"
    );
    assert_eq!(decode_response(&out), Ok(Ok(Value::from("hello"))));
    out.clear();
    encode_response(&Err(Fault::method_not_found()), &mut out);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>-32601</int></value></member><member><name>faultString</name><value><string>Method not found</string></value></member></struct></value></fault></methodResponse>"
    );
    assert_eq!(decode_response(&out), Ok(Err(Fault::method_not_found())));
    // As comodojo (PHP) writes them: lower-case encoding, no newline, `<nil />`.
    let php = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><methodResponse><fault><value><struct><member><name>faultCode</name><value><int>-32602</int></value></member><member><name>faultString</name><value><string>Invalid params</string></value></member></struct></value></fault></methodResponse>";
    assert_eq!(decode_response(php), Ok(Err(Fault::new(-32602, "Invalid params"))));
    let php = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><params><param><value><nil /></value></param></params></methodResponse>";
    assert_eq!(decode_response(php), Ok(Ok(Value::Nil)));
    assert_eq!(decode_response(b"<methodResponse><params></params></methodResponse>"), Ok(Ok(Value::Nil)));
    for bad in [
        &b"<methodResponse><params><param><value>1</value></param><param><value>2</value></param></params></methodResponse>"[..],
        b"<methodResponse><fault><value><string>oops</string></value></fault></methodResponse>",
        b"<methodResponse><fault><value><struct><member><name>faultCode</name><value><i8>99999999999</i8></value></member><member><name>faultString</name><value>x</value></member></struct></value></fault></methodResponse>",
        b"<methodCall><methodName>x</methodName></methodCall>",
    ] {
        assert_eq!(decode_response(bad).unwrap_err().code, fault::PARSE_ERROR);
    }
}

fn registry() -> Registry<u32> {
    let mut r = Registry::new();
    r.add(
        Method::new("my.echo", |mut p, calls: &mut u32| {
            *calls += 1;
            Ok(Value::String(p.take("message")?))
        })
        .description("I'm here to reply your data")
        .returns(Type::String)
        .param(Type::String, "message"),
    )
    .unwrap();
    r.add(Method::new("nan", |_, _| Ok(Value::Double(f64::NAN)))).unwrap();
    r
}

fn serve_str(r: &Registry<u32>, calls: &mut u32, doc: &str) -> Result<Value, Fault> {
    let mut out = Vec::new();
    serve(r, calls, doc.as_bytes(), &mut out);
    assert!(out.starts_with(DECLARATION));
    decode_response(&out).expect("the server's response decodes")
}

#[test]
fn serve_dispatches_and_answers_faults() {
    let r = registry();
    let mut calls = 0;
    let echo = "<?xml version=\"1.0\"?>\n<methodCall><methodName>my.echo</methodName><params><param><value><string>hello</string></value></param></params></methodCall>";
    assert_eq!(serve_str(&r, &mut calls, echo), Ok(Value::from("hello")));
    assert_eq!(calls, 1);
    let f = serve_str(&r, &mut calls, "<methodCall><methodName>my.echo</methodName><params><param><value><int>5</int></value></param></params></methodCall>").unwrap_err();
    assert_eq!(f.code, fault::INVALID_PARAMS);
    assert_eq!(f.message, "Invalid params: my.echo expects (string message) -> string");
    let f = serve_str(&r, &mut calls, "<?xml version=\"1.0\"?><methodCall><methodName>my.echo</method").unwrap_err();
    assert_eq!(f.code, fault::PARSE_ERROR);
    assert!(f.message.starts_with("Parse error: not well-formed XML"), "{f}");
    let f = serve_str(&r, &mut calls, "<methodCall><methodName>nan</methodName></methodCall>").unwrap_err();
    assert_eq!(f.code, fault::APPLICATION_ERROR);
    assert_eq!(calls, 1);
}

#[test]
fn multicall_through_the_registry() {
    let r = registry();
    let mut calls = 0;
    let entry = |name: &str, params: &str| {
        format!("<value><struct><member><name>methodName</name><value>{name}</value></member><member><name>params</name><value><array><data>{params}</data></array></value></member></struct></value>")
    };
    let doc = call_doc(&format!(
        "<param><value><array><data>{}{}{}{}</data></array></value></param>",
        entry("my.echo", "<value>a</value>"),
        entry("no.such", ""),
        entry("system.multicall", ""),
        entry("my.echo", "<value><int>1</int></value>"),
    ))
    .replace("<methodName>t</methodName>", "<methodName>system.multicall</methodName>");
    let out = serve_str(&r, &mut calls, &doc).unwrap();
    let Value::Array(items) = out else { panic!("{out:?}") };
    assert_eq!(items.len(), 4);
    assert_eq!(items[0], Value::from(vec!["a"]));
    assert_eq!(items[1].member("faultCode"), Some(&Value::Int(-32601)));
    assert_eq!(items[1].member("faultString"), Some(&Value::from("Method not found")));
    assert_eq!(items[2].member("faultCode"), Some(&Value::Int(-31001)));
    assert_eq!(items[3].member("faultCode"), Some(&Value::Int(-32602)));
    assert_eq!(calls, 1);
}
