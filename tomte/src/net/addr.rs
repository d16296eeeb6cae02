//! Listener and client addresses: `unix:///path`, `tcp://host:port`, `tls://host:port` (TCP
//! with TLS), and their `comodojo+` forms, which speak comodojo/daemon's framing.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;

/// comodojo/daemon's default TCP port, kept.
pub const DEFAULT_PORT: u16 = 10042;

/// Where bytes go.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A unix socket at this path.
    Unix(PathBuf),
    /// TCP at this address (a host name is resolved to its first address when parsed).
    Tcp(SocketAddr),
    /// TCP with TLS.
    Tls {
        /// The first address the host resolved to, with the port.
        addr: SocketAddr,
        /// The host as written: the name a client checks the server's certificate against.
        host: String,
    },
}

/// What is spoken on a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// NDJSON JSON-RPC, or HTTP/1.1 carrying JSON-RPC or XML-RPC: told apart by the first byte.
    Native,
    /// comodojo/daemon 1.x: a greeter, then base64(PHP-serialized array) + CRLF frames.
    Comodojo,
}

/// A parsed socket address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    /// Where bytes go.
    pub transport: Transport,
    /// What is spoken there.
    pub dialect: Dialect,
}

/// Why an address could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad socket address '{input}': {why}")]
pub struct AddressError {
    /// The text that was read.
    pub input: String,
    /// What is wrong with it.
    pub why: String,
}

impl Address {
    /// The native address of the unix socket at `path` (`unix://PATH`).
    pub fn unix(path: impl Into<PathBuf>) -> Address {
        Address { transport: Transport::Unix(path.into()), dialect: Dialect::Native }
    }
    /// The native address of plain TCP at `addr` (`tcp://ADDR`).
    pub fn tcp(addr: SocketAddr) -> Address {
        Address { transport: Transport::Tcp(addr), dialect: Dialect::Native }
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Address, AddressError> {
        let err = |why: &str| AddressError { input: input.to_owned(), why: why.to_owned() };
        let (dialect, rest) = match input.strip_prefix("comodojo+") {
            Some(rest) => (Dialect::Comodojo, rest),
            None => (Dialect::Native, input),
        };
        let transport = if let Some(path) = rest.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(err("a unix socket path must be absolute (unix:///run/x.sock)"));
            }
            Transport::Unix(PathBuf::from(path))
        } else if rest.starts_with('/') {
            Transport::Unix(PathBuf::from(rest))
        } else if let Some(hostport) = rest.strip_prefix("tcp://") {
            Transport::Tcp(parse_tcp(hostport).map_err(|w| err(&w))?)
        } else if let Some(hostport) = rest.strip_prefix("tls://") {
            let addr = parse_tcp(hostport).map_err(|w| err(&w))?;
            Transport::Tls { addr, host: tls_host(hostport) }
        } else {
            return Err(err("expected unix:///path, tcp://host:port, tls://host:port, or comodojo+ before one"));
        };
        Ok(Address { transport, dialect })
    }
}

fn parse_tcp(hostport: &str) -> Result<SocketAddr, String> {
    let hostport = hostport.trim_end_matches('/');
    // `[::1]:80`, `127.0.0.1:80`, `host:80`, `host`, `:80` (loopback).
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or("unclosed '[' in IPv6 address")?;
        match after {
            "" => (h, None),
            _ => (h, Some(after.strip_prefix(':').ok_or(format!("'{after}' after ']': expected ':port'"))?)),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => DEFAULT_PORT,
        Some(p) => p.parse().map_err(|_| format!("'{p}' is not a port number"))?,
    };
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{host}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{host}' resolves to no address"))
}

/// The host part of `host:port` as a client names the server: brackets off an IPv6 address,
/// loopback when empty.
fn tls_host(hostport: &str) -> String {
    let hostport = hostport.trim_end_matches('/');
    let host = match hostport.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(h, _)| h),
        None => hostport.rsplit_once(':').map_or(hostport, |(h, _)| h),
    };
    if host.is_empty() { "127.0.0.1" } else { host }.to_owned()
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dialect == Dialect::Comodojo {
            f.write_str("comodojo+")?;
        }
        match &self.transport {
            Transport::Unix(p) => write!(f, "unix://{}", p.display()),
            Transport::Tcp(a) => write!(f, "tcp://{a}"),
            Transport::Tls { addr, .. } => write!(f, "tls://{addr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let a: Address = "unix:///tmp/x.sock".parse().unwrap();
        assert_eq!(a, Address::unix("/tmp/x.sock"));
        assert_eq!(a.to_string(), "unix:///tmp/x.sock");
        let t: Address = "tcp://127.0.0.1:8080".parse().unwrap();
        assert_eq!(t.to_string(), "tcp://127.0.0.1:8080");
        let d: Address = "tcp://:".parse().unwrap();
        assert_eq!(d.to_string(), "tcp://127.0.0.1:10042");
        let v6: Address = "comodojo+tcp://[::1]:9".parse().unwrap();
        assert_eq!(v6.dialect, Dialect::Comodojo);
        assert_eq!(v6.to_string(), "comodojo+tcp://[::1]:9");
        assert!("unix://rel.sock".parse::<Address>().unwrap_err().to_string().contains("absolute"));
        assert!("tcp://[::1]junk".parse::<Address>().unwrap_err().to_string().contains("junk"));
        assert_eq!("tcp://[::1]".parse::<Address>().unwrap().to_string(), "tcp://[::1]:10042");
        assert!("http://x".parse::<Address>().is_err());
        assert!("tcp://127.0.0.1:99999".parse::<Address>().unwrap_err().to_string().contains("port"));
        let s: Address = "tls://127.0.0.1:8443".parse().unwrap();
        assert_eq!(s.to_string(), "tls://127.0.0.1:8443");
        assert!(matches!(&s.transport, Transport::Tls { host, .. } if host == "127.0.0.1"));
        let c: Address = "comodojo+tls://localhost".parse().unwrap();
        assert_eq!(c.dialect, Dialect::Comodojo);
        assert!(c.to_string().starts_with("comodojo+tls://") && c.to_string().ends_with(":10042"));
        assert!(matches!(&c.transport, Transport::Tls { host, .. } if host == "localhost"));
        let v6: Address = "tls://[::1]:9".parse().unwrap();
        assert!(matches!(&v6.transport, Transport::Tls { host, .. } if host == "::1"));
        assert_eq!(v6.to_string(), "tls://[::1]:9");
    }
}
