//! The fault codes of the daemon's own errors, in JSON-RPC's server range (−32000 to −32099),
//! beside the protocol codes of [`tomte_rpc::fault`] (−32700 parse error … −32603 internal).
//!
//! | code | message | when |
//! | --- | --- | --- |
//! | −32000 | Server busy / request timeout | a connection limit or deadline was reached |
//! | −32001 | Permission denied | the caller lacks the method's permission |
//! | −32002 | Authentication failed | a wrong token (the connection is then closed) |
//! | −32003 | Timed out | a [`Ctx::timeout`](crate::Ctx::timeout) passed before the answer |
//! | −32010 | Unknown worker | no worker of that name is installed |
//! | −32011 | Worker unavailable | the worker is not running, ended before answering, or its channel is full |
//! | −32020 | Reload refused | `daemon.reload`: the configuration file no longer parses (the data names file:line), or what it asks cannot be applied; nothing was changed |
//! | −32021 | Upgrade failed | `daemon.upgrade`: the new binary could not be started, or failed before it was ready (the data is its own message); the daemon that answers goes on serving, unchanged |

use tomte_rpc::Fault;

/// A connection limit or deadline was reached.
pub const SERVER_BUSY: i32 = -32000;
/// The caller lacks the method's permission.
pub const PERMISSION_DENIED: i32 = tomte_rpc::fault::PERMISSION_DENIED;
/// A wrong token was presented.
pub const AUTH_FAILED: i32 = -32002;
/// A time limit passed before the answer.
pub const TIMED_OUT: i32 = -32003;
/// No worker of that name is installed.
pub const UNKNOWN_WORKER: i32 = -32010;
/// The worker is not running, ended before answering, or cannot take more requests now.
pub const WORKER_UNAVAILABLE: i32 = -32011;
/// A reload was refused: the running configuration is untouched.
pub const RELOAD_REFUSED: i32 = -32020;
/// An upgrade failed: the daemon goes on serving as before.
pub const UPGRADE_FAILED: i32 = -32021;

/// −32010 for worker `name`.
pub fn unknown_worker(name: &str) -> Fault {
    Fault::new(UNKNOWN_WORKER, "Unknown worker").with_data(format!("unknown worker '{name}'"))
}

/// −32011 with the reason.
pub fn worker_unavailable(why: String) -> Fault {
    Fault::new(WORKER_UNAVAILABLE, "Worker unavailable").with_data(why)
}

/// −32000 `title` ("Pool busy", "Worker busy") with the reason: back-pressure, try again later.
pub fn busy(title: &str, why: String) -> Fault {
    Fault::new(SERVER_BUSY, title).with_data(why)
}

/// −32003 "Timed out" with the reason.
pub fn timed_out(why: String) -> Fault {
    Fault::new(TIMED_OUT, "Timed out").with_data(why)
}
