//! The only place in tomte with `unsafe`: thin wrappers over the system calls that have no safe
//! form in rustix (fork, signal dispositions, shared mappings, byte-range locks). Every block says
//! why it is sound.
//!
//! Private to the crate: everything here is `pub(crate)` but [`process::spawn_child`] and
//! [`shm::SharedRegion`], which `crate::_bench` re-exports for the benchmarks.
#![allow(unsafe_code)]

pub(crate) mod eventfd;
pub(crate) mod locks;
pub(crate) mod mem;
pub(crate) mod peercred;
pub(crate) mod privileges;
pub(crate) mod process;
pub(crate) mod reap;
pub(crate) mod shm;
pub(crate) mod signals;
