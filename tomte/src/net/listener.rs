//! Bound listeners: unix sockets (mode 0600, stale files recovered, removed on drop) and TCP
//! (`tls://` is a TCP listener whose connections get a TLS session: [`Stream::is_tls`]).
//!
//! A unix socket goes only in a directory nobody else controls, and a file found at its path is
//! replaced only when it is a stale socket of the daemon's own user: never through a symbolic
//! link, never another user's (see [`files`]).

use std::io;
use std::path::{Path, PathBuf};

use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::addr::{Address, Dialect, Transport};
use super::peer::Peer;
use super::tls::TlsStream;
use crate::process::files::{self, Kind, Owner, Parent, PathError};

/// Why a listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// Another process listens there: the TCP port is taken, or a live socket is at the path.
    #[error("cannot listen on {addr}: another process is already listening there")]
    InUse {
        /// The listener's address.
        addr: String,
    },
    /// A file other than a socket is at the unix socket's path.
    #[error("cannot listen on {addr}: {path} exists and is not a socket")]
    NotASocket {
        /// The listener's address.
        addr: String,
        /// The file's path.
        path: PathBuf,
    },
    /// The socket's directory, or a file at its path, is not safe to use (see
    /// [`files`]).
    #[error("cannot listen on {addr}: {source}")]
    Refused {
        /// The listener's address.
        addr: String,
        /// The rule it breaks.
        source: PathError,
    },
    /// Binding failed, or an operation on the socket file or its directory did.
    #[error("cannot listen on {addr}: {source}")]
    Io {
        /// The listener's address.
        addr: String,
        /// Why it failed.
        source: io::Error,
    },
}

/// The `Host` headers a listener's HTTP requests may carry (see [`Listener::host_rule`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostRule {
    /// Unix sockets (browsers cannot reach them) and TCP on a specific non-loopback address.
    Any,
    /// `localhost`, `127.x.x.x` or `[::1]`, with any port.
    Loopback,
    /// Those, any IP address, or this machine's host name (a wildcard listener).
    ThisMachine,
}

/// A listening socket: a unix socket, or TCP (plain, or TLS when the address is `tls://`, see
/// [`Listener::is_tls`]).
#[derive(Debug)]
pub struct Listener(Bound);

/// A listening socket of either kind.
#[derive(Debug)]
enum Bound {
    /// `owned`: the daemon created the socket file, so it removes it (not so for one that
    /// systemd passed) — as long as the path still names that file (`inode`: device, inode).
    Unix { socket: UnixListener, path: PathBuf, address: Address, owned: bool, inode: Option<(u64, u64)> },
    /// Plain TCP, or TLS when the address is `tls://`.
    Tcp { socket: TcpListener, address: Address },
}

/// An accepted connection's socket: unix, TCP, or TCP with a TLS session between it and the
/// connection (see [`Stream::is_tls`]).
#[derive(Debug)]
pub struct Stream(Socket);

/// An accepted socket of one of the kinds.
#[derive(Debug)]
enum Socket {
    Unix(UnixStream),
    Tcp(TcpStream),
    /// A TCP socket with a TLS session between it and the connection.
    Tls(Box<TlsStream>),
}

impl Listener {
    /// Binds `address`. A unix socket file left by a dead process is replaced; one a live
    /// process listens on is left alone and reported.
    pub fn bind(address: &Address) -> Result<Listener, BindError> {
        let name = address.to_string();
        let io_err = |source| BindError::Io { addr: name.clone(), source };
        match &address.transport {
            Transport::Unix(path) => {
                let at = files::parent(path).map_err(refused(&name))?;
                recover_stale(&at, path, &name)?;
                // Created 0600: only the daemon's user may connect (umask is process-wide, and
                // the daemon is single-threaded, so setting it around bind is race-free). bind
                // never follows a link: whatever appeared at the path since makes it fail.
                let old = rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o177));
                let bound = UnixListener::bind(path);
                rustix::process::umask(old);
                let socket = bound.map_err(io_err)?;
                let inode = at.stat_name(path).ok().flatten().map(|st| (st.st_dev, st.st_ino));
                Ok(Listener(Bound::Unix { socket, path: path.clone(), address: address.clone(), owned: true, inode }))
            }
            Transport::Tcp(addr) | Transport::Tls { addr, .. } => {
                if !addr.ip().is_loopback() {
                    // The daemon refused this at start unless it has client certificates or
                    // --insecure; say it once more where the socket is made.
                    log::info!("{name} is reachable from other hosts");
                }
                let socket = TcpListener::bind(*addr).map_err(|e| match e.kind() {
                    io::ErrorKind::AddrInUse => BindError::InUse { addr: name.clone() },
                    _ => io_err(e),
                })?;
                // Report the real port when 0 asked the kernel to pick one.
                let bound = socket.local_addr().map_err(io_err)?;
                let transport = match &address.transport {
                    Transport::Tls { host, .. } => Transport::Tls { addr: bound, host: host.clone() },
                    _ => Transport::Tcp(bound),
                };
                let address = Address { transport, dialect: address.dialect };
                Ok(Listener(Bound::Tcp { socket, address }))
            }
        }
    }

    /// A listener from a socket passed by systemd (socket activation); it speaks the native
    /// dialect.
    pub fn from_activated(fd: std::os::fd::OwnedFd) -> io::Result<Listener> {
        if rustix::net::getsockname(&fd)?.address_family() == rustix::net::AddressFamily::UNIX {
            let std = std::os::unix::net::UnixListener::from(fd);
            std.set_nonblocking(true)?;
            let path = std.local_addr()?.as_pathname().map(Path::to_owned).unwrap_or_default();
            let address = Address::unix(&path);
            Ok(Listener(Bound::Unix { socket: UnixListener::from_std(std), path, address, owned: false, inode: None }))
        } else {
            let std = std::net::TcpListener::from(fd);
            std.set_nonblocking(true)?;
            let address = Address::tcp(std.local_addr()?);
            Ok(Listener(Bound::Tcp { socket: TcpListener::from_std(std), address }))
        }
    }

    /// A listener from a socket an old daemon handed over (an upgrade), or that systemd kept
    /// in its store, configured as `configured`: it keeps that address's dialect and TLS, with
    /// the port the socket is bound to. A unix socket's file is not this process's to remove
    /// until [`Listener::own`].
    pub fn from_handed(fd: std::os::fd::OwnedFd, configured: &Address) -> io::Result<Listener> {
        let family = rustix::net::getsockname(&fd)?.address_family();
        match &configured.transport {
            Transport::Unix(path) if family == rustix::net::AddressFamily::UNIX => {
                let std = std::os::unix::net::UnixListener::from(fd);
                std.set_nonblocking(true)?;
                let inode = files::parent(path).ok().and_then(|at| at.stat_name(path).ok().flatten());
                Ok(Listener(Bound::Unix {
                    socket: UnixListener::from_std(std),
                    path: path.clone(),
                    address: configured.clone(),
                    owned: false,
                    inode: inode.map(|st| (st.st_dev, st.st_ino)),
                }))
            }
            Transport::Tcp(_) | Transport::Tls { .. } if family != rustix::net::AddressFamily::UNIX => {
                let std = std::net::TcpListener::from(fd);
                std.set_nonblocking(true)?;
                let bound = std.local_addr()?;
                let transport = match &configured.transport {
                    Transport::Tls { host, .. } => Transport::Tls { addr: bound, host: host.clone() },
                    _ => Transport::Tcp(bound),
                };
                let address = Address { transport, dialect: configured.dialect };
                Ok(Listener(Bound::Tcp { socket: TcpListener::from_std(std), address }))
            }
            _ => Err(io::Error::other(format!("the socket handed over for {configured} is of another kind"))),
        }
    }

    /// Makes a handed-over unix socket's file this process's: removed when it drops.
    pub fn own(&mut self) {
        if let Bound::Unix { owned, inode: Some(_), .. } = &mut self.0 {
            *owned = true;
        }
    }

    /// Leaves the socket's file in place when it drops: a new binary serves it now.
    pub fn disown(&mut self) {
        if let Bound::Unix { owned, .. } = &mut self.0 {
            *owned = false;
        }
    }

    /// The listening socket's descriptor, to hand to a new binary.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match &self.0 {
            Bound::Unix { socket, .. } => socket.as_fd(),
            Bound::Tcp { socket, .. } => socket.as_fd(),
        }
    }

    /// Its address; for TCP, with the port the kernel picked when port 0 was asked for.
    pub fn address(&self) -> &Address {
        match &self.0 {
            Bound::Unix { address, .. } | Bound::Tcp { address, .. } => address,
        }
    }

    /// What its connections speak.
    pub fn dialect(&self) -> Dialect {
        self.address().dialect
    }

    /// Whether its connections speak TLS (a `tls://` address).
    pub fn is_tls(&self) -> bool {
        matches!(self.address().transport, Transport::Tls { .. })
    }

    /// Accepts one pending connection; `WouldBlock` when none is left.
    pub fn accept(&self) -> io::Result<(Stream, Peer)> {
        match &self.0 {
            Bound::Unix { socket, .. } => {
                let (s, _) = socket.accept()?;
                let peer = Peer::of_unix(&s);
                Ok((Stream(Socket::Unix(s)), peer))
            }
            Bound::Tcp { socket, .. } => {
                let (s, addr) = socket.accept()?;
                let _ = s.set_nodelay(true);
                Ok((Stream(Socket::Tcp(s)), Peer::of_tcp(addr)))
            }
        }
    }

    /// Which `Host` headers its HTTP requests may carry. A listener that loopback reaches
    /// (a loopback or a wildcard address) is what a browser tricked by DNS rebinding reaches:
    /// the attacker's name in `Host` gives it away.
    pub fn host_rule(&self) -> HostRule {
        match &self.0 {
            Bound::Tcp { address, .. } => match &address.transport {
                Transport::Tcp(a) | Transport::Tls { addr: a, .. } if a.ip().is_loopback() => HostRule::Loopback,
                Transport::Tcp(a) | Transport::Tls { addr: a, .. } if a.ip().is_unspecified() => HostRule::ThisMachine,
                _ => HostRule::Any,
            },
            Bound::Unix { .. } => HostRule::Any,
        }
    }

    /// The socket, to register with a `mio::Poll`.
    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match &mut self.0 {
            Bound::Unix { socket, .. } => socket,
            Bound::Tcp { socket, .. } => socket,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Bound::Unix { path, owned: true, inode: Some((dev, ino)), .. } = &mut self.0 {
            // Only the socket we bound: not one another instance made at the path since.
            let ours = files::parent(path).map(|at| {
                let same = at.stat_name(path).ok().flatten().is_some_and(|st| st.st_dev == *dev && st.st_ino == *ino);
                (at, same)
            });
            if let Ok((at, true)) = ours {
                let _ = at.remove();
            }
        }
    }
}

impl Listener {
    /// Removes the socket file at `path` if nobody listens on it any more (`-s`, a hard start):
    /// `Ok(true)` when it was removed. A live one, a symbolic link, or another user's socket is
    /// never removed; `name` is the address, as errors show it.
    pub fn remove_stale(path: &Path, name: &str) -> Result<bool, BindError> {
        let at = files::parent(path).map_err(refused(name))?;
        match recover_stale(&at, path, name) {
            Ok(removed) => Ok(removed),
            Err(BindError::InUse { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Listener {
    /// Gives a unix socket file the daemon created `mode` and, when given, group `gid`
    /// (`--socket-mode`, `--socket-group`), right after bind: the group first, so the wider
    /// mode never applies to the old group. Nothing for TCP or a socket systemd passed.
    ///
    /// The change is made through a descriptor of the socket itself (`O_PATH`, never following
    /// a link), checked to be the one bound (same inode): the directory may belong to the user
    /// the daemon drops to (see [`crate::process::privileges`]), who could swap the name for a
    /// link between a check and a `chmod` by name.
    pub fn set_access(&self, mode: u32, gid: Option<u32>) -> Result<(), BindError> {
        use rustix::fs::{AtFlags, OFlags};
        let Bound::Unix { path, address, owned: true, inode: Some((dev, ino)), .. } = &self.0 else {
            return Ok(());
        };
        let name = address.to_string();
        let io_err = |source: rustix::io::Errno| BindError::Io { addr: name.clone(), source: source.into() };
        let at = files::parent(path).map_err(refused(&name))?;
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&at.dir, &at.name, flags, rustix::fs::Mode::empty()).map_err(io_err)?;
        let st = rustix::fs::fstat(&fd).map_err(io_err)?;
        if (st.st_dev, st.st_ino) != (*dev, *ino) {
            let source = io::Error::other("the socket file was replaced after bind");
            return Err(BindError::Io { addr: name.clone(), source });
        }
        if let Some(gid) = gid {
            let group = rustix::fs::Gid::from_raw(gid);
            rustix::fs::chownat(&fd, "", None, Some(group), AtFlags::EMPTY_PATH).map_err(io_err)?;
        }
        // fchmod does not take an O_PATH descriptor; its /proc name leads to that very inode.
        let mode = rustix::fs::Mode::from_bits_truncate(mode & 0o777);
        let fd_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        rustix::fs::chmod(fd_path.as_str(), mode).map_err(io_err)?;
        Ok(())
    }
}

fn refused(name: &str) -> impl Fn(PathError) -> BindError + '_ {
    move |source| match source {
        PathError::Io { source, .. } => BindError::Io { addr: name.to_owned(), source },
        source => BindError::Refused { addr: name.to_owned(), source },
    }
}

/// Removes a socket file nobody listens on any more (answers whether it did); refuses to touch
/// a live one, a link, or one that is not the daemon's user's.
fn recover_stale(at: &Parent, path: &Path, name: &str) -> Result<bool, BindError> {
    let Some(st) = at.stat_name(path).map_err(refused(name))? else {
        return Ok(false);
    };
    match files::check(&st, path, Kind::Socket, Owner::Euid) {
        Ok(()) => {}
        Err(PathError::WrongKind { .. }) => {
            return Err(BindError::NotASocket { addr: name.to_owned(), path: path.to_owned() })
        }
        Err(e) => return Err(refused(name)(e)),
    }
    // The directory is checked (nobody else can swap the file), so the connect reaches the
    // socket just checked.
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(BindError::InUse { addr: name.to_owned() }),
        // Refused: nobody listens, the file is a leftover. Any other error (no permission, …)
        // says nothing about that, so the file is left alone and bind reports the problem.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::info!("removing stale socket file {}", path.display());
            at.remove().map_err(|e| BindError::Io { addr: name.to_owned(), source: e })?;
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

impl Stream {
    /// Shuts the sending side: the client reads the end of the answers.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Socket::Unix(s) => s.shutdown(std::net::Shutdown::Write),
            Socket::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Socket::Tls(s) => s.shutdown_write(),
        }
    }

    /// The socket (the TCP socket under a TLS session), to register with a `mio::Poll`.
    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match &mut self.0 {
            Socket::Unix(s) => s,
            Socket::Tcp(s) => s,
            Socket::Tls(s) => s.socket(),
        }
    }

    /// Sends what a TLS session holds (handshake, alerts, records a full socket refused):
    /// `Ok(true)` once nothing is left. Plain sockets hold nothing.
    pub fn flush_pending(&mut self) -> io::Result<bool> {
        match &mut self.0 {
            Socket::Tls(s) => s.flush_pending(),
            _ => Ok(true),
        }
    }

    /// The plain socket's descriptor, to hand the connection to a new binary (an upgrade);
    /// `None` for a TLS session, whose state cannot travel.
    pub fn plain_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        match &self.0 {
            Socket::Unix(s) => Some(s.as_fd()),
            Socket::Tcp(s) => Some(s.as_fd()),
            Socket::Tls(_) => None,
        }
    }

    /// Whether bytes the client sent wait in the socket, unread (a plain socket's; a TLS
    /// session says no).
    pub fn input_waiting(&self) -> bool {
        self.plain_fd().is_some_and(|fd| rustix::io::ioctl_fionread(fd).is_ok_and(|n| n > 0))
    }

    /// A connection an old daemon handed over (an upgrade), with who its client is.
    pub fn from_handed(fd: std::os::fd::OwnedFd) -> io::Result<(Stream, Peer)> {
        if rustix::net::getsockname(&fd)?.address_family() == rustix::net::AddressFamily::UNIX {
            let std = std::os::unix::net::UnixStream::from(fd);
            std.set_nonblocking(true)?;
            let s = UnixStream::from_std(std);
            let peer = Peer::of_unix(&s);
            Ok((Stream(Socket::Unix(s)), peer))
        } else {
            let std = std::net::TcpStream::from(fd);
            std.set_nonblocking(true)?;
            let addr = std.peer_addr()?;
            let s = TcpStream::from_std(std);
            let _ = s.set_nodelay(true);
            Ok((Stream(Socket::Tcp(s)), Peer::of_tcp(addr)))
        }
    }

    /// Whether a TLS session holds records not yet sent.
    pub fn has_pending(&self) -> bool {
        matches!(&self.0, Socket::Tls(s) if s.has_pending())
    }

    /// Whether a TLS handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        matches!(&self.0, Socket::Tls(s) if s.is_handshaking())
    }

    /// Whether it is a TLS session (over TCP).
    pub fn is_tls(&self) -> bool {
        matches!(&self.0, Socket::Tls(_))
    }

    /// The common name of the client's verified certificate (mutual TLS), once the handshake
    /// is done; `None` for a plain socket.
    pub fn peer_name(&self) -> Option<String> {
        match &self.0 {
            Socket::Tls(s) => s.peer_name(),
            _ => None,
        }
    }

    /// A TCP socket with a TLS session on it, whose handshake begins.
    pub fn into_tls(self, config: &std::sync::Arc<rustls::ServerConfig>) -> io::Result<Stream> {
        match self.0 {
            Socket::Tcp(s) => Ok(Stream(Socket::Tls(Box::new(TlsStream::new(s, config)?)))),
            other => Ok(Stream(other)),
        }
    }
}

impl io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.0 {
            Socket::Unix(s) => s.read(buf),
            Socket::Tcp(s) => s.read(buf),
            Socket::Tls(s) => s.read(buf),
        }
    }
}

impl io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Socket::Unix(s) => s.write(buf),
            Socket::Tcp(s) => s.write(buf),
            Socket::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
