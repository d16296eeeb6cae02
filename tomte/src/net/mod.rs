//! Transports: addresses, listeners, and connections as non-blocking state machines that find
//! message boundaries (NDJSON lines, HTTP/1.1 requests, comodojo frames) and hand complete
//! messages to a [`Service`]. Nothing here knows about methods.

pub mod addr;
mod conn;
pub(crate) mod http;
pub mod listener;
mod peer;
pub mod tls;
mod users;

use std::time::Duration;

pub use tomte_rpc::Served;

pub use addr::{Address, AddressError, Dialect, Transport};
pub(crate) use conn::MAX_CARRIED;
pub use conn::{Budget, Conn, Drive};
pub use listener::{BindError, HostRule, Listener, Stream};
pub use peer::{Peer, PeerKey};
pub use tls::{TlsError, TlsFiles};
pub(crate) use users::gid_of;
pub(crate) use users::{account, group_name, names};

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
    /// Starts driving the future of an answer that comes later ([`Served::Later`]); returns
    /// the task's key. The loop completes the connection with its output.
    fn spawn(&mut self, future: tomte_rpc::Later) -> usize;
    /// A token's secret the client presented (HTTP `Authorization: Bearer`): whether it names
    /// a token, after which the connection's identity is that token's.
    fn authenticate(&mut self, secret: &[u8]) -> bool;
    /// An HTTP request that presents no token: the connection's identity is its own again
    /// (a token only holds for the request that presents it).
    fn unauthenticate(&mut self);
    /// Whether the message just served presented a wrong token (then the connection is
    /// penalized: its answer waits a fixed delay, and it closes).
    fn take_auth_failure(&mut self) -> bool;
    /// One HTTP `GET`: appends the whole response to `out`; true when the response is an event
    /// stream that stays open (the connection then serves nothing else).
    fn get(&mut self, request: &Get<'_>, out: &mut Vec<u8>) -> bool;
    /// Says whether the messages served next arrive on a connection the daemon can push
    /// events on (an NDJSON one), which `daemon.subscribe` needs.
    fn pushable(&mut self, yes: bool);
}

/// An HTTP `GET` request, as a [`Service`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Get<'a> {
    /// The request target: path and query (`/events?pattern=app.*`).
    pub target: &'a str,
    /// The `Accept` header, if sent.
    pub accept: Option<&'a str>,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
}

/// What became of an event pushed to a subscriber's connection ([`Conn::push`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued behind what was already unsent.
    Queued,
    /// Queued on a connection that had nothing unsent: it needs a drive to go out.
    First,
    /// Not queued: the unsent events would pass the cap. The subscriber is to be dropped.
    Over,
    /// Not queued: the daemon's output budget is spent and this subscriber is already behind
    /// (64 kB or more unsent). The subscriber is to be dropped.
    OverBudget,
}

/// Limits on what clients may hold of the daemon. Past one, the client at fault gets an error
/// and its connection is closed (or refused); the daemon and every other client are unaffected.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest message (request line, HTTP body or comodojo frame) accepted.
    pub max_message: usize,
    /// Connections open at once, over all listeners.
    pub max_connections: usize,
    /// Connections open at once from one peer: one IP address on TCP, one uid on unix sockets.
    pub max_per_peer: usize,
    /// Connections kept for each listener whatever the others do, so that a flood on one (TCP)
    /// cannot lock the others (the owner's unix socket) out. Only with several listeners.
    pub listener_reserve: usize,
    /// A connection that has not completed a request for this long is closed.
    pub idle_timeout: Duration,
    /// From a message's first byte to its last (an HTTP head and body, a line, a frame): a
    /// message that takes longer, beyond what [`Limits::min_rate`] allows, closes the connection.
    pub request_timeout: Duration,
    /// Bytes per second a message may arrive at once it takes longer than the request timeout:
    /// a large upload gets `size / min_rate` more time, a drip does not.
    pub min_rate: usize,
    /// Memory all connections together may hold for unfinished requests, and as much again for
    /// unsent answers. A connection whose message would take the input past it is refused with
    /// an error; while the unsent answers pass it, connections with answers still unsent are
    /// served nothing more until their clients read.
    pub max_buffered: usize,
    /// Answers a client has not read, past which the daemon serves it nothing more until it reads.
    pub max_unsent: usize,
    /// How long a stopping (or upgraded) daemon goes on serving what it had started: requests
    /// already received, answers owed by workers and async handlers, answers unsent. What is
    /// left then is cut short, and logged.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message: 16 << 20,
            max_connections: 1024,
            max_per_peer: 256,
            listener_reserve: 64,
            idle_timeout: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
            min_rate: 64 << 10,
            max_buffered: 256 << 20,
            max_unsent: 4 << 20,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

impl Limits {
    /// The limits as `daemon.status` reports them (durations in seconds).
    pub fn to_value(&self) -> tomte_rpc::Value {
        use tomte_rpc::Value;
        Value::structure([
            ("max_message", Value::from(self.max_message)),
            ("max_connections", Value::from(self.max_connections)),
            ("max_per_peer", Value::from(self.max_per_peer)),
            ("listener_reserve", Value::from(self.listener_reserve)),
            ("idle_timeout", Value::Double(self.idle_timeout.as_secs_f64())),
            ("request_timeout", Value::Double(self.request_timeout.as_secs_f64())),
            ("min_rate", Value::from(self.min_rate)),
            ("max_buffered", Value::from(self.max_buffered)),
            ("max_unsent", Value::from(self.max_unsent)),
            ("drain_timeout", Value::Double(self.drain_timeout.as_secs_f64())),
        ])
    }
}
