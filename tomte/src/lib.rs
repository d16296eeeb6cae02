//! tomte: solid Unix daemons.

pub mod sys;
pub mod worker;
