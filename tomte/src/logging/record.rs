//! A worker's `log` records, on their way to the daemon through the worker's stderr pipe: one
//! line, the byte `0x1e` (ASCII record separator, which no text starts with) and a JSON object
//! `{"l":LEVEL,"t":TARGET,"m":MESSAGE,"f":{FIELDS}}`. Any other line is the worker's raw
//! output.

use log::Level;
use serde_json::{Map, Value};

use super::Fields;

/// The first byte of a record line.
const MARK: u8 = 0x1e;

/// A record's message is cut past this many bytes, as a raw line is.
const MAX_MESSAGE: usize = 4 << 10;

/// The longest record line the daemon takes (a message cut to [`MAX_MESSAGE`] fits, escapes
/// and fields included, unless its fields are huge; a longer line is logged as raw output).
pub(crate) const MAX_RECORD: usize = 32 << 10;

/// A record, read back.
pub(super) struct Decoded {
    pub(super) level: Level,
    pub(super) target: String,
    pub(super) message: String,
    pub(super) fields: Fields,
}

/// Appends the record line (with its `\n`).
pub(super) fn encode(out: &mut Vec<u8>, level: Level, target: &str, message: &str, fields: &Fields) {
    #[derive(serde::Serialize)]
    struct Wire<'a> {
        l: &'a str,
        t: &'a str,
        m: &'a str,
        #[serde(skip_serializing_if = "Map::is_empty")]
        f: &'a Map<String, Value>,
    }
    let mut cut = String::new();
    let message = if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        cut.push_str(&message[..end]);
        cut.push_str(" [cut]");
        &cut
    } else {
        message
    };
    out.push(MARK);
    let _ = serde_json::to_writer(&mut *out, &Wire { l: level.as_str(), t: target, m: message, f: &fields.0 });
    out.push(b'\n');
}

/// The record in `line` (without its `\n`), if it is one.
pub(super) fn decode(line: &[u8]) -> Option<Decoded> {
    #[derive(serde::Deserialize)]
    struct Wire {
        l: String,
        t: String,
        m: String,
        #[serde(default)]
        f: Map<String, Value>,
    }
    let json = line.strip_prefix(&[MARK])?;
    let w: Wire = serde_json::from_slice(json).ok()?;
    Some(Decoded { level: w.l.parse().ok()?, target: w.t, message: w.m, fields: Fields(w.f) })
}

/// Where a record starts in `line` after raw output that had no newline of its own (an
/// `eprint!` just before a `log::info!`): the offset and the record.
pub(super) fn find(line: &[u8]) -> Option<(usize, Decoded)> {
    let at = memchr::memrchr(MARK, line).filter(|&at| at > 0)?;
    decode(&line[at..]).map(|r| (at, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_goes_through_and_raw_lines_are_not_records() {
        let mut f = Map::new();
        f.insert("k".into(), Value::from(1));
        let mut line = Vec::new();
        encode(&mut line, Level::Debug, "pool", "two\nlines", &Fields(f));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        let r = decode(line.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!((r.level, r.target.as_str(), r.message.as_str()), (Level::Debug, "pool", "two\nlines"));
        assert_eq!(r.fields.0["k"], 1);
        assert!(decode(b"hello from alpha").is_none());
        assert!(decode(b"\x1enot json").is_none());
        let mut joined = b"no newline: ".to_vec();
        joined.extend_from_slice(&line);
        let (at, r) = find(joined.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!((at, r.message.as_str()), (12, "two\nlines"));
        assert!(find(&line).is_none(), "a record alone is decoded, not found");
        let mut line = Vec::new();
        encode(&mut line, Level::Info, "t", &"é".repeat(5000), &Fields::default());
        let r = decode(line.strip_suffix(b"\n").unwrap()).unwrap();
        assert!(r.message.len() <= MAX_MESSAGE + 6 && r.message.ends_with(" [cut]"));
        assert!(line.len() < MAX_RECORD);
    }
}
