//! Workers: forked child processes with their own loop, supervised by the daemon.

pub mod channel;
