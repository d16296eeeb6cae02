//! Handing a running daemon over to a new binary (`NAME upgrade`, SIGUSR2, `daemon.upgrade`),
//! as nginx and HAProxy do it: the old process starts the new one with its listening sockets
//! and its pid file's locked descriptor, waits for it to report ready, then drains and exits.
//! A new binary that fails before ready changes nothing: the old keeps serving.
//!
//! What travels, and how:
//!
//! - the listening sockets at descriptors 3, 4, …, announced as socket activation announces
//!   them (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`), each named after the address it was
//!   configured as ([`fd_name`]: `tomte-` and the address, its `:` escaped), so that the new
//!   process, whose configuration may differ, takes the sockets of the addresses it still has
//!   and binds only the new ones. The same names go to systemd's descriptor store.
//! - the pid file's open file description, whose `flock` it carries: the lock is held by one of
//!   the two processes at every moment, so a second `start` never wins and `status` never says
//!   "not running". The new process writes its pid over the old one once it is ready.
//! - the write end of a pipe, where the new process says `READY PID` or `ERROR why`, as a
//!   detached daemon tells `start`: [`TOMTE_UPGRADE`](ENV) names the descriptors.
//! - a socket pair ([`Heir`]) on which, once the new process is ready, the old one hands it
//!   each connection that is owed nothing (no answer owed or unsent), with the bytes it had
//!   read of a request not yet complete: the client keeps its connection and never sees the
//!   change, and what it sends meanwhile waits in the socket for the new process. Connections
//!   busy at that moment follow as soon as their last answer is written; TLS sessions (whose
//!   state cannot travel) and connections holding a token or a subscription are closed
//!   instead, once idle.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::process::{Pid, WaitOptions};

use super::ReadyPipe;

/// The variable that tells a new process it takes over from an old one: `old=PID ready=FD
/// conns=FD` and, when there is a pid file, ` pidfile=FD`.
pub const ENV: &str = "TOMTE_UPGRADE";

/// The prefix of the names of the sockets tomte hands over (or stores in systemd's store).
const NAME_PREFIX: &str = "tomte-";

/// The name a listening socket configured as `address` travels under: `tomte-` and the
/// address, with `%`, `:` and anything but printable ASCII percent-encoded (systemd's
/// descriptor names may not hold `:`, which separates them in `LISTEN_FDNAMES`).
pub fn fd_name(address: &str) -> String {
    let mut name = String::from(NAME_PREFIX);
    for b in address.bytes() {
        if b.is_ascii_graphic() && b != b':' && b != b'%' {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    // systemd's limit on a name's length.
    name.truncate(255);
    name
}

/// Whether `name` is one tomte gave ([`fd_name`]), not systemd's socket unit.
pub fn is_tomte_name(name: &str) -> bool {
    name.starts_with(NAME_PREFIX)
}

/// Where the daemon was started from: the working directory and the binary's path, taken
/// before it detaches (which moves it to `/`), so that the new binary gets the same command
/// line resolved the same way.
struct Origin {
    cwd: PathBuf,
    exe: Option<PathBuf>,
}

static ORIGIN: OnceLock<Origin> = OnceLock::new();

/// Remembers the working directory and the binary's path, once (the first call wins): called
/// by the command-line entry point before it detaches, and by [`Daemon::run`](crate::Daemon::run).
pub fn remember_origin() {
    ORIGIN.get_or_init(|| Origin {
        cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        exe: std::env::current_exe().ok(),
    });
}

/// The binary a plain `upgrade` starts: the path this one was started from (where a package
/// manager or a build puts the new version), which may now hold another file.
pub fn default_binary() -> Option<PathBuf> {
    ORIGIN.get().and_then(|o| o.exe.clone()).map(|p| {
        // A binary replaced on disk shows as "PATH (deleted)" in /proc/self/exe.
        let text = p.to_string_lossy();
        match text.strip_suffix(" (deleted)") {
            Some(path) => PathBuf::from(path),
            None => p,
        }
    })
}

/// The binary to start as the daemon's successor, checked: an absolute path to an executable
/// regular file that only the daemon's user or root may change, in directories only they may
/// change (or sticky ones, as `/tmp`), since the daemon runs it with its own privileges, which
/// may be root's. Links are resolved first, and the path answered is the resolved one, which
/// is what is executed: no link left that another user could swap between the check and the
/// exec. A script's interpreter (`#!`) is held to the same rules. The reason, when refused.
pub fn check_binary(path: &Path) -> Result<PathBuf, String> {
    let real = trusted_file(path)?;
    // A script runs its interpreter with the daemon's privileges: it must be as safe.
    let mut head = [0u8; 256];
    let n = std::fs::File::open(&real).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    if let Some(line) = head[..n].strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        let text = String::from_utf8_lossy(line);
        let interpreter = text.split_whitespace().next().unwrap_or("");
        trusted_file(Path::new(interpreter))
            .map_err(|why| format!("binary {}: its interpreter: {why}", real.display()))?;
    }
    Ok(real)
}

/// `path` resolved, when it is a file [`check_binary`] may run.
fn trusted_file(path: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !path.is_absolute() {
        return Err(format!("binary {}: not an absolute path", path.display()));
    }
    let real = std::fs::canonicalize(path).map_err(|e| format!("binary {}: {e}", path.display()))?;
    let meta = std::fs::metadata(&real).map_err(|e| format!("binary {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("binary {}: not a regular file", path.display()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("binary {}: not executable", path.display()));
    }
    let euid = rustix::process::geteuid().as_raw();
    let trusted = |uid: u32| uid == 0 || uid == euid;
    if !trusted(meta.uid()) {
        return Err(format!(
            "binary {}: owned by uid {}, neither root nor the daemon's user",
            real.display(),
            meta.uid()
        ));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!("binary {}: writable by its group or by others", real.display()));
    }
    for dir in real.ancestors().skip(1) {
        let m = std::fs::metadata(dir).map_err(|e| format!("binary {}: {}: {e}", real.display(), dir.display()))?;
        let mode = m.permissions().mode();
        let sticky = mode & 0o1000 != 0;
        if !trusted(m.uid()) || (mode & 0o022 != 0 && !sticky) {
            return Err(format!(
                "binary {}: directory {} may be changed by another user: the file could be swapped",
                real.display(),
                dir.display()
            ));
        }
    }
    Ok(real)
}

/// What a new process got from the daemon it takes over from.
#[derive(Debug)]
pub struct Inherited {
    /// The old daemon's pid.
    pub old: u32,
    /// Where to say ready, or why not.
    pub ready: ReadyPipe,
    /// The pid file's locked descriptor, when the old daemon had one.
    pub pidfile: Option<OwnedFd>,
    /// Where the old daemon hands over its connections.
    pub conns: Option<Heir>,
}

/// What the old daemon handed this process, once ([`ENV`] is removed, so that a worker or a
/// child never sees it). `None` when this process is not an upgrade, or when the variable
/// does not come from its parent (said in the log).
pub fn inherited() -> Option<Inherited> {
    let text = std::env::var(ENV).ok()?;
    std::env::remove_var(ENV);
    let mut old = None;
    let mut ready = None;
    let mut pidfile = None;
    let mut conns = None;
    for word in text.split_whitespace() {
        match word.split_once('=') {
            Some(("old", v)) => old = v.parse::<u32>().ok(),
            Some(("ready", v)) => ready = v.parse::<i32>().ok(),
            Some(("pidfile", v)) => pidfile = v.parse::<i32>().ok(),
            Some(("conns", v)) => conns = v.parse::<i32>().ok(),
            _ => {}
        }
    }
    let parent = rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32);
    let (Some(old), Some(ready)) = (old, ready) else {
        log::warn!("ignoring {ENV}={text}: garbled");
        return None;
    };
    if parent != Some(old) {
        log::warn!("ignoring {ENV}={text}: pid {old} is not this process's parent");
        return None;
    }
    // The old daemon placed these descriptors for this process alone (its parent, checked
    // above), and the variable is gone, so each is taken once.
    let take = crate::sys::process::take_inherited_fd;
    let ready = ReadyPipe::from_fd(take(ready)?);
    Some(Inherited { old, ready, pidfile: pidfile.and_then(take), conns: conns.and_then(take).map(Heir) })
}

/// Tells the old daemon that this process, its upgrade, cannot start, and why (a command line
/// or configuration it refuses, before the daemon itself runs); nothing when this process is
/// not an upgrade.
pub fn report_failure(why: &str) {
    if std::env::var_os(ENV).is_some() {
        if let Some(mut i) = inherited() {
            i.ready.fail(why);
        }
    }
}

/// How a new process being started has fared so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not ready yet.
    Pending,
    /// Ready, with its pid.
    Ready(u32),
    /// It failed, with its own message (or how it ended).
    Failed(String),
}

/// The old daemon's view of the new process it starts.
#[derive(Debug)]
pub struct Successor {
    pid: Pid,
    pipe: File,
    said: Vec<u8>,
    /// When it must have reported ready.
    pub deadline: Instant,
    /// The binary it runs.
    pub binary: PathBuf,
    /// When it was started.
    pub started: Instant,
    heir: Option<Heir>,
}

impl Successor {
    /// Starts `binary` with this process's command line and environment, handing it
    /// `listeners` (each with its [`fd_name`]) and the pid file's descriptor; it has `timeout`
    /// to report ready.
    pub fn spawn(
        binary: &Path,
        listeners: &[(BorrowedFd<'_>, String)],
        pidfile: Option<BorrowedFd<'_>>,
        timeout: Duration,
    ) -> io::Result<Successor> {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(io::Error::from)?;
        let mut fds: Vec<BorrowedFd<'_>> = listeners.iter().map(|(fd, _)| *fd).collect();
        let names: Vec<&str> = listeners.iter().map(|(_, n)| n.as_str()).collect();
        let mut handover = format!("old={}", std::process::id());
        if let Some(fd) = pidfile {
            handover.push_str(&format!(" pidfile={}", 3 + fds.len()));
            fds.push(fd);
        }
        let (ours, theirs) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC | rustix::net::SocketFlags::NONBLOCK,
            None,
        )
        .map_err(io::Error::from)?;
        handover.push_str(&format!(" conns={}", 3 + fds.len()));
        fds.push(theirs.as_fd());
        let ready = 3 + fds.len() as i32;
        handover.push_str(&format!(" ready={ready}"));
        fds.push(write.as_fd());
        let env = [
            ("LISTEN_FDS".to_owned(), listeners.len().to_string()),
            ("LISTEN_FDNAMES".to_owned(), names.join(":")),
            (ENV.to_owned(), handover),
        ];
        let argv: Vec<OsString> = std::env::args_os().collect();
        let cwd = ORIGIN.get().map_or_else(|| PathBuf::from("/"), |o| o.cwd.clone());
        // The watchdog is the new process's once it is the main one: its pid is not ours.
        let unset = ["WATCHDOG_PID"];
        let pid = crate::sys::process::spawn_exec(binary, &argv, &cwd, &env, &unset, &fds, Some(ready))?;
        drop(write);
        drop(theirs);
        rustix::io::ioctl_fionbio(&read, true).map_err(io::Error::from)?;
        let now = Instant::now();
        Ok(Successor {
            pid,
            pipe: File::from(read),
            said: Vec::new(),
            deadline: now + timeout,
            binary: binary.to_owned(),
            started: now,
            heir: Some(Heir(ours)),
        })
    }

    /// The channel to hand connections on, once it is ready (taken once).
    pub fn take_heir(&mut self) -> Option<Heir> {
        self.heir.take()
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.pid.as_raw_nonzero().get() as u32
    }

    /// The pipe it reports on, to watch for readability.
    pub fn pipe(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }

    /// Reads what it said so far: ready, failed (its message, or how it ended when it said
    /// nothing), or not yet. Past the deadline it is killed and has failed.
    pub fn poll(&mut self, now: Instant) -> Outcome {
        let mut buf = [0u8; 4096];
        loop {
            match self.pipe.read(&mut buf) {
                Ok(0) => return self.said(),
                Ok(n) => {
                    self.said.extend_from_slice(&buf[..n]);
                    self.said.truncate(64 << 10);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Outcome::Failed(format!("cannot read the new process's readiness: {e}")),
            }
        }
        if now >= self.deadline {
            let waited = self.deadline.saturating_duration_since(self.started);
            self.kill();
            return Outcome::Failed(format!("the new process did not report ready within {waited:?}: killed it"));
        }
        Outcome::Pending
    }

    fn said(&mut self) -> Outcome {
        let text = String::from_utf8_lossy(&self.said).into_owned();
        if let Some(pid) = text.strip_prefix("READY ") {
            return pid
                .trim()
                .parse()
                .map_or_else(|_| Outcome::Failed(format!("garbled readiness: {text}")), Outcome::Ready);
        }
        let ended = self.wait(Duration::from_millis(200));
        if let Some(why) = text.strip_prefix("ERROR ") {
            return Outcome::Failed(why.to_owned());
        }
        match ended {
            Some(how) => Outcome::Failed(format!("the new process {how} before it was ready")),
            None => {
                self.kill();
                Outcome::Failed("the new process closed its readiness pipe before it was ready: killed it".to_owned())
            }
        }
    }

    /// Waits up to `within` for it to end; how it ended.
    fn wait(&self, within: Duration) -> Option<String> {
        let until = Instant::now() + within;
        loop {
            match rustix::process::waitpid(Some(self.pid), WaitOptions::NOHANG) {
                Ok(Some((_, status))) => return Some(super::reaper::describe(status)),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(1)),
                // Reaped by someone else, or still running.
                _ => return None,
            }
        }
    }

    /// Reaps it if it has ended (its SIGCHLD): how it ended.
    pub fn reap(&self) -> Option<String> {
        self.wait(Duration::ZERO)
    }

    /// Kills it (a new process that failed to be ready), and reaps it.
    pub fn kill(&self) {
        let _ = rustix::process::kill_process(self.pid, rustix::process::Signal::KILL);
        let _ = rustix::process::waitpid(Some(self.pid), WaitOptions::empty());
    }
}

/// One end of the channel an old daemon hands its connections to the new one on (a
/// `SOCK_SEQPACKET` socket pair: one message per connection, its descriptor attached, the
/// name of the listener that accepted it in the message).
#[derive(Debug)]
pub struct Heir(OwnedFd);

/// A connection handed over.
#[derive(Debug)]
pub struct Migrant {
    /// The [`fd_name`] of the listener that accepted it.
    pub listener: String,
    /// A comodojo connection whose greeter was sent already.
    pub greeted: bool,
    /// What the old daemon had read from it and not served (part of a request).
    pub unread: Vec<u8>,
    /// Its socket.
    pub fd: OwnedFd,
}

impl Heir {
    /// Hands connection `conn`, accepted by listener `listener`, to the new process with the
    /// input `unread` it had not served; the caller then closes its own descriptor (which
    /// neither ends nor resets the connection: the new process holds it). Never blocks: a full
    /// channel is a `WouldBlock` error (try again once the new process has read some).
    pub fn send(&self, conn: BorrowedFd<'_>, listener: &str, greeted: bool, unread: &[u8]) -> io::Result<()> {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
        let mut message = format!("{listener}\n{}\n", if greeted { "greeted" } else { "" }).into_bytes();
        message.extend_from_slice(unread);
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = [conn];
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(io::Error::other("no room for a descriptor"));
        }
        let iov = [io::IoSlice::new(&message)];
        rustix::net::sendmsg(&self.0, &iov, &mut control, SendFlags::DONTWAIT | SendFlags::NOSIGNAL)?;
        Ok(())
    }

    /// The next connection handed over: `Ok(None)` when none waits, an `UnexpectedEof` error
    /// once the old daemon has closed its end (it has handed over all it will).
    pub fn recv(&self) -> io::Result<Option<Migrant>> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        let mut buf = vec![0u8; 1024 + crate::net::MAX_CARRIED];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let got = match rustix::net::recvmsg(
            &self.0,
            &mut iov,
            &mut control,
            RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(got) => got,
            Err(e) if e == rustix::io::Errno::AGAIN => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut fds: Vec<OwnedFd> = Vec::new();
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = m {
                fds.extend(rights);
            }
        }
        if got.bytes == 0 && fds.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut parts = buf[..got.bytes].splitn(3, |&b| b == b'\n');
        let listener = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
        let greeted = parts.next() == Some(b"greeted");
        let unread = parts.next().unwrap_or_default().to_vec();
        // One descriptor per message; more would be a mistake of the sender's: closed.
        let fd = fds.into_iter().next().ok_or_else(|| io::Error::other("a hand-over message without a connection"))?;
        Ok(Some(Migrant { listener, greeted, unread, fd }))
    }

    /// The channel's descriptor, to watch for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_no_colon_and_stay_apart() {
        assert_eq!(fd_name("tcp://127.0.0.1:8080"), "tomte-tcp%3A//127.0.0.1%3A8080");
        assert_eq!(fd_name("unix:///run/a b%.sock"), "tomte-unix%3A///run/a%20b%25.sock");
        assert_ne!(fd_name("tcp://[::1]:1"), fd_name("tcp://[::1]:10"));
        assert!(is_tomte_name(&fd_name("x")));
        assert!(!is_tomte_name("echo.socket"));
        assert!(fd_name(&"x".repeat(400)).len() <= 255);
    }

    #[test]
    fn only_a_safe_binary_is_started() {
        assert!(check_binary(Path::new("bin/echo")).unwrap_err().contains("absolute"));
        assert!(check_binary(Path::new("/nonexistent/tomte")).is_err());
        assert!(check_binary(Path::new("/")).unwrap_err().contains("regular file"));
        let dir = std::env::temp_dir().join(format!("tomte-upgrade-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("bin");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(check_binary(&bin).unwrap_err().contains("not executable"));
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check_binary(&bin).unwrap_err().contains("writable"));
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(check_binary(&bin), Ok(bin.clone()));
        // In a directory others may write (not sticky), it could be swapped.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check_binary(&bin).unwrap_err().contains("may be changed by another user"));
        // A link leads to the file that is checked.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&bin, &link).unwrap();
        // ... and is what runs.
        assert_eq!(check_binary(&link), Ok(bin.clone()));
        // A script whose interpreter another user may change is refused.
        let loose = dir.join("loose");
        std::fs::write(&loose, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(&bin, format!("#!{} -e\n", loose.display())).unwrap();
        assert!(check_binary(&bin).unwrap_err().contains("its interpreter"));
        std::fs::write(&bin, "#!/bin/sh -e\n").unwrap();
        assert_eq!(check_binary(&bin), Ok(bin.clone()));
        std::fs::remove_dir_all(&dir).ok();
    }
}
