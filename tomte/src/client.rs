//! A blocking client for tomte daemons, used by `tomtectl`, tests and benchmarks.
//!
//! One [`Client`] is one connection speaking one [`Protocol`]:
//!
//! | protocol | on the wire | listener |
//! | --- | --- | --- |
//! | [`Protocol::Json`] | NDJSON JSON-RPC 2.0: one request line, one answer line | `unix://`, `tcp://` |
//! | [`Protocol::Xml`] | XML-RPC over HTTP/1.1: `POST /`, `Content-Type: text/xml`, keep-alive | `unix://`, `tcp://` |
//! | [`Protocol::ComodojoJson`] | comodojo/daemon frames carrying JSON-RPC (`application/json`) | `comodojo+…` |
//! | [`Protocol::ComodojoXml`] | comodojo/daemon frames carrying XML-RPC (`text/xml`) | `comodojo+…` |
//!
//! [`Client::connect`] picks the protocol from the address (JSON for a native listener,
//! comodojo-framed JSON for a `comodojo+` one); [`Client::connect_with`] takes it explicitly. A
//! comodojo protocol may be spoken to an address written without `comodojo+`: the address then
//! names a comodojo listener by its bare transport.
//!
//! A `tls://` (or `comodojo+tls://`) address needs [`Client::connect_tls`], with the CA that
//! signed the daemon's certificate and, for mutual TLS, the client's own certificate and key
//! ([`ClientFiles`]). The certificate is checked against the host of the address (an IP
//! address or a DNS name, as written).
//!
//! On a unix socket, [`Client::connect_checked`] first asks the kernel who serves the socket
//! (`SO_PEERCRED`: the uid and pid of the process that listens) and sends nothing unless that
//! user is one the [`Trust`] allows — by default root and the user running the client. Anyone
//! who can write to the socket's directory could otherwise listen there first, and read what
//! the client sends and answer what it likes. (TCP says nothing of the peer's user: the check
//! does not apply there.) `tomtectl` always connects this way.
//!
//! Beyond calls, a native listener also serves two things this client reads:
//!
//! * **Notifications** the daemon pushes on an NDJSON connection once it has subscribed
//!   ([`Client::subscribe`]): `daemon.event` for each matching event, and `daemon.dropped` as a
//!   last word when the daemon gives up on a subscriber that did not keep up.
//!   [`Client::next_notification`] waits for the next one; a notification that arrives while a
//!   call waits for its answer is kept for it, in order.
//! * **HTTP `GET`** routes (`/metrics`, `/livez`, `/readyz`): [`Client::get`] on a connection
//!   that has not sent anything else yet (the listener tells NDJSON from HTTP by the first byte
//!   of a connection), answered whatever the status, the body whole (by length or chunked).
//!
//! [`Client::call`] answers `Ok(Ok(value))` for a result and `Ok(Err(fault))` for an RPC error;
//! `Err(ClientError)` means no answer could be had. Two cases deserve a word:
//!
//! * XML-RPC has no named parameters: calling with [`Args::Named`] under [`Protocol::Xml`] or
//!   [`Protocol::ComodojoXml`] is a [`ClientError::Encode`], and nothing is sent.
//! * A comodojo response with `status: false` means the server did not run the call: it could
//!   not read the frame (a tomte daemon), or its RPC layer threw (a PHP comodojo daemon). The
//!   server answered, so it is returned as a fault: code −32300 (transport error, as the
//!   fault-code interoperability spec names it), message "Transport error", and the server's text
//!   as the fault's data (so [`Fault::full_message`] shows it).
//!
//! A connection kept across a daemon's upgrade or restart may be closed under it: an upgrade
//! hands idle connections to the new process, but closes those holding a TLS session, a token
//! or a subscription once idle. A call the daemon closes the connection on before any byte of
//! its answer arrived, on a connection that had already answered an earlier call, is sent once
//! more on a new connection (see [`Client::call`] for why that is safe; a subscribed connection
//! is not replaced).

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read as _, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use tomte_rpc::{comodojo, fault, jsonrpc, xmlrpc, Args, Fault, Value};

pub use crate::net::tls::ClientFiles;
use crate::net::tls::{self, TlsError};
use crate::net::{Address, Dialect, Transport};

/// How long [`Client::connect_with`] waits for a comodojo greeter. A native listener sends
/// none, so a wrong address fails with [`ClientError::Greeter`] instead of hanging.
pub const GREETER_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest HTTP response head read.
const MAX_HEAD: usize = 64 << 10;

/// The longest HTTP body read without a `Content-Length` (chunked, or to the end of the
/// connection); a scrape of a large daemon is a few hundred kB.
const MAX_BODY: u64 = 64 << 20;

/// A JSON-RPC notification the daemon pushed: a request without an id (see
/// [`Client::next_notification`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// Its method: `daemon.event`, `daemon.dropped`.
    pub method: String,
    /// Its params (`Nil` when it has none).
    pub params: Value,
}

/// The answer to an HTTP `GET` ([`Client::get`]), whatever its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code (200, 503, …).
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The headers, names in lower case, in the order they came.
    pub headers: Vec<(String, String)>,
    /// The body, chunked transfer coding removed.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The value of header `name` (case-insensitive), the first if repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What a [`Client`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Newline-delimited JSON-RPC 2.0, on a native listener.
    Json,
    /// XML-RPC over HTTP/1.1 with keep-alive, on a native listener.
    Xml,
    /// comodojo/daemon framing carrying JSON-RPC 2.0, on a `comodojo+` listener.
    ComodojoJson,
    /// comodojo/daemon framing carrying XML-RPC, on a `comodojo+` listener.
    ComodojoXml,
}

impl Protocol {
    /// The protocol [`Client::connect`] uses for `address`: JSON, in comodojo frames when the
    /// address is a `comodojo+` one.
    pub fn for_address(address: &Address) -> Protocol {
        match address.dialect {
            Dialect::Native => Protocol::Json,
            Dialect::Comodojo => Protocol::ComodojoJson,
        }
    }

    /// Whether this protocol uses comodojo's framing.
    pub fn is_comodojo(self) -> bool {
        matches!(self, Protocol::ComodojoJson | Protocol::ComodojoXml)
    }

    /// Whether this protocol carries XML-RPC.
    pub fn is_xml(self) -> bool {
        matches!(self, Protocol::Xml | Protocol::ComodojoXml)
    }
}

/// Why a call did not get an answer (an RPC error is an answer: see [`Client::call`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection could not be made, a TLS handshake included.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The daemon's address.
        addr: String,
        /// Why it failed.
        source: io::Error,
    },
    /// Sending the call or reading its answer failed, or took longer than the timeout (see
    /// [`Client::set_timeout`]).
    #[error("connection to {addr} failed: {source}")]
    Io {
        /// The daemon's address.
        addr: String,
        /// Why it failed.
        source: io::Error,
    },
    /// The connection closed before a whole answer came.
    #[error("{addr} closed the connection without answering")]
    Closed {
        /// The daemon's address.
        addr: String,
    },
    /// The answer could not be read (malformed, or in a form this client does not take), or
    /// answers another call.
    #[error("{addr} answered something unreadable: {why}")]
    Protocol {
        /// The daemon's address.
        addr: String,
        /// What is wrong with the answer.
        why: String,
    },
    /// A comodojo listener's greeter was missing or wrong.
    #[error("{addr} did not greet as a comodojo/daemon 1.0 listener: {why}")]
    Greeter {
        /// The daemon's address.
        addr: String,
        /// What was wrong with it.
        why: String,
    },
    /// The daemon answered the HTTP request with an error status (413, 400, …).
    #[error("{addr} refused the request: HTTP {status} {reason}{}", if text.is_empty() { String::new() } else { format!(" ({text})") })]
    Http {
        /// The daemon's address.
        addr: String,
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
        /// The start of the body (200 characters at most), trimmed.
        text: String,
    },
    /// The call cannot be written in the protocol chosen; nothing was sent.
    #[error("cannot send this call to {addr}: {why}")]
    Encode {
        /// The daemon's address.
        addr: String,
        /// Why it cannot.
        why: String,
    },
    /// The unix socket is served by a user the [`Trust`] does not allow; nothing was sent.
    #[error("refusing to talk to {addr}: it is served by uid {uid} (pid {pid}), who is not trusted (trusted uids: {trusted})")]
    Untrusted {
        /// The daemon's address.
        addr: String,
        /// The uid of the process serving the socket.
        uid: u32,
        /// Its pid.
        pid: i32,
        /// The uids the trust allows, as a list (`0, 1000`).
        trusted: String,
    },
    /// The TLS files could not be used; nothing was sent.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A `tls://` address was given to a connect without TLS files: see [`Client::connect_tls`].
    #[error("{addr} speaks TLS: give the CA that signed its certificate (tomtectl --tls-ca PATH)")]
    NeedsTls {
        /// The daemon's address.
        addr: String,
    },
    /// A JSON or XML protocol was asked of a `comodojo+` address, which speaks framing only.
    #[error("{addr} speaks comodojo framing: use Protocol::ComodojoJson or Protocol::ComodojoXml")]
    WrongDialect {
        /// The daemon's address.
        addr: String,
    },
}

/// Whose unix socket a client agrees to talk to: the uid of the server process, as
/// `SO_PEERCRED` tells it. See [`Client::connect_checked`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trust {
    /// `None`: anyone.
    uids: Option<Vec<u32>>,
}

impl Trust {
    /// Root and the user running the client (its effective uid).
    pub fn own() -> Trust {
        let me = rustix::process::geteuid().as_raw();
        let mut uids = vec![0];
        if me != 0 {
            uids.push(me);
        }
        Trust { uids: Some(uids) }
    }

    /// Anyone: no check (what [`Client::connect`] does).
    pub fn anyone() -> Trust {
        Trust { uids: None }
    }

    /// Also trusts `uid`.
    pub fn allow(mut self, uid: u32) -> Trust {
        if let Some(uids) = &mut self.uids {
            if !uids.contains(&uid) {
                uids.push(uid);
            }
        }
        self
    }

    /// Whether a server running as `uid` is trusted.
    pub fn allows(&self, uid: u32) -> bool {
        self.uids.as_ref().is_none_or(|u| u.contains(&uid))
    }

    fn list(&self) -> String {
        match &self.uids {
            Some(u) => u.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
            None => "any".to_owned(),
        }
    }
}

impl Default for Trust {
    /// [`Trust::own`].
    fn default() -> Trust {
        Trust::own()
    }
}

enum Socket {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Socket {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Socket::Unix(s) => s.set_read_timeout(timeout),
            Socket::Tcp(s) => s.set_read_timeout(timeout),
            Socket::Tls(s) => s.sock.set_read_timeout(timeout),
        }
    }
}

impl io::Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Unix(s) => s.read(buf),
            Socket::Tcp(s) => s.read(buf),
            Socket::Tls(s) => s.read(buf),
        }
    }
}

impl io::Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Unix(s) => s.write(buf),
            Socket::Tcp(s) => s.write(buf),
            Socket::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            // rustls writes records as they are made; flushing pushes the rest.
            Socket::Tls(s) => s.flush(),
            _ => Ok(()),
        }
    }
}

/// A connection to a daemon, speaking one [`Protocol`].
pub struct Client {
    addr: String,
    protocol: Protocol,
    /// The `Host` header of XML-RPC requests.
    host: String,
    reader: BufReader<Socket>,
    timeout: Option<Duration>,
    next_id: u64,
    /// The RPC payload being sent.
    payload: Vec<u8>,
    /// The bytes being written (the payload framed).
    request: Vec<u8>,
    /// What was read: a line, an HTTP head, a body.
    input: Vec<u8>,
    /// Notifications read while waiting for an answer, not yet taken.
    pending: VecDeque<Notification>,
    /// How to connect again, for a call the daemon closed the connection on unread.
    redial: Redial,
    /// Calls answered on this connection.
    answered: u64,
    /// Whether this connection subscribed to events: it is never replaced (its subscription
    /// would not follow).
    subscribed: bool,
    /// The `daemon.auth` call that was answered on this connection, sent again first on a new
    /// one.
    auth: Option<Args>,
}

/// What [`Client::open`] was given: enough to open the same kind of connection again.
struct Redial {
    address: Address,
    trust: Trust,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// How a call ended when it did not get its answer.
enum Unanswered {
    /// The daemon closed the connection before any byte of the answer arrived (end of file, or
    /// a reset, after the request or while it was written): it never read the request.
    Unread(ClientError),
    /// Any other failure: part of an answer, a timeout, a protocol error.
    Failed(ClientError),
}

impl Client {
    /// Connects to `address` in the protocol its dialect implies (see [`Protocol::for_address`]).
    pub fn connect(address: &Address) -> Result<Client, ClientError> {
        Client::connect_with(address, Protocol::for_address(address))
    }

    /// Connects to `address` and speaks `protocol`; for comodojo protocols, reads and checks the
    /// greeter (waiting at most [`GREETER_TIMEOUT`]). Whoever serves a unix socket is not
    /// checked: see [`Client::connect_checked`].
    pub fn connect_with(address: &Address, protocol: Protocol) -> Result<Client, ClientError> {
        Client::connect_checked(address, protocol, &Trust::anyone())
    }

    /// As [`Client::connect_with`], but on a unix socket, first checks that the process serving
    /// it runs as a user `trust` allows; if not, closes the connection before reading or
    /// sending a byte, with [`ClientError::Untrusted`] (its uid and pid). TCP is not checked.
    pub fn connect_checked(address: &Address, protocol: Protocol, trust: &Trust) -> Result<Client, ClientError> {
        Client::open(address, protocol, trust, None)
    }

    /// As [`Client::connect_with`], over TLS: the daemon's certificate must be signed by
    /// `files.ca` and name the host of `address`; `files.cert` and `files.key` are shown when the
    /// daemon asks for a client certificate. A handshake the daemon refuses fails here. An
    /// address that is not `tls://` is connected to as [`Client::connect_checked`] would.
    pub fn connect_tls(
        address: &Address,
        protocol: Protocol,
        trust: &Trust,
        files: &ClientFiles,
    ) -> Result<Client, ClientError> {
        let config = tls::client_config(files)?;
        Client::open(address, protocol, trust, Some(&config))
    }

    fn open(
        address: &Address,
        protocol: Protocol,
        trust: &Trust,
        tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
    ) -> Result<Client, ClientError> {
        let addr = address.to_string();
        if address.dialect == Dialect::Comodojo && !protocol.is_comodojo() {
            return Err(ClientError::WrongDialect { addr });
        }
        let connect_err = |source| ClientError::Connect { addr: addr.clone(), source };
        let (socket, host) = match &address.transport {
            Transport::Unix(path) => {
                let stream = UnixStream::connect(path).map_err(connect_err)?;
                if trust.uids.is_some() {
                    // A daemon outside this PID namespace (the host's, to a client in a container)
                    // shows pid 0: not rustix's `UCred`, which cannot hold it.
                    use std::os::fd::AsFd;
                    let peer = crate::sys::peercred::peer_cred(stream.as_fd()).map_err(connect_err)?;
                    let uid = peer.uid;
                    if !trust.allows(uid) {
                        let pid = peer.pid.map_or(0, |p| p as i32);
                        return Err(ClientError::Untrusted { addr, uid, pid, trusted: trust.list() });
                    }
                }
                (Socket::Unix(stream), "localhost".into())
            }
            Transport::Tcp(sa) => {
                let s = TcpStream::connect(sa).map_err(connect_err)?;
                let _ = s.set_nodelay(true);
                (Socket::Tcp(s), sa.to_string())
            }
            Transport::Tls { addr: sa, host } => {
                let Some(config) = tls else { return Err(ClientError::NeedsTls { addr }) };
                let s = TcpStream::connect(sa).map_err(connect_err)?;
                let _ = s.set_nodelay(true);
                let mut session = tls::client_connection(config, host).map_err(connect_err)?;
                let mut s = s;
                // The handshake now, so that a refused certificate is a connect error.
                while session.is_handshaking() {
                    session.complete_io(&mut s).map_err(connect_err)?;
                }
                let host = if host.contains(':') {
                    format!("[{host}]:{}", sa.port())
                } else {
                    format!("{host}:{}", sa.port())
                };
                (Socket::Tls(Box::new(rustls::StreamOwned::new(session, s))), host)
            }
        };
        let mut client = Client {
            addr,
            protocol,
            host,
            reader: BufReader::new(socket),
            timeout: None,
            next_id: 1,
            payload: Vec::new(),
            request: Vec::new(),
            input: Vec::new(),
            pending: VecDeque::new(),
            redial: Redial { address: address.clone(), trust: trust.clone(), tls: tls.cloned() },
            answered: 0,
            subscribed: false,
            auth: None,
        };
        if protocol.is_comodojo() {
            client.greet()?;
        }
        Ok(client)
    }

    /// The protocol this client speaks.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The address this client is connected to, as written in errors.
    pub fn address(&self) -> &str {
        &self.addr
    }

    /// Bounds how long a call waits for its answer.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.timeout = timeout;
        self.reader.get_ref().set_read_timeout(timeout)
    }

    /// Calls `method`: `Ok(Ok(value))` for a result, `Ok(Err(fault))` for an RPC error.
    ///
    /// When the daemon closes the connection before any byte of the answer arrived, and this
    /// connection had already answered an earlier call, the call is sent once more on a new
    /// connection (to the same address, with the same checks; a `daemon.auth` answered on the
    /// old one is presented again first). That is what a connection kept across an upgrade or a
    /// restart meets: an idle connection the old process closed. It is safe because of the
    /// daemon's drain rule: a draining tomte daemon closes an NDJSON or comodojo connection only
    /// when it has read nothing it has not answered, and an HTTP one after an answer that said
    /// `Connection: close`, so a request it closed on was never read, never run. A connection
    /// that subscribed to events is not replaced (its subscription would not follow): there the
    /// error is returned. The one case the rule does not cover: a daemon that dies (killed,
    /// crashed) while it runs a call closes the connection the same way, and that call is then
    /// run again by whoever serves the address next.
    pub fn call(&mut self, method: &str, args: &Args) -> Result<Result<Value, Fault>, ClientError> {
        match self.call_once(method, args) {
            Ok(answer) => Ok(answer),
            Err(Unanswered::Unread(e)) if self.answered == 0 || self.subscribed => Err(e),
            Err(Unanswered::Unread(_)) => {
                self.reconnect()?;
                self.call_once(method, args).map_err(|(Unanswered::Unread(e) | Unanswered::Failed(e))| e)
            }
            Err(Unanswered::Failed(e)) => Err(e),
        }
    }

    /// Replaces the connection by a new one to the same address, with this one's timeout and
    /// authentication.
    fn reconnect(&mut self) -> Result<(), ClientError> {
        let Redial { address, trust, tls } = &self.redial;
        let mut fresh = Client::open(address, self.protocol, trust, tls.as_ref())?;
        fresh.set_timeout(self.timeout).map_err(|source| fresh.io_err(source))?;
        fresh.next_id = self.next_id;
        if let Some(auth) = self.auth.take() {
            fresh.call("daemon.auth", &auth)?.map_err(|fault| ClientError::Protocol {
                addr: fresh.addr.clone(),
                why: format!("the new connection refused the token: {}", fault.full_message()),
            })?;
        }
        *self = fresh;
        Ok(())
    }

    fn call_once(&mut self, method: &str, args: &Args) -> Result<Result<Value, Fault>, Unanswered> {
        let answer = self.exchange(method, args)?;
        self.answered += 1;
        if method == "daemon.auth" && matches!(answer, Ok(Value::Bool(true))) {
            self.auth = Some(args.clone());
        }
        if method == "daemon.subscribe" && answer.is_ok() {
            self.subscribed = true;
        }
        Ok(answer)
    }

    /// One request written and its answer read.
    fn exchange(&mut self, method: &str, args: &Args) -> Result<Result<Value, Fault>, Unanswered> {
        let failed = Unanswered::Failed;
        let id = self.next_id;
        self.next_id += 1;
        self.payload.clear();
        if self.protocol.is_xml() {
            let Args::Positional(params) = args else {
                return Err(failed(self.encode_err("XML-RPC has no named parameters: pass them by position".into())));
            };
            xmlrpc::encode_call(method, params, &mut self.payload)
                .map_err(|e| failed(self.encode_err(e.to_string())))?;
        } else {
            jsonrpc::encode_request(method, args, Some(id), &mut self.payload);
        }
        self.request.clear();
        match self.protocol {
            Protocol::Json => {
                self.request.extend_from_slice(&self.payload);
                self.request.push(b'\n');
            }
            Protocol::Xml => {
                let head = format!(
                    "POST / HTTP/1.1\r\nHost: {}\r\nUser-Agent: tomte/{}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
                    self.host,
                    env!("CARGO_PKG_VERSION"),
                    self.payload.len()
                );
                self.request.extend_from_slice(head.as_bytes());
                self.request.extend_from_slice(&self.payload);
            }
            Protocol::ComodojoJson => comodojo::encode_request("application/json", &self.payload, &mut self.request),
            Protocol::ComodojoXml => comodojo::encode_request("text/xml", &self.payload, &mut self.request),
        }
        let socket = self.reader.get_mut();
        let written = socket.write_all(&self.request).and_then(|()| socket.flush());
        // Did any byte of an answer come, or did the connection end first?
        let gone = |kind: io::ErrorKind| {
            matches!(kind, io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::NotConnected)
        };
        let nothing = loop {
            match self.reader.fill_buf() {
                Ok(bytes) => break bytes.is_empty(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if gone(e.kind()) => break true,
                // A timeout, say: reading again would wait as long once more.
                Err(e) => return Err(failed(self.io_err(e))),
            }
        };
        if nothing && written.as_ref().err().is_none_or(|e| gone(e.kind())) {
            let e = match written {
                Err(source) => self.io_err(source),
                Ok(()) => ClientError::Closed { addr: self.addr.clone() },
            };
            return Err(Unanswered::Unread(e));
        }
        let answer = self.read_answer();
        if let Err(source) = written {
            // A daemon refusing a request (too large, say) may answer why before it closes, while
            // the rest was still being written: its answer says more than a broken pipe.
            if !matches!(answer, Ok(_) | Err(ClientError::Http { .. })) {
                return Err(failed(self.io_err(source)));
            }
        }
        if let Some(fault) = answer.map_err(failed)? {
            return Ok(Err(fault));
        }
        if self.protocol.is_xml() {
            return xmlrpc::decode_response(&self.input).map_err(|f| failed(self.protocol_err(f.full_message())));
        }
        let resp = jsonrpc::decode_response(&self.input).map_err(|e| failed(self.protocol_err(e.to_string())))?;
        if resp.id != Value::Int(id as i64) && resp.id != Value::Nil {
            return Err(failed(self.protocol_err(format!("answer for id {:?}, expected {id}", resp.id))));
        }
        Ok(resp.outcome)
    }

    /// Asks the daemon to push the events whose names match `patterns` (exact names, or
    /// prefixes ending in `*`: `daemon.worker.*`, `*`) on this connection, as `daemon.event`
    /// notifications read with [`Client::next_notification`]. Answers the patterns subscribed.
    /// NDJSON only ([`Protocol::Json`]): other protocols are a [`ClientError::Encode`].
    pub fn subscribe(&mut self, patterns: &[&str]) -> Result<Result<Vec<String>, Fault>, ClientError> {
        if self.protocol != Protocol::Json {
            return Err(
                self.encode_err("subscriptions are served on NDJSON connections only (not XML-RPC or comodojo)".into())
            );
        }
        let list = Value::Array(patterns.iter().map(|&p| Value::from(p)).collect());
        Ok(self.call("daemon.subscribe", &Args::Positional(vec![list]))?.map(|answer| {
            let subscribed = answer.member("subscribed").and_then(Value::as_array).unwrap_or_default();
            subscribed.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        }))
    }

    /// Waits for the next notification the daemon pushes (after [`Client::subscribe`]), those
    /// that came during a call first. `Ok(None)` when the daemon closed the connection between
    /// two messages (a clean end); a line that is not a notification is a
    /// [`ClientError::Protocol`]. Waits for ever unless [`Client::set_timeout`] bounds it.
    pub fn next_notification(&mut self) -> Result<Option<Notification>, ClientError> {
        if let Some(n) = self.pending.pop_front() {
            return Ok(Some(n));
        }
        if self.protocol != Protocol::Json {
            return Err(self.encode_err("notifications come on NDJSON connections only".into()));
        }
        self.input.clear();
        let n = self.reader.read_until(b'\n', &mut self.input).map_err(|source| self.io_err(source))?;
        if n == 0 {
            return Ok(None);
        }
        if self.input.last() != Some(&b'\n') {
            return Err(ClientError::Closed { addr: self.addr.clone() });
        }
        match self.notification() {
            Some(n) => Ok(Some(n)),
            None => {
                let line: String = String::from_utf8_lossy(&self.input).trim().chars().take(200).collect();
                Err(self.protocol_err(format!("expected a notification, got: {line}")))
            }
        }
    }

    /// `input` read as a notification (a `method` and no `id`), if it is one.
    fn notification(&self) -> Option<Notification> {
        #[derive(serde::Deserialize)]
        struct Wire {
            method: String,
            #[serde(default)]
            params: Value,
            #[serde(default)]
            id: Option<serde::de::IgnoredAny>,
        }
        // An answer has no `method` member: most lines are told apart without parsing twice.
        memchr::memmem::find(&self.input, b"\"method\"")?;
        match serde_json::from_slice::<Wire>(&self.input) {
            Ok(Wire { method, params, id: None }) => Some(Notification { method, params }),
            _ => None,
        }
    }

    /// `GET path` over HTTP/1.1 with `headers` added (`("Accept", "…")`, `("Authorization",
    /// "Bearer …")`), on a native listener; the answer whatever its status. Send it as the
    /// connection's first request (or after other HTTP ones, `--xml` calls): a connection that
    /// has spoken NDJSON stays NDJSON. A comodojo protocol is a [`ClientError::Encode`].
    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<HttpResponse, ClientError> {
        if self.protocol.is_comodojo() {
            return Err(self.encode_err("a comodojo listener serves no HTTP routes".into()));
        }
        if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return Err(self.encode_err(format!("not a request path: {path:?}")));
        }
        let mut head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tomte/{}\r\n",
            self.host,
            env!("CARGO_PKG_VERSION")
        );
        for (name, value) in headers {
            if [name, value].iter().any(|t| t.bytes().any(|b| b == b'\r' || b == b'\n')) {
                return Err(self.encode_err(format!("a line break in header {name}")));
            }
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let socket = self.reader.get_mut();
        socket.write_all(head.as_bytes()).and_then(|()| socket.flush()).map_err(|source| self.io_err(source))?;
        let mut headers = Vec::new();
        let (status, reason) = self.read_http_message(Some(&mut headers))?;
        Ok(HttpResponse { status, reason, headers, body: std::mem::take(&mut self.input) })
    }

    /// Reads the answer to a call into `input`, as the RPC payload it carries; `Some(fault)` for
    /// a comodojo `status: false`.
    fn read_answer(&mut self) -> Result<Option<Fault>, ClientError> {
        match self.protocol {
            Protocol::Json => loop {
                self.read_line()?;
                // A subscribed connection carries notifications between answers: kept for
                // `next_notification`, in order.
                match self.notification() {
                    Some(n) => self.pending.push_back(n),
                    None => break,
                }
            },
            Protocol::Xml => self.read_http()?,
            Protocol::ComodojoJson | Protocol::ComodojoXml => {
                self.read_line()?;
                match comodojo::decode_response(&self.input).map_err(|e| self.protocol_err(e.to_string()))? {
                    (true, Some(message)) => self.input = message,
                    (true, None) => return Err(self.protocol_err("a null message for a call that has an id".into())),
                    (false, message) => {
                        let text = String::from_utf8_lossy(message.as_deref().unwrap_or_default()).into_owned();
                        return Ok(Some(Fault::new(fault::TRANSPORT_ERROR, "Transport error").with_data(text)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Reads and checks a comodojo greeter.
    fn greet(&mut self) -> Result<(), ClientError> {
        let greeter_err = |c: &Client, why: String| ClientError::Greeter { addr: c.addr.clone(), why };
        self.reader.get_ref().set_read_timeout(Some(GREETER_TIMEOUT)).map_err(|source| self.io_err(source))?;
        match self.read_line() {
            Ok(()) => {}
            Err(ClientError::Io { source, .. })
                if matches!(source.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
            {
                let why = format!(
                    "nothing came within {}s (a native listener sends none: is this the comodojo+ listener?)",
                    GREETER_TIMEOUT.as_secs()
                );
                return Err(greeter_err(self, why));
            }
            Err(ClientError::Closed { .. }) => return Err(greeter_err(self, "the connection closed".into())),
            Err(e) => return Err(e),
        }
        comodojo::decode_greeter(&self.input).map_err(|e| greeter_err(self, e.to_string()))?;
        self.reader.get_ref().set_read_timeout(self.timeout).map_err(|source| self.io_err(source))
    }

    /// Reads one line into `input`, without its terminator (LF or CRLF).
    fn read_line(&mut self) -> Result<(), ClientError> {
        self.input.clear();
        let n = self.reader.read_until(b'\n', &mut self.input).map_err(|source| self.io_err(source))?;
        if n == 0 || self.input.last() != Some(&b'\n') {
            return Err(ClientError::Closed { addr: self.addr.clone() });
        }
        self.input.pop();
        if self.input.last() == Some(&b'\r') {
            self.input.pop();
        }
        Ok(())
    }

    /// Reads one HTTP response into `input` (its body); informational (1xx) responses are
    /// skipped, an error status is a [`ClientError::Http`].
    fn read_http(&mut self) -> Result<(), ClientError> {
        let (status, reason) = self.read_http_message(None)?;
        if status != 200 {
            let text: String = String::from_utf8_lossy(&self.input).trim().chars().take(200).collect();
            return Err(ClientError::Http { addr: self.addr.clone(), status, reason, text });
        }
        Ok(())
    }

    /// Reads one HTTP response, informational (1xx) ones skipped: its body into `input` (by
    /// length, chunked, or to the end of the connection), its headers into `keep` when given;
    /// answers its status and reason.
    fn read_http_message(
        &mut self,
        mut keep: Option<&mut Vec<(String, String)>>,
    ) -> Result<(u16, String), ClientError> {
        loop {
            self.input.clear();
            loop {
                let start = self.input.len();
                let n = self.reader.read_until(b'\n', &mut self.input).map_err(|source| self.io_err(source))?;
                if n == 0 {
                    return Err(ClientError::Closed { addr: self.addr.clone() });
                }
                // The empty line that ends the head (blank lines before the status line skipped).
                if matches!(&self.input[start..], b"\r\n" | b"\n") {
                    if start == 0 {
                        self.input.clear();
                        continue;
                    }
                    break;
                }
                if self.input.len() > MAX_HEAD {
                    return Err(self.protocol_err(format!("an HTTP response head longer than {MAX_HEAD} bytes")));
                }
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.input) {
                Ok(httparse::Status::Complete(_)) => {}
                Ok(httparse::Status::Partial) => unreachable!("the head ends with an empty line"),
                Err(e) => return Err(self.protocol_err(format!("malformed HTTP response: {e}"))),
            }
            let status = resp.code.unwrap_or(0);
            if (100..200).contains(&status) {
                continue;
            }
            let reason = resp.reason.unwrap_or("").to_owned();
            let mut length = None;
            let mut chunked = false;
            for h in resp.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    let value = String::from_utf8_lossy(h.value);
                    match value.trim().parse::<u64>() {
                        Ok(n) => length = Some(n),
                        Err(_) => return Err(self.protocol_err(format!("bad Content-Length '{value}'"))),
                    }
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    let value = String::from_utf8_lossy(h.value);
                    if !value.trim().eq_ignore_ascii_case("chunked") {
                        return Err(self.protocol_err(format!("a response in transfer coding '{value}'")));
                    }
                    chunked = true;
                }
                if let Some(keep) = keep.as_deref_mut() {
                    keep.push((h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).trim().to_owned()));
                }
            }
            self.input.clear();
            if chunked {
                self.read_chunked()?;
                return Ok((status, reason));
            }
            // Memory follows what arrives, not what the head promises.
            let read = match length {
                Some(n) => (&mut self.reader).take(n).read_to_end(&mut self.input),
                None => (&mut self.reader).take(MAX_BODY + 1).read_to_end(&mut self.input),
            };
            read.map_err(|source| self.io_err(source))?;
            if length.is_none() && self.input.len() as u64 > MAX_BODY {
                return Err(self.protocol_err(format!("an HTTP body larger than {MAX_BODY} bytes")));
            }
            if let Some(n) = length {
                if (self.input.len() as u64) < n {
                    return Err(ClientError::Closed { addr: self.addr.clone() });
                }
            }
            return Ok((status, reason));
        }
    }

    /// Reads a chunked body into `input` (empty on entry), its trailers skipped.
    fn read_chunked(&mut self) -> Result<(), ClientError> {
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut self.reader).take(1024).read_until(b'\n', &mut line).map_err(|source| self.io_err(source))?;
            if n == 0 || line.last() != Some(&b'\n') {
                return Err(ClientError::Closed { addr: self.addr.clone() });
            }
            let text = String::from_utf8_lossy(&line);
            let digits = text.split(';').next().unwrap_or("").trim();
            let Ok(size) = u64::from_str_radix(digits, 16) else {
                return Err(self.protocol_err(format!("bad chunk size '{}'", text.trim())));
            };
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    let n = self.reader.read_until(b'\n', &mut line).map_err(|source| self.io_err(source))?;
                    if n == 0 || matches!(&line[..], b"\r\n" | b"\n") {
                        return Ok(());
                    }
                }
            }
            if self.input.len() as u64 + size > MAX_BODY {
                return Err(self.protocol_err(format!("an HTTP body larger than {MAX_BODY} bytes")));
            }
            let before = self.input.len() as u64;
            (&mut self.reader).take(size).read_to_end(&mut self.input).map_err(|source| self.io_err(source))?;
            if self.input.len() as u64 - before < size {
                return Err(ClientError::Closed { addr: self.addr.clone() });
            }
            line.clear();
            self.reader.read_until(b'\n', &mut line).map_err(|source| self.io_err(source))?;
        }
    }

    fn io_err(&self, source: io::Error) -> ClientError {
        ClientError::Io { addr: self.addr.clone(), source }
    }

    fn protocol_err(&self, why: String) -> ClientError {
        ClientError::Protocol { addr: self.addr.clone(), why }
    }

    fn encode_err(&self, why: String) -> ClientError {
        ClientError::Encode { addr: self.addr.clone(), why }
    }
}

#[cfg(test)]
mod tests {
    //! The call sent again on a new connection, against a scripted server: a unix socket this
    //! test serves, closing connections where a draining daemon would (and where it would not).

    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use super::*;

    /// A socket in a fresh directory; each connection is handed to the next script, in order.
    struct Server {
        dir: PathBuf,
        address: Address,
        thread: Option<std::thread::JoinHandle<usize>>,
    }

    type Script = Box<dyn FnOnce(BufReader<UnixStream>) + Send>;

    impl Server {
        fn new(tag: &str, scripts: Vec<Script>) -> Server {
            let dir = PathBuf::from(format!("/tmp/tcl-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let sock = dir.join("s.sock");
            let listener = UnixListener::bind(&sock).unwrap();
            listener.set_nonblocking(true).unwrap();
            let thread = std::thread::spawn(move || {
                let mut served = 0;
                let mut scripts = scripts.into_iter();
                // Connections until the scripts end, and a little after, to count a surplus one.
                let mut deadline = Instant::now() + Duration::from_secs(20);
                while Instant::now() < deadline {
                    match listener.accept() {
                        Ok((s, _)) => {
                            served += 1;
                            s.set_nonblocking(false).unwrap();
                            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                            match scripts.next() {
                                Some(script) => script(BufReader::new(s)),
                                None => drop(s),
                            }
                            if scripts.len() == 0 {
                                deadline = deadline.min(Instant::now() + Duration::from_millis(300));
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
                served
            });
            let address = format!("unix://{}", sock.display()).parse().unwrap();
            Server { dir, address, thread: Some(thread) }
        }

        /// How many connections came.
        fn connections(mut self) -> usize {
            self.thread.take().unwrap().join().unwrap()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Reads one request line: its method and id.
    fn request(r: &mut BufReader<UnixStream>) -> (String, i64) {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        (v["method"].as_str().unwrap_or("").to_owned(), v["id"].as_i64().unwrap_or(0))
    }

    fn answer(r: &mut BufReader<UnixStream>, id: i64, result: &str) {
        let line = format!("{{\"jsonrpc\":\"2.0\",\"result\":{result},\"id\":{id}}}\n");
        r.get_mut().write_all(line.as_bytes()).unwrap();
    }

    fn call(c: &mut Client, method: &str) -> Result<Result<Value, Fault>, ClientError> {
        c.call(method, &Args::default())
    }

    #[test]
    fn a_call_closed_unread_on_a_used_connection_is_sent_again_on_a_new_one_after_the_token() {
        let server = Server::new(
            "again",
            vec![
                Box::new(|mut r| {
                    assert_eq!(request(&mut r), ("daemon.auth".to_owned(), 1));
                    answer(&mut r, 1, "true");
                    assert_eq!(request(&mut r), ("first".to_owned(), 2));
                    answer(&mut r, 2, "\"one\"");
                    // Idle, nothing unread: closed, as a draining daemon does.
                }),
                Box::new(|mut r| {
                    let (method, id) = request(&mut r);
                    assert_eq!(method, "daemon.auth", "the token first on the new connection");
                    answer(&mut r, id, "true");
                    let (method, id) = request(&mut r);
                    assert_eq!(method, "second");
                    answer(&mut r, id, "\"two\"");
                }),
            ],
        );
        let mut c = Client::connect(&server.address).unwrap();
        c.call("daemon.auth", &Args::Positional(vec![Value::from("secret")])).unwrap().unwrap();
        assert_eq!(call(&mut c, "first").unwrap().unwrap(), Value::from("one"));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(call(&mut c, "second").unwrap().unwrap(), Value::from("two"));
        assert_eq!(server.connections(), 2);
    }

    #[test]
    fn a_fresh_connection_closed_is_an_error_and_not_tried_again() {
        let server = Server::new("fresh", vec![Box::new(drop)]);
        let mut c = Client::connect(&server.address).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let e = call(&mut c, "first").unwrap_err();
        assert!(matches!(e, ClientError::Closed { .. } | ClientError::Io { .. }), "{e}");
        assert_eq!(server.connections(), 1);
    }

    #[test]
    fn a_call_whose_answer_began_is_not_sent_again() {
        let server = Server::new(
            "partial",
            vec![Box::new(|mut r| {
                assert_eq!(request(&mut r).0, "first");
                answer(&mut r, 1, "1");
                assert_eq!(request(&mut r).0, "second");
                // Read, and half answered: it may have run.
                r.get_mut().write_all(b"{\"jsonrpc\":\"2.0\",").unwrap();
            })],
        );
        let mut c = Client::connect(&server.address).unwrap();
        assert_eq!(call(&mut c, "first").unwrap().unwrap(), Value::Int(1));
        let e = call(&mut c, "second").unwrap_err();
        assert!(matches!(e, ClientError::Closed { .. }), "{e}");
        assert_eq!(server.connections(), 1);
    }

    #[test]
    fn a_subscribed_connection_is_not_replaced() {
        let server = Server::new(
            "subscribed",
            vec![Box::new(|mut r| {
                assert_eq!(request(&mut r).0, "daemon.subscribe");
                answer(&mut r, 1, "{\"subscribed\":[\"*\"]}");
            })],
        );
        let mut c = Client::connect(&server.address).unwrap();
        assert_eq!(c.subscribe(&["*"]).unwrap().unwrap(), ["*"]);
        std::thread::sleep(Duration::from_millis(100));
        assert!(call(&mut c, "second").is_err());
        assert_eq!(server.connections(), 1);
    }
}
