//! Requests written by Python's `xmlrpc.client` (bytes from a tool nobody here wrote), in the
//! encodings it offers. Skipped, saying so, where there is no `python3`.

use std::process::Command;

use tomte_rpc::xmlrpc;
use tomte_rpc::Value;

/// What `python3 -c SCRIPT` writes to stdout, or `None` without a python3.
fn python(script: &str) -> Option<Vec<u8>> {
    let out = match Command::new("python3").arg("-c").arg(script).output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: no python3 ({e})");
            return None;
        }
    };
    assert!(out.status.success(), "python3 failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(out.stdout)
}

#[test]
fn calls_python_writes_in_utf8_utf16_and_latin1() {
    for (encoding, codec) in
        [("utf-8", "utf-8"), ("utf-16", "utf-16"), ("utf-16-le", "utf-16-le"), ("iso-8859-1", "latin-1")]
    {
        let script = format!(
            "import sys, xmlrpc.client; sys.stdout.buffer.write(xmlrpc.client.dumps(('é', 'caf\\u00e9 ok', 42, {{'k': [1.5, True]}}), 'my.echo', encoding='{encoding}').encode('{codec}'))"
        );
        let Some(body) = python(&script) else { return };
        let (name, params) = xmlrpc::decode_call(&body)
            .unwrap_or_else(|f| panic!("{encoding}: {f}: {}", String::from_utf8_lossy(&body)));
        assert_eq!(name, "my.echo", "{encoding}");
        assert_eq!(
            params,
            vec![
                Value::from("é"),
                Value::from("café ok"),
                Value::Int(42),
                Value::structure([("k", Value::from(vec![Value::Double(1.5), Value::Bool(true)]))]),
            ],
            "{encoding}"
        );
    }
}
