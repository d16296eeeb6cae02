//! Any bytes through the XML-RPC decoder and server: no panic, and a decoded call re-encodes
//! to something that decodes to the same call.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tomte_rpc::xmlrpc;

fuzz_target!(|data: &[u8]| {
    if let Ok((name, params)) = xmlrpc::decode_call(data) {
        let mut again = Vec::new();
        if xmlrpc::encode_call(&name, &params, &mut again).is_ok() {
            let (name2, params2) = xmlrpc::decode_call(&again).expect("our own encoding decodes");
            assert_eq!(name, name2);
            assert_eq!(format!("{params:?}"), format!("{params2:?}"));
        }
    }
    let mut out = Vec::new();
    let _ = xmlrpc::serve(&common::registry(), &mut (), data, &mut out);
});
