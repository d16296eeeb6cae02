//! Permissions: what a method requires of its caller (`read`, `call`, `control` or a name of
//! the application's own), and the gate a registry asks before it runs a call.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::fault::Fault;

/// What a caller must hold to run a method. Every method requires exactly one; a
/// [`crate::Method`] requires [`Permission::Call`] unless [`crate::Method::requires`] says
/// otherwise.
///
/// Names, as [`Display`](fmt::Display) writes them and [`FromStr`] reads them: `read`, `call`,
/// `control`; any other name is a [`Permission::Custom`] one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Looking, changing nothing: introspection, status, lists.
    Read,
    /// The application's own methods (the default).
    Call,
    /// Acting on the daemon itself: stopping it, reloading it, driving its workers.
    Control,
    /// A permission the application names, for a finer split than the three above.
    Custom(Cow<'static, str>),
}

impl Permission {
    /// The permission's name.
    pub fn name(&self) -> &str {
        match self {
            Permission::Read => "read",
            Permission::Call => "call",
            Permission::Control => "control",
            Permission::Custom(name) => name,
        }
    }

    /// A custom permission with a name known at compile time.
    pub const fn custom(name: &'static str) -> Permission {
        Permission::Custom(Cow::Borrowed(name))
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a permission name was not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PermissionError {
    /// The name is empty.
    #[error("a permission name cannot be empty")]
    Empty,
    /// The name holds a character other than an ASCII letter, a digit, `.`, `_` or `-`.
    #[error("'{0}' is not a permission name: use letters, digits, '.', '_' or '-'")]
    BadName(String),
}

impl FromStr for Permission {
    type Err = PermissionError;

    fn from_str(s: &str) -> Result<Permission, PermissionError> {
        Ok(match s {
            "" => return Err(PermissionError::Empty),
            "read" => Permission::Read,
            "call" => Permission::Call,
            "control" => Permission::Control,
            _ if s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) => {
                Permission::Custom(Cow::Owned(s.to_owned()))
            }
            _ => return Err(PermissionError::BadName(s.to_owned())),
        })
    }
}

/// Who may run what: a registry with a gate asks it before every call (after finding the
/// method, before validating its parameters), and `system.listMethods` lists only the methods
/// it allows. A registry without one runs every call, as codecs over `()` contexts expect.
///
/// The context `C` is the one handlers receive, so it is where the caller's grants live.
/// A closure `Fn(&C, &Permission) -> bool` is a gate that refuses with
/// [`Fault::permission_denied`] naming "the caller".
pub trait Gate<C> {
    /// Whether the caller now being served holds `permission`. Asked for every call and for
    /// each method `system.listMethods` considers: keep it cheap and without side effects.
    fn allows(&self, ctx: &C, permission: &Permission) -> bool;

    /// The fault that refuses `method` to the caller: [`Fault::permission_denied`], naming
    /// "the caller" unless the gate knows better. Also answers `system.methodHelp` and
    /// `system.methodSignature` about a method the caller may not call.
    fn refusal(&self, ctx: &C, method: &str, permission: &Permission) -> Fault {
        let _ = ctx;
        Fault::permission_denied(method, permission, "the caller")
    }

    /// Decides one call of `method` (which requires `permission`): `Ok` runs it, a fault
    /// refuses it. The place to log refusals and audit the calls let through.
    fn check(&self, ctx: &mut C, method: &str, permission: &Permission) -> Result<(), Fault> {
        if self.allows(ctx, permission) {
            Ok(())
        } else {
            Err(self.refusal(ctx, method, permission))
        }
    }
}

impl<C, F: Fn(&C, &Permission) -> bool> Gate<C> for F {
    fn allows(&self, ctx: &C, permission: &Permission) -> bool {
        self(ctx, permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in ["read", "call", "control", "workers.restart"] {
            let p: Permission = name.parse().unwrap();
            assert_eq!(p.to_string(), name);
        }
        assert_eq!("control".parse::<Permission>(), Ok(Permission::Control));
        assert_eq!("restart".parse::<Permission>(), Ok(Permission::custom("restart")));
        assert!("".parse::<Permission>().is_err());
        assert!("a,b".parse::<Permission>().is_err());
    }
}
