//! Replays every file of the fuzz corpus (`fuzz/corpus/TARGET/`: curated seeds and the
//! inputs that once found a bug) through the same property checks the fuzz targets run, so a
//! plain `cargo test` on stable keeps every finding fixed.

use std::path::PathBuf;

use tomte_rpc::fuzzing;

fn replay(target: &str, check: fn(&[u8])) {
    fuzzing::replay(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target), check);
}

#[test]
fn jsonrpc_corpus() {
    replay("jsonrpc", fuzzing::check_jsonrpc);
}

#[test]
fn xmlrpc_corpus() {
    replay("xmlrpc", fuzzing::check_xmlrpc);
}

#[test]
fn php_corpus() {
    replay("php", fuzzing::check_php);
}

#[test]
fn comodojo_corpus() {
    replay("comodojo", fuzzing::check_comodojo);
}
