//! Files nobody else can hijack: the pid file, the log and the unix socket are opened in a
//! directory only the daemon's user (or root) can change, never through a symbolic link, and an
//! existing one is used only when it is the daemon's own.
//!
//! The rules, checked before any of these files is created, opened, truncated or removed:
//!
//! * **The directory.** Every directory from `/` down to the one holding the file (after
//!   symbolic links are resolved) belongs to root or to the daemon's effective user, and is
//!   writable by nobody else — unless it has the sticky bit, as `/tmp` has, where others cannot
//!   rename or remove what is ours. A symbolic link on the way must belong to root or to the
//!   daemon's user too: one planted by someone else in `/tmp` would send us anywhere.
//! * **A new file** is created with `O_CREAT | O_EXCL | O_NOFOLLOW`, relative to the directory
//!   already opened and checked: nothing can be waiting at its name.
//! * **An existing file** is opened with `O_NOFOLLOW` (a symbolic link is refused) and checked
//!   on the open descriptor (`fstat`, so no swap between check and use): of the expected kind,
//!   owned by the daemon's user, writable by no one else, and with a single hard link (a second
//!   name could be anyone's file).

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Why a path was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The file is a symbolic link, which is never followed.
    #[error("{path} is a symbolic link: refusing to follow it")]
    Symlink {
        /// The file's path.
        path: PathBuf,
    },
    /// A symbolic link on the way to the file's directory belongs to neither root nor the
    /// daemon's user.
    #[error("{path} is a symbolic link owned by uid {owner}, neither root nor the daemon's user (uid {euid})")]
    ForeignSymlink {
        /// The link's path.
        path: PathBuf,
        /// The uid that owns the link.
        owner: u32,
        /// The daemon's effective uid.
        euid: u32,
    },
    /// The file belongs to another user than the daemon's (root's is accepted too for a file
    /// that is only read).
    #[error("{path} is owned by uid {owner}, not by the daemon's user (uid {euid})")]
    NotOwned {
        /// The file's path.
        path: PathBuf,
        /// The uid that owns the file.
        owner: u32,
        /// The daemon's effective uid.
        euid: u32,
    },
    /// The file (other than a socket) is writable by its group or by others.
    #[error("{path} is writable by users other than its owner (mode {mode:04o})")]
    Writable {
        /// The file's path.
        path: PathBuf,
        /// Its permission bits (`mode & 0o7777`).
        mode: u32,
    },
    /// The regular file's link count is not 1: a second name could be another user's.
    #[error("{path} has {links} hard links: it may be another file under a second name")]
    Linked {
        /// The file's path.
        path: PathBuf,
        /// Its number of hard links.
        links: u64,
    },
    /// The file is not of the kind expected: a regular file, or a socket.
    #[error("{path} is not a {expected}")]
    WrongKind {
        /// The file's path.
        path: PathBuf,
        /// The kind expected: `regular file` or `socket`.
        expected: &'static str,
    },
    /// A directory on the way is writable by its group or by others, and has no sticky bit.
    #[error("directory {path} is writable by other users without the sticky bit (mode {mode:04o})")]
    OpenDir {
        /// The directory's path.
        path: PathBuf,
        /// Its permission bits (`mode & 0o7777`).
        mode: u32,
    },
    /// A directory on the way belongs to neither root nor the daemon's user.
    #[error("directory {path} is owned by uid {owner}, neither root nor the daemon's user (uid {euid})")]
    ForeignDir {
        /// The directory's path.
        path: PathBuf,
        /// The uid that owns the directory.
        owner: u32,
        /// The daemon's effective uid.
        euid: u32,
    },
    /// The path does not end in a file name: it is empty, `/`, `.` or ends in `..`.
    #[error("{path} does not name a file in a directory")]
    NoName {
        /// The path as given.
        path: PathBuf,
    },
    /// The file, or a directory on its way, could not be examined, opened or created.
    #[error("cannot check {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The error the system gave.
        source: io::Error,
    },
}

/// What a file must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Regular,
    Socket,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Regular => "regular file",
            Kind::Socket => "socket",
        }
    }
    fn matches(self, t: FileType) -> bool {
        match self {
            Kind::Regular => t == FileType::RegularFile,
            Kind::Socket => t == FileType::Socket,
        }
    }
}

/// Whose an existing file may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The daemon's effective user only: files it writes or removes.
    Euid,
    /// The effective user or root: files it only reads (`stop` run by a user for a root daemon
    /// is refused later, by the kernel).
    EuidOrRoot,
}

/// How a file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    ReadWrite,
    Append,
}

/// A checked directory, open, and the name of a file in it.
#[derive(Debug)]
pub(crate) struct Parent {
    pub(crate) dir: OwnedFd,
    pub(crate) name: OsString,
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> PathError + '_ {
    move |source| PathError::Io { path: path.to_owned(), source }
}

/// Checks the directory that holds `file` (see the module docs) and opens it.
pub(crate) fn parent(file: &Path) -> Result<Parent, PathError> {
    let euid = euid();
    let name = match file.components().next_back() {
        Some(Component::Normal(n)) => n.to_owned(),
        _ => return Err(PathError::NoName { path: file.to_owned() }),
    };
    let given = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => std::env::current_dir().map_err(io_at(file))?,
    };
    // Symbolic links on the way: root's or ours only.
    let mut prefix = PathBuf::new();
    for c in given.components() {
        prefix.push(c);
        let meta = std::fs::symlink_metadata(&prefix).map_err(io_at(&prefix))?;
        if meta.file_type().is_symlink() && meta.uid() != 0 && meta.uid() != euid {
            return Err(PathError::ForeignSymlink { path: prefix, owner: meta.uid(), euid });
        }
    }
    let real = std::fs::canonicalize(&given).map_err(io_at(&given))?;
    let dir =
        rustix::fs::open(&real, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| PathError::Io { path: real.clone(), source: e.into() })?;
    // The directory itself through its descriptor, its ancestors by path (they cannot be
    // swapped: each is checked to be changeable by root and us only).
    let st = rustix::fs::fstat(&dir).map_err(|e| PathError::Io { path: real.clone(), source: e.into() })?;
    check_dir(&real, st.st_uid, st.st_mode, euid)?;
    for ancestor in real.ancestors().skip(1) {
        let meta = std::fs::symlink_metadata(ancestor).map_err(io_at(ancestor))?;
        check_dir(ancestor, meta.uid(), meta.mode(), euid)?;
    }
    Ok(Parent { dir, name })
}

fn check_dir(path: &Path, owner: u32, mode: u32, euid: u32) -> Result<(), PathError> {
    if owner != 0 && owner != euid {
        return Err(PathError::ForeignDir { path: path.to_owned(), owner, euid });
    }
    let sticky = mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !sticky {
        return Err(PathError::OpenDir { path: path.to_owned(), mode: mode & 0o7777 });
    }
    Ok(())
}

/// Checks an open file (or the status of a path not followed) against the rules.
pub(crate) fn check(st: &rustix::fs::Stat, path: &Path, kind: Kind, owner: Owner) -> Result<(), PathError> {
    let euid = euid();
    let file_type = FileType::from_raw_mode(st.st_mode as _);
    if file_type == FileType::Symlink {
        return Err(PathError::Symlink { path: path.to_owned() });
    }
    if !kind.matches(file_type) {
        return Err(PathError::WrongKind { path: path.to_owned(), expected: kind.name() });
    }
    let ok_owner = st.st_uid == euid || (owner == Owner::EuidOrRoot && st.st_uid == 0);
    if !ok_owner {
        return Err(PathError::NotOwned { path: path.to_owned(), owner: st.st_uid, euid });
    }
    let mode = st.st_mode;
    // A socket's write bits only say who may connect (`--socket-mode`): the file itself cannot
    // be written through, so a group- or world-connectable socket of ours is still ours.
    if mode & 0o022 != 0 && kind != Kind::Socket {
        return Err(PathError::Writable { path: path.to_owned(), mode: mode & 0o7777 });
    }
    if kind == Kind::Regular && st.st_nlink != 1 {
        return Err(PathError::Linked { path: path.to_owned(), links: st.st_nlink });
    }
    Ok(())
}

impl Parent {
    /// Creates the file (`O_EXCL`), or opens the existing one without following a link and
    /// checks it is ours. Answers the file and whether it was created.
    pub(crate) fn create_or_open(&self, path: &Path, access: Access, mode: u32) -> Result<(File, bool), PathError> {
        let base = match access {
            Access::ReadWrite => OFlags::RDWR,
            Access::Append => OFlags::WRONLY | OFlags::APPEND,
        } | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NOCTTY;
        let create = base | OFlags::CREATE | OFlags::EXCL;
        match rustix::fs::openat(&self.dir, &self.name, create, Mode::from_bits_truncate(mode)) {
            Ok(fd) => return Ok((File::from(fd), true)),
            Err(Errno::EXIST) => {}
            Err(e) => return Err(PathError::Io { path: path.to_owned(), source: e.into() }),
        }
        // NONBLOCK: a FIFO planted there must not hang the open (it is refused just after).
        let file = self.open(path, base | OFlags::NONBLOCK, Owner::Euid)?;
        Ok((file, false))
    }

    /// Opens the existing file read-only (never following a link) and checks it is a regular
    /// file of `owner`'s; `None` when there is none.
    pub(crate) fn open_existing(&self, path: &Path, owner: Owner) -> Result<Option<File>, PathError> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        match self.open(path, flags, owner) {
            Ok(f) => Ok(Some(f)),
            Err(PathError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open(&self, path: &Path, flags: OFlags, owner: Owner) -> Result<File, PathError> {
        let fd = match rustix::fs::openat(&self.dir, &self.name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP) => return Err(PathError::Symlink { path: path.to_owned() }),
            Err(e) => return Err(PathError::Io { path: path.to_owned(), source: e.into() }),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| PathError::Io { path: path.to_owned(), source: e.into() })?;
        check(&st, path, Kind::Regular, owner)?;
        Ok(File::from(fd))
    }

    /// The status of the name, not following a link; `None` when there is nothing there.
    pub(crate) fn stat_name(&self, path: &Path) -> Result<Option<rustix::fs::Stat>, PathError> {
        match rustix::fs::statat(&self.dir, &self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(PathError::Io { path: path.to_owned(), source: e.into() }),
        }
    }

    /// Whether the name still is the file `st` describes (same device and inode).
    pub(crate) fn names(&self, st: &rustix::fs::Stat) -> bool {
        matches!(rustix::fs::statat(&self.dir, &self.name, AtFlags::SYMLINK_NOFOLLOW),
            Ok(now) if now.st_dev == st.st_dev && now.st_ino == st.st_ino)
    }

    /// Removes the name (never what a link points at: unlink does not follow).
    pub(crate) fn remove(&self) -> io::Result<()> {
        rustix::fs::unlinkat(&self.dir, &self.name, AtFlags::empty()).map_err(io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tomte-files-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    #[test]
    fn new_files_are_created_and_links_refused() {
        let d = tmp("new");
        let path = d.join("a.pid");
        let p = parent(&path).unwrap();
        let (_, created) = p.create_or_open(&path, Access::ReadWrite, 0o644).unwrap();
        assert!(created);
        let (_, created) = p.create_or_open(&path, Access::ReadWrite, 0o644).unwrap();
        assert!(!created);
        let link = d.join("b.pid");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let p = parent(&link).unwrap();
        assert!(matches!(p.create_or_open(&link, Access::Append, 0o640), Err(PathError::Symlink { .. })));
        std::fs::hard_link(&path, d.join("c.pid")).unwrap();
        let p = parent(&path).unwrap();
        assert!(matches!(p.create_or_open(&path, Access::Append, 0o640), Err(PathError::Linked { links: 2, .. })));
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn open_directories_are_refused_unless_sticky() {
        let d = tmp("dir");
        let open = d.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(parent(&open.join("x.pid")), Err(PathError::OpenDir { mode: 0o777, .. })));
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(parent(&open.join("x.pid")).is_ok());
        std::fs::remove_dir_all(&d).ok();
    }
}
