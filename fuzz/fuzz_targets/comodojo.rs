//! Any line through the comodojo frame server: no panic, and the answer is one frame.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tomte_rpc::comodojo;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let _ = comodojo::serve(&common::registry(), &mut (), data, &mut out);
    if !out.is_empty() {
        let line = out.strip_suffix(b"\r\n").expect("a frame ends with CRLF");
        comodojo::decode_response(line).expect("our own frame decodes");
    }
});
