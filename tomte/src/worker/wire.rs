//! The frames daemon and worker exchange over their channel: a tag byte, then the body.
//!
//! | tag | direction | body |
//! |-----|-----------|------|
//! | `C` | daemon → worker | a command word (`pause`, `stop`, any custom word) |
//! | `Q` | daemon → worker | a request: ticket (8 bytes, little endian), then a JSON value |
//! | `A` | worker → daemon | an answer: ticket, then a JSON value |
//! | `F` | worker → daemon | a fault: ticket, then JSON `{code, message}` |
//! | `U` | worker → daemon | a message up, unasked: a JSON value |

use tomte_rpc::{Fault, Value};

fn ticketed(body: &[u8]) -> Option<(u64, &[u8])> {
    let (t, rest) = body.split_at_checked(8)?;
    Some((u64::from_le_bytes(t.try_into().ok()?), rest))
}

/// One decoded frame.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Command(String),
    Request(u64, Value),
    Answer(u64, Result<Value, Fault>),
    Up(Value),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct WireFault {
    code: i32,
    message: String,
    #[serde(default)]
    data: Option<Value>,
}

impl Frame {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Frame::Command(word) => {
                out.push(b'C');
                out.extend_from_slice(word.as_bytes());
            }
            Frame::Request(ticket, v) => {
                out.push(b'Q');
                out.extend_from_slice(&ticket.to_le_bytes());
                serde_json::to_writer(&mut *out, v).expect("in memory");
            }
            Frame::Answer(ticket, Ok(v)) => {
                out.push(b'A');
                out.extend_from_slice(&ticket.to_le_bytes());
                serde_json::to_writer(&mut *out, v).expect("in memory");
            }
            Frame::Answer(ticket, Err(f)) => {
                out.push(b'F');
                out.extend_from_slice(&ticket.to_le_bytes());
                let w = WireFault { code: f.code, message: f.message.clone(), data: f.data.clone() };
                serde_json::to_writer(&mut *out, &w).expect("in memory");
            }
            Frame::Up(v) => {
                out.push(b'U');
                serde_json::to_writer(&mut *out, v).expect("in memory");
            }
        }
    }

    /// Decodes a frame; `None` for anything malformed (the peer is then treated as broken).
    pub fn decode(bytes: &[u8]) -> Option<Frame> {
        let (&tag, body) = bytes.split_first()?;
        Some(match tag {
            b'C' => Frame::Command(String::from_utf8(body.to_vec()).ok()?),
            b'Q' => {
                let (t, rest) = ticketed(body)?;
                Frame::Request(t, serde_json::from_slice(rest).ok()?)
            }
            b'A' => {
                let (t, rest) = ticketed(body)?;
                Frame::Answer(t, Ok(serde_json::from_slice(rest).ok()?))
            }
            b'F' => {
                let (t, rest) = ticketed(body)?;
                let w: WireFault = serde_json::from_slice(rest).ok()?;
                Frame::Answer(t, Err(Fault { code: w.code, message: w.message, data: w.data }))
            }
            b'U' => Frame::Up(serde_json::from_slice(body).ok()?),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        for f in [
            Frame::Command("pause".into()),
            Frame::Request(7, Value::from("count")),
            Frame::Answer(7, Ok(Value::Int(42))),
            Frame::Answer(8, Err(Fault::internal("boom"))),
            Frame::Up(Value::from(vec![1, 2])),
        ] {
            f.encode(&mut buf);
            assert_eq!(Frame::decode(&buf), Some(f));
        }
        assert_eq!(Frame::decode(b"Qshort"), None);
        assert_eq!(Frame::decode(b""), None);
        assert_eq!(Frame::decode(b"Z"), None);
    }
}
