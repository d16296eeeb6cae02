//! Who is at the other end of a connection: decided once, at accept, from the socket itself.

use std::fmt;
use std::net::IpAddr;

/// The key per-peer limits count by: one IP address on TCP, one uid on unix sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerKey {
    Ip(IpAddr),
    Uid(u32),
}

/// The peer of a connection.
#[derive(Clone, Debug)]
pub struct Peer {
    pub key: PeerKey,
    /// The client's pid (unix sockets, from `SO_PEERCRED`).
    pub pid: Option<u32>,
    /// The client's port (TCP).
    pub port: Option<u16>,
    /// The common name of the certificate the client presented, verified against
    /// `--tls-client-ca` (mutual TLS); set once the handshake is done.
    pub cert: Option<String>,
}

impl Peer {
    /// The credentials the kernel recorded when a unix client connected. A socket whose
    /// credentials cannot be read counts as uid `u32::MAX` (nobody's), never as root's.
    pub fn of_unix(stream: &mio::net::UnixStream) -> Peer {
        match rustix::net::sockopt::socket_peercred(stream) {
            Ok(cred) => Peer {
                key: PeerKey::Uid(cred.uid.as_raw()),
                pid: rustix::process::Pid::as_raw(Some(cred.pid)).try_into().ok(),
                port: None,
                cert: None,
            },
            Err(_) => Peer { key: PeerKey::Uid(u32::MAX), pid: None, port: None, cert: None },
        }
    }

    pub fn of_tcp(addr: std::net::SocketAddr) -> Peer {
        Peer { key: PeerKey::Ip(addr.ip()), pid: None, port: Some(addr.port()), cert: None }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.key, self.pid, self.port) {
            (PeerKey::Uid(uid), Some(pid), _) => write!(f, "unix uid {uid} pid {pid}"),
            (PeerKey::Uid(uid), None, _) => write!(f, "unix uid {uid}"),
            (PeerKey::Ip(ip @ IpAddr::V6(_)), _, Some(port)) => write!(f, "[{ip}]:{port}"),
            (PeerKey::Ip(ip), _, Some(port)) => write!(f, "{ip}:{port}"),
            (PeerKey::Ip(ip), _, None) => write!(f, "{ip}"),
        }?;
        match &self.cert {
            Some(cn) => write!(f, " cert {cn}"),
            None => Ok(()),
        }
    }
}
