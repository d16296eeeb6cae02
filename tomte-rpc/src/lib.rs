#![warn(missing_docs)]

//! The RPC protocols of tomte, pure: bytes in, bytes out, no I/O and no `unsafe`.
//!
//! * [`Value`]: the value model (XML-RPC's types; JSON maps onto a subset).
//! * [`Method`], [`Type`], [`Params`]: a method with signatures and a handler.
//! * [`Registry`]: lookup, validation of parameters against signatures, dispatch, `system.*`.
//! * [`jsonrpc`]: JSON-RPC 2.0 requests, batches, notifications, responses.
//! * [`xmlrpc`]: XML-RPC calls and responses, every type, hardened decoder.
//! * [`php`]: the PHP `serialize()` subset comodojo frames use (never objects).
//! * [`comodojo`]: comodojo/daemon 1.x frames (base64 of a serialized array + CRLF).
//!
//! A registry is generic over the context `C` its handlers receive: the daemon passes its own,
//! tests pass `()`.

pub mod comodojo;
mod encoding;
pub mod fault;
#[doc(hidden)]
pub mod fuzzing;
pub mod jsonrpc;
pub mod method;
pub mod permission;
pub mod php;
pub mod registry;
pub mod served;
pub mod stats;
mod structure;
pub mod value;
pub mod xmlrpc;

pub use fault::Fault;
pub use method::{Later, Method, Params, Reply, Signature, Type};
pub use permission::{Gate, Permission, PermissionError};
pub use registry::{Args, Protocol, Registry, RegistryError};
pub use served::{Pending, Served};
pub use stats::{MethodStats, Outcome, Stats};
pub use value::{FromValue, Value};

// ---- serde: typed parameters and results, signatures traced from types ----
mod convert;
pub mod schema;
pub mod types;

pub use convert::{from_params, from_value, from_value_as, from_value_strict, to_value, Rules};
pub use types::{Bytes, DateTime};
