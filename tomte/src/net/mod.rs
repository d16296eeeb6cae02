//! Transports: addresses, listeners, and connections as non-blocking state machines that find
//! message boundaries (NDJSON lines, HTTP/1.1 requests, comodojo frames) and hand complete
//! messages to a [`Service`]. Nothing here knows about methods.

pub mod addr;
mod conn;
mod http;
pub mod listener;

use std::time::Duration;

pub use addr::{Address, AddressError, Dialect, Transport};
pub use conn::{Conn, Drive};
pub use listener::{BindError, Listener, Stream};

/// What answers complete messages. Each method appends its answer to `out`.
pub trait Service {
    /// One JSON-RPC message (request or batch); false when there is nothing to send back.
    fn json(&mut self, request: &[u8], out: &mut Vec<u8>) -> bool;
    /// One XML-RPC `methodCall`; false when this service does not speak XML-RPC.
    fn xml(&mut self, request: &[u8], out: &mut Vec<u8>) -> bool;
    /// One comodojo frame (without its line terminator); appends a whole response frame.
    fn comodojo(&mut self, frame: &[u8], out: &mut Vec<u8>);
    /// The greeter a comodojo connection receives on accept.
    fn comodojo_greeter(&mut self, out: &mut Vec<u8>);
}

/// Per-connection limits. Past one, the client at fault gets an error and its connection is
/// closed; nothing else is affected.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest message (request line, HTTP body or comodojo frame) accepted.
    pub max_message: usize,
    /// Connections open at once; more are refused with an error.
    pub max_connections: usize,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_message: 16 << 20, max_connections: 1024, idle_timeout: Duration::from_secs(300) }
    }
}
