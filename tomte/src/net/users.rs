//! User and group names: `/etc/passwd` and `/etc/group`, read by tomte itself and kept until
//! either file changes.
//!
//! Why not NSS (`getpwuid_r`, `getgrouplist`): calling libc's NSS means `unsafe` outside
//! `sys/`, and NSS may load modules (sssd, LDAP) that open sockets and spawn threads inside a
//! daemon that forks workers. Why not the `uzers` crate: it calls NSS the same way. The cost of
//! reading the files ourselves: users and groups that only a directory service knows have no
//! names here (their uid and gid still work in rules, see [`crate::access`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// What a uid and gid are called, and the user's supplementary groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Names {
    pub user: Option<String>,
    pub group: Option<String>,
    /// The gids of the groups `/etc/group` lists the user as a member of.
    pub groups: Vec<u32>,
}

#[derive(Default)]
struct Db {
    /// (mtime, size, inode) of both files when they were read.
    stamp: Option<[(i64, i64, u64, u64); 2]>,
    users: HashMap<u32, String>,
    /// Every `/etc/passwd` entry: (name, uid, primary gid), in file order.
    accounts: Vec<(String, u32, u32)>,
    groups: Vec<Group>,
}

struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

thread_local! {
    // The daemon has one thread; a cache per thread keeps tests and tools honest too.
    static DB: RefCell<Db> = RefCell::new(Db::default());
}

fn stamp() -> Option<[(i64, i64, u64, u64); 2]> {
    let one = |p: &str| std::fs::metadata(p).ok().map(|m| (m.mtime(), m.mtime_nsec(), m.size(), m.ino()));
    Some([one(PASSWD)?, one(GROUP)?])
}

impl Db {
    /// Reads the files again if they changed since (two `stat`s otherwise).
    fn refresh(&mut self) {
        let now = stamp();
        if now.is_some() && now == self.stamp {
            return;
        }
        self.stamp = now;
        let passwd = std::fs::read_to_string(PASSWD).unwrap_or_default();
        self.users = parse_passwd(&passwd);
        self.accounts = parse_accounts(&passwd);
        self.groups = std::fs::read_to_string(GROUP).map(|s| parse_group(&s)).unwrap_or_default();
    }
}

/// `name:password:uid:gid:…` lines; the first name of a uid wins, as getpwuid's does.
fn parse_passwd(text: &str) -> HashMap<u32, String> {
    let mut users = HashMap::new();
    for line in text.lines() {
        let mut f = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next()) else { continue };
        if let (false, Ok(uid)) = (name.is_empty() || name.starts_with(['#', '+', '-']), uid.parse()) {
            users.entry(uid).or_insert_with(|| name.to_owned());
        }
    }
    users
}

/// `name:password:uid:gid:…` lines as (name, uid, gid).
fn parse_accounts(text: &str) -> Vec<(String, u32, u32)> {
    let mut accounts = Vec::new();
    for line in text.lines() {
        let mut f = line.split(':');
        let (Some(name), Some(_), Some(uid), Some(gid)) = (f.next(), f.next(), f.next(), f.next()) else { continue };
        if name.is_empty() || name.starts_with(['#', '+', '-']) {
            continue;
        }
        if let (Ok(uid), Ok(gid)) = (uid.parse(), gid.parse()) {
            accounts.push((name.to_owned(), uid, gid));
        }
    }
    accounts
}

/// `name:password:gid:member,member` lines.
fn parse_group(text: &str) -> Vec<Group> {
    let mut groups = Vec::new();
    for line in text.lines() {
        let mut f = line.split(':');
        let (Some(name), Some(_), Some(gid), members) = (f.next(), f.next(), f.next(), f.next()) else { continue };
        if name.is_empty() || name.starts_with(['#', '+', '-']) {
            continue;
        }
        let Ok(gid) = gid.parse() else { continue };
        let members = members.unwrap_or("").split(',').filter(|m| !m.is_empty()).map(str::to_owned).collect();
        groups.push(Group { name: name.to_owned(), gid, members });
    }
    groups
}

/// The names of `uid` and `gid`, and the supplementary groups of `uid`'s user.
pub(crate) fn names(uid: u32, gid: Option<u32>) -> Names {
    DB.with(|db| {
        let mut db = db.borrow_mut();
        db.refresh();
        let user = db.users.get(&uid).cloned();
        let group = gid.and_then(|g| db.groups.iter().find(|x| x.gid == g)).map(|x| x.name.clone());
        let groups = match &user {
            Some(u) => db.groups.iter().filter(|g| g.members.iter().any(|m| m == u)).map(|g| g.gid).collect(),
            None => Vec::new(),
        };
        Names { user, group, groups }
    })
}

/// The gid of group `name`, if `/etc/group` has it.
pub(crate) fn gid_of(name: &str) -> Option<u32> {
    DB.with(|db| {
        let mut db = db.borrow_mut();
        db.refresh();
        db.groups.iter().find(|g| g.name == name).map(|g| g.gid)
    })
}

/// A user of `/etc/passwd`, found by name or uid (the first entry of a uid): its name, uid,
/// primary gid, and the gids of the groups `/etc/group` lists it as a member of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// The account named `name`, or whose uid `name` is (a number), if `/etc/passwd` has it.
pub(crate) fn account(name: &str) -> Option<Account> {
    DB.with(|db| {
        let mut db = db.borrow_mut();
        db.refresh();
        let by_uid = name.parse::<u32>().ok();
        let (name, uid, gid) =
            db.accounts.iter().find(|a| a.0 == name).or_else(|| db.accounts.iter().find(|a| Some(a.1) == by_uid))?;
        let groups = db.groups.iter().filter(|g| g.members.iter().any(|m| m == name)).map(|g| g.gid).collect();
        Some(Account { name: name.clone(), uid: *uid, gid: *gid, groups })
    })
}

/// The name of group `gid`, if `/etc/group` has it.
pub(crate) fn group_name(gid: u32) -> Option<String> {
    DB.with(|db| {
        let mut db = db.borrow_mut();
        db.refresh();
        db.groups.iter().find(|g| g.gid == gid).map(|g| g.name.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_lines() {
        let users = parse_passwd("root:x:0:0:root:/root:/bin/sh\n#x:x:5:5\nbad\nnobody:x:65534:65534::/:/bin/false\n");
        assert_eq!(users.get(&0).map(String::as_str), Some("root"));
        assert_eq!(users.get(&65534).map(String::as_str), Some("nobody"));
        assert_eq!(users.len(), 2);
        let accounts = parse_accounts("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\nx:x:y:1\n");
        assert_eq!(accounts, [("root".to_owned(), 0, 0), ("nobody".to_owned(), 65534, 65534)]);
        let groups = parse_group("ops:x:1001:alice,bob\nnogroup:x:65534:\n");
        assert_eq!(groups[0].members, ["alice", "bob"]);
        assert_eq!(groups[1].gid, 65534);
        assert!(groups[1].members.is_empty());
    }

    #[test]
    fn root_is_known_here() {
        assert_eq!(names(0, Some(0)).user.as_deref(), Some("root"));
        assert_eq!(gid_of("root"), Some(0));
        let root = account("root").expect("root is in /etc/passwd");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(account("0").map(|a| a.name), Some("root".to_owned()));
        assert_eq!(account("no-such-user-here"), None);
        assert_eq!(group_name(0).as_deref(), Some("root"));
    }
}
