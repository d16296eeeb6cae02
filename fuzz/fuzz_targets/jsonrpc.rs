//! Any bytes through the JSON-RPC server: no panic, and any answer is valid JSON.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tomte_rpc::{jsonrpc, Served};

fuzz_target!(|data: &[u8]| {
    let registry = common::registry();
    let mut out = Vec::new();
    if jsonrpc::serve(&registry, &mut (), data, &mut out) == Served::Answered {
        serde_json::from_slice::<serde_json::Value>(&out).expect("the server writes valid JSON");
    }
});
