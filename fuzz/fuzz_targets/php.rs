//! Any bytes through the PHP-serialize parser: no panic, and what parses serializes back to
//! bytes that parse to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tomte_rpc::php;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = php::parse(data) {
        let mut out = Vec::new();
        php::serialize(&v, &mut out);
        let again = php::parse(&out).expect("our own serialization parses");
        assert_eq!(format!("{v:?}"), format!("{again:?}"));
    }
});
