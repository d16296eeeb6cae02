//! The xmlrpc properties of `tomte_rpc::fuzzing::check_xmlrpc` on any bytes (no panic, round trip,
//! nesting and size bounds); `tomte-rpc/tests/fuzz_corpus.rs` replays the corpus through the
//! same check on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tomte_rpc::fuzzing::check_xmlrpc(data));
