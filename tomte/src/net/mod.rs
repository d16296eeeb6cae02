//! Transports: addresses, listeners, and connections as non-blocking state machines that find
//! message boundaries (NDJSON lines, HTTP/1.1 requests, comodojo frames) and hand complete
//! messages to a [`Service`]. Nothing here knows about methods.

pub mod addr;
mod conn;
pub(crate) mod http;
pub mod listener;

use std::time::Duration;

pub use tomte_rpc::Served;

pub use addr::{Address, AddressError, Dialect, Transport};
pub use conn::{Conn, Drive};
pub use listener::{BindError, Listener, Stream};

/// What answers complete messages. Each method appends its answer to `out`, or says that the
/// answer comes later ([`Served::Later`]): the connection then waits for
/// [`Conn::complete`] before it serves anything else, so answers keep their order.
pub trait Service {
    /// One JSON-RPC message (request or batch).
    fn json(&mut self, request: &[u8], out: &mut Vec<u8>) -> Served;
    /// One XML-RPC `methodCall`.
    fn xml(&mut self, request: &[u8], out: &mut Vec<u8>) -> Served;
    /// One comodojo frame (without its line terminator); appends a whole response frame.
    fn comodojo(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Served;
    /// The greeter a comodojo connection receives on accept.
    fn comodojo_greeter(&mut self, out: &mut Vec<u8>);
    /// The ticket of the answer deferred by the message just served, if one was.
    fn take_ticket(&mut self) -> Option<u64>;
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
