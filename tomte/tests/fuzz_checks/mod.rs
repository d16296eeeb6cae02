//! The properties of tomte's own parsers, checked on one input: shared, as this one file, by
//! the fuzz targets (`fuzz/fuzz_targets/{http_head,wire_frame,address}.rs` include it by
//! path) and by `tests/fuzz_corpus.rs`, which replays their corpus on stable. Each check
//! panics when a property fails.

use std::net::IpAddr;

use tomte::_fuzz::{parse_head, Frame, Parsed};
use tomte::net::Address;
use tomte::Value;
use tomte_rpc::fuzzing::{measure, FOOTPRINT_PER_BYTE, SLACK};

/// The HTTP head parser: a complete head parses the same alone and followed by anything, and
/// is incomplete cut anywhere before its end; an incomplete input stays incomplete when cut.
pub fn check_http_head(data: &[u8]) {
    match parse_head(data) {
        Parsed::Head(head) => {
            let n = head.head_len;
            assert!(0 < n && n <= data.len(), "head_len {n} of {} bytes", data.len());
            let alone = match parse_head(&data[..n]) {
                Parsed::Head(h) => h,
                _ => panic!("the head alone ({n} bytes) does not parse"),
            };
            assert_eq!(format!("{alone:?}"), format!("{head:?}"));
            for cut in [n - 1, n / 2, 0] {
                assert!(matches!(parse_head(&data[..cut]), Parsed::Partial), "{cut} bytes of a {n}-byte head");
            }
        }
        Parsed::Partial => {
            let cut = data.len() / 2;
            assert!(matches!(parse_head(&data[..cut]), Parsed::Partial), "half of an incomplete head");
        }
        Parsed::Invalid(why) => assert!(!why.is_empty()),
    }
}

/// The worker channel's frames (binary, `worker::wire`): what decodes is within the channel's
/// nesting bound (`Frame::MAX_DEPTH`) and the size bound of every decoder, and re-encodes to
/// exactly the input (the encoding has one spelling per frame), which decodes again. Bytes are
/// compared rather than frames: a double may be a NaN, which `==` never holds for.
pub fn check_wire_frame(data: &[u8]) {
    let Some(frame) = Frame::decode(data) else { return };
    let values: Vec<&Value> = match &frame {
        Frame::Command(_) | Frame::Status => vec![],
        Frame::Request(_, v) | Frame::Up(v) | Frame::Answer(_, Ok(v)) => vec![v],
        Frame::Answer(_, Err(f)) => f.data.iter().collect(),
    };
    for v in values {
        let (depth, heap) = measure(v);
        assert!(depth <= Frame::MAX_DEPTH, "{depth} levels deep");
        assert!(heap <= FOOTPRINT_PER_BYTE * data.len() + SLACK, "{heap} heap bytes from {} bytes", data.len());
    }
    let mut bytes = Vec::new();
    frame.encode(&mut bytes);
    assert_eq!(bytes, data, "a frame that decodes re-encodes to other bytes");
    let again = Frame::decode(&bytes).expect("our own frame decodes");
    let mut twice = Vec::new();
    again.encode(&mut twice);
    assert_eq!(twice, bytes);
}

/// Addresses: what parses displays as text that parses back to the same address (and the same
/// text). Inputs whose host would need a DNS lookup are skipped: a fuzzer must not query a
/// resolver, and what a name resolves to is not the parser's property.
pub fn check_address(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if needs_resolver(text) {
        return;
    }
    let Ok(address) = text.parse::<Address>() else { return };
    let shown = address.to_string();
    let back: Address = shown.parse().unwrap_or_else(|e| panic!("{text:?} displays as {shown:?}: {e}"));
    assert_eq!(back, address, "{text:?} displays as {shown:?}");
    assert_eq!(back.to_string(), shown);
}

/// Whether parsing `text` would resolve a host name (anything but an IP literal or nothing).
fn needs_resolver(text: &str) -> bool {
    let rest = text.strip_prefix("comodojo+").unwrap_or(text);
    let Some(hostport) = rest.strip_prefix("tcp://") else { return false };
    let hostport = hostport.trim_end_matches('/');
    let host = match hostport.strip_prefix('[') {
        Some(inner) => inner.split(']').next().unwrap_or(inner),
        None => hostport.rsplit_once(':').map_or(hostport, |(h, _)| h),
    };
    !(host.is_empty() || host.parse::<IpAddr>().is_ok())
}
