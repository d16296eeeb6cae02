//! Replays every file of the fuzz corpus (`fuzz/corpus/TARGET/`: curated seeds and the
//! inputs that once found a bug) through the same property checks the fuzz targets run, so a
//! plain `cargo test` on stable keeps every finding fixed.

use std::path::PathBuf;

use tomte_rpc::fuzzing;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{}: only {} inputs", dir.display(), files.len());
    for file in files {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
            panic!("{} fails its check: {:?}", file.display(), panic.downcast_ref::<String>());
        }
    }
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
