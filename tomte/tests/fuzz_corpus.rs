//! Replays the corpus of tomte's own fuzz targets (`fuzz/corpus/{http_head,wire_frame,
//! address}/`) through the checks those targets run (`fuzz_checks/mod.rs`, the same file), so
//! a plain `cargo test` on stable keeps every finding fixed.

mod fuzz_checks;

use std::path::PathBuf;

use tomte_rpc::fuzzing::replay;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

#[test]
fn http_head_corpus() {
    replay(&corpus("http_head"), fuzz_checks::check_http_head);
}

#[test]
fn wire_frame_corpus() {
    replay(&corpus("wire_frame"), fuzz_checks::check_wire_frame);
}

#[test]
fn address_corpus() {
    replay(&corpus("address"), fuzz_checks::check_address);
}
