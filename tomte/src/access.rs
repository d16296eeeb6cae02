//! Access control: who holds which permissions, decided once per connection.
//!
//! Every method requires one [`Permission`] (`read`, `call`, `control` or a custom name; see
//! [`tomte_rpc::Method::requires`]). When a connection is accepted, its [`Peer`] is matched
//! against the [`Policy`], and the [`Grants`] that come out are kept with the connection. Every
//! call is then checked against them before its parameters are validated: a call the caller
//! may not make is answered −32001 "Permission denied" (JSON-RPC error, XML-RPC fault,
//! comodojo `status: false`), naming the method, the permission and the caller.
//!
//! # Defaults
//!
//! * unix sockets: the daemon's own user (its euid) and root hold every permission; anyone
//!   else holds none unless a rule names them — even when the socket's mode lets them connect;
//! * TCP: an anonymous client (neither certificate nor token) holds `read` and `call`, so
//!   `control` over TCP takes a rule (`anonymous=all` gives it back, with a warning at start).
//!
//! # Rules
//!
//! `WHO=PERM[,PERM…]` (`--allow`, or [`crate::Daemon::allow`]); rules add up: a peer holds the
//! defaults plus the permissions of every rule that matches it. WHO is `user:NAME`, `uid:N`,
//! `group:NAME`, `gid:N`, `cert:CN`, `token:NAME` or `anonymous`; PERM a permission name or
//! `all`. A `group:`/`gid:` rule matches the peer's primary gid (from `SO_PEERCRED`) and the
//! supplementary groups `/etc/group` lists the user in; names come from `/etc/passwd` and
//! `/etc/group` only (not from NSS directory services: use `uid:`/`gid:` for those users).
//!
//! # Audit
//!
//! Every call that needs `control` is logged at info level with the caller and the method's
//! name (never its parameters); refusals are logged as warnings, at most one every ten seconds.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use tomte_rpc::{Fault, Gate, Permission, PermissionError};

use crate::daemon::Ctx;
use crate::net::Peer;

/// A set of permissions: some of the three standard ones, custom ones by name, or all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    all: bool,
    /// Read, call, control: bits 0, 1, 2.
    bits: u8,
    custom: Vec<Cow<'static, str>>,
}

impl Grants {
    /// No permission at all.
    pub fn none() -> Grants {
        Grants::default()
    }

    /// Every permission, custom ones included.
    pub fn all() -> Grants {
        Grants { all: true, ..Grants::default() }
    }

    /// Exactly these permissions.
    pub fn of(permissions: impl IntoIterator<Item = Permission>) -> Grants {
        let mut g = Grants::none();
        for p in permissions {
            g.add(p);
        }
        g
    }

    /// Adds one permission.
    pub fn add(&mut self, p: Permission) {
        match p {
            Permission::Read => self.bits |= 1,
            Permission::Call => self.bits |= 2,
            Permission::Control => self.bits |= 4,
            Permission::Custom(name) => {
                if !self.custom.contains(&name) {
                    self.custom.push(name);
                }
            }
        }
    }

    /// Adds every permission of `other`.
    pub fn union(&mut self, other: &Grants) {
        self.all |= other.all;
        self.bits |= other.bits;
        for name in &other.custom {
            if !self.custom.contains(name) {
                self.custom.push(name.clone());
            }
        }
    }

    /// Whether `p` is granted.
    #[inline]
    pub fn allows(&self, p: &Permission) -> bool {
        self.all
            || match p {
                Permission::Read => self.bits & 1 != 0,
                Permission::Call => self.bits & 2 != 0,
                Permission::Control => self.bits & 4 != 0,
                Permission::Custom(name) => self.custom.iter().any(|c| c == name),
            }
    }

    /// Whether every permission is granted.
    pub fn is_all(&self) -> bool {
        self.all
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        !self.all && self.bits == 0 && self.custom.is_empty()
    }

    /// The names: `["all"]`, or each permission's.
    pub fn names(&self) -> Vec<String> {
        if self.all {
            return vec!["all".to_owned()];
        }
        let std = [(1, "read"), (2, "call"), (4, "control")];
        let mut names: Vec<String> =
            std.iter().filter(|(b, _)| self.bits & b != 0).map(|(_, n)| (*n).to_owned()).collect();
        names.extend(self.custom.iter().map(|c| c.to_string()));
        names
    }
}

impl fmt::Display for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&self.names().join(","))
    }
}

/// Why a rule or a permission list was not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The rule has no `=` (the rule is given).
    #[error("'{0}' is not WHO=PERM[,PERM...]")]
    NoEquals(String),
    /// WHO is none of the forms a peer is named by (the text is given).
    #[error("'{0}' is not a peer: use user:NAME, uid:N, group:NAME, gid:N, cert:CN, token:NAME or anonymous")]
    BadWho(String),
    /// The rule names no permission (its WHO is given).
    #[error("no permission given for {0}")]
    NoPermission(String),
    /// A permission name is empty, or holds a character a name may not have.
    #[error(transparent)]
    Permission(#[from] PermissionError),
    /// What follows `@` is not a listener's address (the reason is given).
    #[error("after '@': {0}")]
    Listener(String),
}

impl FromStr for Grants {
    type Err = RuleError;

    /// `all`, or permission names separated by commas.
    fn from_str(s: &str) -> Result<Grants, RuleError> {
        let mut g = Grants::none();
        for name in s.split(',').map(str::trim) {
            if name == "all" {
                g.all = true;
            } else {
                g.add(name.parse()?);
            }
        }
        Ok(g)
    }
}

/// Whom a rule is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// A unix peer whose uid `/etc/passwd` names so.
    User(String),
    /// A unix peer of this uid.
    Uid(u32),
    /// A unix peer whose primary or supplementary group `/etc/group` names so.
    Group(String),
    /// A unix peer whose primary or supplementary group has this gid.
    Gid(u32),
    /// A client whose verified certificate has this common name.
    Cert(String),
    /// A client that presented the token of this name.
    Token(String),
    /// A TCP client with neither certificate nor token.
    Anonymous,
}

impl Who {
    /// Whether `peer` is the one meant.
    pub fn matches(&self, peer: &Peer) -> bool {
        match self {
            Who::User(name) => peer.uid().is_some() && peer.user.as_deref() == Some(name.as_str()),
            Who::Uid(uid) => peer.uid() == Some(*uid),
            Who::Group(name) => {
                peer.uid().is_some()
                    && (peer.group.as_deref() == Some(name.as_str())
                        || crate::net::gid_of(name).is_some_and(|gid| peer.in_group(gid)))
            }
            Who::Gid(gid) => peer.uid().is_some() && peer.in_group(*gid),
            Who::Cert(cn) => peer.cert.as_deref() == Some(cn.as_str()),
            Who::Token(name) => peer.token.as_deref() == Some(name.as_str()),
            Who::Anonymous => peer.is_anonymous(),
        }
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::User(n) => write!(f, "user:{n}"),
            Who::Uid(n) => write!(f, "uid:{n}"),
            Who::Group(n) => write!(f, "group:{n}"),
            Who::Gid(n) => write!(f, "gid:{n}"),
            Who::Cert(n) => write!(f, "cert:{n}"),
            Who::Token(n) => write!(f, "token:{n}"),
            Who::Anonymous => f.write_str("anonymous"),
        }
    }
}

impl FromStr for Who {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Who, RuleError> {
        let bad = || RuleError::BadWho(s.to_owned());
        if s == "anonymous" {
            return Ok(Who::Anonymous);
        }
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        let id = || name.parse::<u32>().map_err(|_| bad());
        Ok(match kind {
            "user" => Who::User(name.to_owned()),
            "uid" => Who::Uid(id()?),
            "group" => Who::Group(name.to_owned()),
            "gid" => Who::Gid(id()?),
            "cert" => Who::Cert(name.to_owned()),
            "token" => Who::Token(name.to_owned()),
            _ => return Err(bad()),
        })
    }
}

/// One rule: `who` holds `grants`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Whom it is about.
    pub who: Who,
    /// What it grants.
    pub grants: Grants,
    /// The listener it applies to (its address as `--socket` writes it); every listener if none.
    pub on: Option<String>,
}

impl Rule {
    /// Whether it applies to `peer`.
    pub fn matches(&self, peer: &Peer) -> bool {
        self.who.matches(peer) && self.on.as_ref().is_none_or(|on| peer.listener.as_ref() == Some(on))
    }
}

impl FromStr for Rule {
    type Err = RuleError;

    /// `WHO=PERM[,PERM…][@ADDRESS]`, as `--allow` takes it: with `@ADDRESS`, on that listener
    /// only.
    fn from_str(s: &str) -> Result<Rule, RuleError> {
        let (who, rest) = s.split_once('=').ok_or_else(|| RuleError::NoEquals(s.to_owned()))?;
        let who: Who = who.trim().parse()?;
        let (perms, on) = match rest.split_once('@') {
            Some((perms, addr)) => {
                let addr: crate::net::Address =
                    addr.trim().parse().map_err(|e: crate::net::AddressError| RuleError::Listener(e.to_string()))?;
                (perms, Some(addr.to_string()))
            }
            None => (rest, None),
        };
        if perms.trim().is_empty() {
            return Err(RuleError::NoPermission(who.to_string()));
        }
        Ok(Rule { who, grants: perms.parse()?, on })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.who, self.grants)?;
        match &self.on {
            Some(on) => write!(f, "@{on}"),
            None => Ok(()),
        }
    }
}

/// The rules that map identities to permissions, on top of the defaults (see the [module
/// docs](self)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    /// With a token file: an anonymous TCP client holds nothing (but `daemon.auth`).
    tokens_required: bool,
}

impl Policy {
    /// Adds a rule.
    pub fn allow(&mut self, who: Who, grants: Grants) -> &mut Self {
        self.rules.push(Rule { who, grants, on: None });
        self
    }

    /// Adds a rule, listener scope included.
    pub fn add(&mut self, rule: Rule) -> &mut Self {
        self.rules.push(rule);
        self
    }

    /// The rules, in the order they were added.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// What `peer` holds: the defaults, plus every matching rule's permissions. `owner` is the
    /// daemon's euid.
    pub fn grants(&self, peer: &Peer, owner: u32) -> Grants {
        let mut g = match peer.uid() {
            Some(uid) if uid == owner || uid == 0 => return Grants::all(),
            Some(_) => Grants::none(),
            None if peer.is_anonymous() && self.tokens_required => Grants::none(),
            None if peer.is_anonymous() => Grants::of([Permission::Read, Permission::Call]),
            // A verified certificate (or token) proves who the client is: one that no rule
            // names holds everything, one that a rule names holds what its rules say.
            None => {
                let named = self.rules.iter().any(|r| matches!(r.who, Who::Cert(_) | Who::Token(_)) && r.matches(peer));
                if named {
                    Grants::none()
                } else {
                    return Grants::all();
                }
            }
        };
        for rule in &self.rules {
            if rule.matches(peer) {
                g.union(&rule.grants);
            }
        }
        g
    }

    /// With tokens: anonymous TCP clients hold nothing until they present one.
    pub(crate) fn require_tokens(&mut self) {
        self.tokens_required = true;
    }

    /// Whether a rule gives anonymous TCP clients everything (then the daemon warns at start).
    pub fn anonymous_all(&self) -> bool {
        self.rules.iter().any(|r| r.who == Who::Anonymous && r.grants.is_all())
    }
}

/// What authenticating a connection by token needs: the tokens, and the policy that gives the
/// token's name its grants.
#[derive(Debug)]
pub(crate) struct Auth {
    pub(crate) tokens: crate::tokens::Tokens,
    pub(crate) policy: Policy,
    pub(crate) owner: u32,
}

/// The permission of `daemon.auth`, which every caller holds: how a client without one gets any.
pub(crate) const AUTH: &str = "auth";

/// A connection's identity and what it may do: what handlers see of their caller.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) peer: Peer,
    pub(crate) grants: Grants,
}

/// The daemon's gate: checks each call against the grants of the connection being served,
/// logs refusals (throttled) and audits calls that need `control` or a custom permission.
pub(crate) struct DaemonGate;

impl<S> Gate<Ctx<S>> for DaemonGate {
    #[inline]
    fn allows(&self, ctx: &Ctx<S>, permission: &Permission) -> bool {
        if matches!(permission, Permission::Custom(name) if name == AUTH) {
            return true;
        }
        ctx.caller.as_ref().is_some_and(|c| c.grants.allows(permission))
    }

    fn refusal(&self, ctx: &Ctx<S>, method: &str, permission: &Permission) -> Fault {
        match &ctx.caller {
            Some(c) => Fault::permission_denied(method, permission, &c.peer.to_string()),
            None => Fault::permission_denied(method, permission, "an unknown caller"),
        }
    }

    fn check(&self, ctx: &mut Ctx<S>, method: &str, permission: &Permission) -> Result<(), Fault> {
        if self.allows(ctx, permission) {
            // Control, and the application's own permissions (a method moved off control, as
            // `--require worker.restart=restart` does, stays audited); never `daemon.auth`.
            let audited = match permission {
                Permission::Control => true,
                Permission::Custom(name) => name != AUTH,
                Permission::Read | Permission::Call => false,
            };
            if audited {
                if let Some(c) = &ctx.caller {
                    log::info!("audit: {} calls {method}", c.peer);
                }
            }
            return Ok(());
        }
        let fault = self.refusal(ctx, method, permission);
        let who = ctx.caller.as_ref().map(|c| (c.peer.to_string(), c.grants.to_string()));
        ctx.refusals.warn(|| {
            let (who, held) = who.unwrap_or_default();
            format!("refused {method} to {who}: it requires '{permission}', the caller holds {held}")
        });
        Err(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(uid: u32, gid: u32) -> Peer {
        Peer::unix(uid, Some(gid), Some(1))
    }

    #[test]
    fn rules_parse_and_print() {
        let r: Rule = "group:ops=read,control".parse().unwrap();
        assert_eq!(r.who, Who::Group("ops".into()));
        assert!(r.grants.allows(&Permission::Control) && !r.grants.allows(&Permission::Call));
        assert_eq!(r.to_string(), "group:ops=read,control");
        assert!("anonymous=all".parse::<Rule>().unwrap().grants.is_all());
        assert_eq!("uid:7=workers.restart".parse::<Rule>().unwrap().grants.names(), ["workers.restart"]);
        for bad in ["uid:x=read", "nobody=read", "uid:1", "uid:1=", "user:=read", "uid:1=a b"] {
            assert!(bad.parse::<Rule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_owner_and_root_everything_others_nothing_anonymous_read_call() {
        let p = Policy::default();
        assert!(p.grants(&unix(0, 0), 1000).is_all());
        assert!(p.grants(&unix(1000, 1000), 1000).is_all());
        assert!(p.grants(&unix(65534, 65534), 1000).is_empty());
        let tcp = Peer::of_tcp("127.0.0.1:5".parse().unwrap());
        let g = p.grants(&tcp, 0);
        assert!(g.allows(&Permission::Read) && g.allows(&Permission::Call) && !g.allows(&Permission::Control));
    }

    #[test]
    fn rules_add_up() {
        let mut p = Policy::default();
        p.allow(Who::Uid(65534), "read".parse().unwrap());
        p.allow(Who::Gid(65534), Grants::of([Permission::custom("restart")]));
        p.allow(Who::Uid(4), Grants::all());
        let g = p.grants(&unix(65534, 65534), 0);
        assert_eq!(g.names(), ["read", "restart"]);
        assert!(!g.allows(&Permission::Control));
        // A TCP client is never a uid or gid.
        let tcp = Peer::of_tcp("127.0.0.1:5".parse().unwrap());
        assert!(!p.grants(&tcp, 0).allows(&Permission::custom("restart")));
        p.allow(Who::Anonymous, Grants::all());
        assert!(p.anonymous_all() && p.grants(&tcp, 0).is_all());
    }

    #[test]
    fn groups_match_the_primary_and_the_supplementary_gids() {
        let mut peer = unix(5000, 5000);
        peer.groups = vec![27];
        assert!(Who::Gid(5000).matches(&peer) && Who::Gid(27).matches(&peer) && !Who::Gid(1).matches(&peer));
        assert!(Who::Group("root".into()).matches(&unix(5000, 0)));
    }
}
