//! The local syslog socket: one datagram per record, `<PRI>TAG[PID]: MESSAGE` (see the module
//! above for why this form).

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use super::format::{severity, Entry};

/// syslog's `daemon` facility (3), shifted as PRI wants it.
const FACILITY_DAEMON: u8 = 3 << 3;

/// The longest record sent; longer messages are cut (rsyslog's default limit is 8 KiB).
const MAX_DATAGRAM: usize = 8 << 10;

/// A connected, non-blocking datagram socket to the syslog daemon.
pub(super) struct Syslog {
    path: PathBuf,
    socket: Option<UnixDatagram>,
    /// Records that could not be sent since the last one that was.
    dropped: u64,
}

fn open(path: &Path) -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    socket.connect(path)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

impl Syslog {
    /// Connects to the socket at `path`: failing here fails the daemon's start.
    pub(super) fn connect(path: &Path) -> io::Result<Syslog> {
        Ok(Syslog { path: path.to_owned(), socket: Some(open(path)?), dropped: 0 })
    }

    /// Connects again (the syslog daemon was restarted), with the reason when it cannot.
    pub(super) fn reconnect(&mut self) -> Result<(), String> {
        match open(&self.path) {
            Ok(s) => {
                self.socket = Some(s);
                Ok(())
            }
            Err(e) => {
                self.socket = None;
                Err(format!("cannot log to syslog at {}: {e}", self.path.display()))
            }
        }
    }

    /// Sends `entry`, tagged `tag`; never waits. A socket that refuses (its receiver was
    /// restarted) is connected again once; a record that still cannot go is counted, and the
    /// count sent with the next record that can.
    pub(super) fn send(&mut self, entry: &Entry<'_>, tag: &str) {
        let mut datagram = Vec::with_capacity(32 + entry.message.len());
        let pri = FACILITY_DAEMON + severity(entry.level);
        let _ = write!(datagram, "<{pri}>{tag}[{}]: {}", entry.pid, entry.message);
        for (k, v) in &entry.fields.0 {
            let _ = write!(datagram, " {k}={v}");
        }
        if datagram.len() > MAX_DATAGRAM {
            datagram.truncate(MAX_DATAGRAM);
        }
        if !self.try_send(&datagram) {
            self.dropped += 1;
            return;
        }
        if self.dropped > 0 {
            let note = format!(
                "<{}>{tag}[{}]: {} log records could not be sent to {} (its receiver was gone or busy)",
                FACILITY_DAEMON + 4,
                entry.pid,
                self.dropped,
                self.path.display()
            );
            if self.try_send(note.as_bytes()) {
                self.dropped = 0;
            }
        }
    }

    fn try_send(&mut self, datagram: &[u8]) -> bool {
        for attempt in 0..2 {
            if self.socket.is_none() && (attempt > 0 || self.reconnect().is_err()) {
                return false;
            }
            let Some(socket) = &self.socket else { return false };
            match socket.send(datagram) {
                Ok(_) => return true,
                // Busy: dropped, not waited for (the loop must not stall on its log).
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Gone (ECONNREFUSED, ENOTCONN…): once more on a new connection.
                Err(_) => {
                    if attempt == 0 && self.reconnect().is_err() {
                        return false;
                    }
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::Fields;

    #[test]
    fn records_reach_a_datagram_socket_and_survive_its_restart() {
        let dir = std::env::temp_dir().join(format!("tomte-syslog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut s = Syslog::connect(&path).unwrap();
        let entry = |message| Entry {
            level: log::Level::Info,
            target: "t",
            worker: None,
            pid: 7,
            message,
            fields: Fields::default(),
        };
        s.send(&entry("hello"), "echo");
        let mut buf = [0u8; 9000];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<30>echo[7]: hello");
        // The receiver restarts: the record is sent on a new connection.
        drop(server);
        std::fs::remove_file(&path).unwrap();
        s.send(&entry("lost"), "echo");
        let server = UnixDatagram::bind(&path).unwrap();
        s.send(&entry("again"), "echo");
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<30>echo[7]: again");
        let n = server.recv(&mut buf).unwrap();
        let note = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(note.starts_with("<28>echo[7]: 1 log records could not be sent"), "{note}");
        let long = "x".repeat(20_000);
        s.send(&entry(&long), "echo");
        assert_eq!(server.recv(&mut buf).unwrap(), MAX_DATAGRAM);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
