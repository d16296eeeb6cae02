//! tomte: solid Unix daemons.

pub mod cli;
pub mod client;
pub mod daemon;
pub mod event;
pub mod logging;
pub mod net;
pub mod process;
pub mod signal;
pub mod sys;
pub mod worker;

pub use daemon::{Config, Ctx, Daemon, DaemonError, Mode};
pub use event::Event;
pub use tomte_rpc::{Args, Fault, Params, Type, Value};

/// A method of a tomte daemon: its handlers receive the daemon's [`Ctx`].
pub type Method = tomte_rpc::Method<Ctx>;
