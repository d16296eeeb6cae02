//! `check_http_head` of `tomte/tests/fuzz_checks/mod.rs` on any bytes; `tomte/tests/fuzz_corpus.rs`
//! replays the corpus through the same file on stable.
#![no_main]

#[path = "../../tomte/tests/fuzz_checks/mod.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| checks::check_http_head(data));
