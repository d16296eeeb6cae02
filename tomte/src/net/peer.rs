//! Who is at the other end of a connection: decided once, at accept, from the socket itself.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use tomte_rpc::Value;

use super::users;

/// The key per-peer limits count by: one IP address on TCP, one uid on unix sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerKey {
    /// A TCP peer's IP address.
    Ip(IpAddr),
    /// A unix peer's uid (`u32::MAX` when its credentials could not be read).
    Uid(u32),
}

/// The identity of a connection's peer, decided once when it is accepted and kept with the
/// connection; handlers read it with [`crate::Ctx::peer`], the access policy maps it to
/// permissions (see [`crate::access`]).
///
/// * unix sockets: the uid, gid and pid the kernel recorded at connect (`SO_PEERCRED`), the
///   user and group names `/etc/passwd` and `/etc/group` give them, and the user's
///   supplementary groups listed in `/etc/group`;
/// * TCP: the address and port.
///
/// `cert` and `token` stay `None` until a TLS handshake or a token fills them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Peer {
    /// The client's IP address (TCP) or uid (unix sockets), which per-peer limits count by.
    pub key: PeerKey,
    /// The client's pid (unix sockets, from `SO_PEERCRED`).
    pub pid: Option<u32>,
    /// The client's port (TCP).
    pub port: Option<u16>,
    /// The client's primary gid (unix sockets, from `SO_PEERCRED`).
    pub gid: Option<u32>,
    /// The name of the uid, where `/etc/passwd` has it.
    pub user: Option<String>,
    /// The name of the primary gid, where `/etc/group` has it.
    pub group: Option<String>,
    /// The gids of the groups `/etc/group` lists the user in (not the primary one unless it
    /// is listed too). The kernel's view of the client's groups is not available on a socket.
    pub groups: Vec<u32>,
    /// The subject (common name) of a verified client certificate.
    pub cert: Option<String>,
    /// The name of the token the client presented.
    pub token: Option<String>,
    /// The address of the listener that accepted it (as `--socket` writes it).
    pub listener: Option<String>,
}

impl Peer {
    /// The credentials the kernel recorded when a unix client connected. A socket whose
    /// credentials cannot be read counts as uid `u32::MAX` (nobody's), never as root's.
    pub fn of_unix(stream: &mio::net::UnixStream) -> Peer {
        // Not rustix's `socket_peercred`: a peer in another PID namespace has pid 0, which its
        // `UCred` cannot hold.
        use std::os::fd::AsFd;
        match crate::sys::peercred::peer_cred(stream.as_fd()) {
            Ok(cred) => Peer::unix(cred.uid, Some(cred.gid), cred.pid),
            Err(_) => Peer::unix(u32::MAX, None, None),
        }
    }

    /// A unix peer with these credentials, its names looked up.
    pub fn unix(uid: u32, gid: Option<u32>, pid: Option<u32>) -> Peer {
        let names = if uid == u32::MAX { users::Names::default() } else { users::names(uid, gid) };
        Peer {
            key: PeerKey::Uid(uid),
            pid,
            port: None,
            gid,
            user: names.user,
            group: names.group,
            groups: names.groups,
            cert: None,
            token: None,
            listener: None,
        }
    }

    /// A TCP client at `addr`: anonymous until a certificate or a token names it.
    pub fn of_tcp(addr: SocketAddr) -> Peer {
        Peer {
            key: PeerKey::Ip(addr.ip()),
            pid: None,
            port: Some(addr.port()),
            gid: None,
            user: None,
            group: None,
            groups: Vec::new(),
            cert: None,
            token: None,
            listener: None,
        }
    }

    /// The uid of a unix peer.
    pub fn uid(&self) -> Option<u32> {
        match self.key {
            PeerKey::Uid(uid) => Some(uid),
            PeerKey::Ip(_) => None,
        }
    }

    /// The address of a TCP peer.
    pub fn address(&self) -> Option<SocketAddr> {
        match self.key {
            PeerKey::Ip(ip) => Some(SocketAddr::new(ip, self.port.unwrap_or(0))),
            PeerKey::Uid(_) => None,
        }
    }

    /// Whether the peer proved nothing: a TCP client with neither certificate nor token.
    pub fn is_anonymous(&self) -> bool {
        self.uid().is_none() && self.cert.is_none() && self.token.is_none()
    }

    /// Whether the peer belongs to group `gid`: its primary gid, or a supplementary group.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == Some(gid) || self.groups.contains(&gid)
    }

    /// The identity as events and `daemon.status` show it: `{uid, gid, user, group, groups,
    /// pid}` on unix sockets (names only where known), `{address}` on TCP; `cert` and `token`
    /// when present.
    pub fn to_value(&self) -> Value {
        let mut v = Vec::with_capacity(6);
        match self.key {
            PeerKey::Uid(uid) => {
                v.push(("uid".to_owned(), Value::from(uid)));
                if let Some(gid) = self.gid {
                    v.push(("gid".to_owned(), Value::from(gid)));
                }
                if let Some(user) = &self.user {
                    v.push(("user".to_owned(), Value::from(user.as_str())));
                }
                if let Some(group) = &self.group {
                    v.push(("group".to_owned(), Value::from(group.as_str())));
                }
                v.push(("groups".to_owned(), Value::Array(self.groups.iter().map(|&g| Value::from(g)).collect())));
                if let Some(pid) = self.pid {
                    v.push(("pid".to_owned(), Value::from(pid)));
                }
            }
            PeerKey::Ip(_) => {
                let addr = self.address().map(|a| a.to_string()).unwrap_or_default();
                v.push(("address".to_owned(), Value::from(addr)));
            }
        }
        if let Some(cert) = &self.cert {
            v.push(("cert".to_owned(), Value::from(cert.as_str())));
        }
        if let Some(token) = &self.token {
            v.push(("token".to_owned(), Value::from(token.as_str())));
        }
        Value::Struct(v)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.key, self.port) {
            (PeerKey::Uid(uid), _) => {
                write!(f, "unix uid {uid}")?;
                if let Some(user) = &self.user {
                    write!(f, " ({user})")?;
                }
                if let Some(pid) = self.pid {
                    write!(f, " pid {pid}")?;
                }
            }
            (PeerKey::Ip(ip @ IpAddr::V6(_)), Some(port)) => write!(f, "[{ip}]:{port}")?,
            (PeerKey::Ip(ip), Some(port)) => write!(f, "{ip}:{port}")?,
            (PeerKey::Ip(ip), None) => write!(f, "{ip}")?,
        }
        if let Some(cert) = &self.cert {
            write!(f, " cert {cert:?}")?;
        }
        if let Some(token) = &self.token {
            write!(f, " token {token:?}")?;
        }
        Ok(())
    }
}
