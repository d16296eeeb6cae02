//! The only place in tomte with `unsafe`: thin wrappers over the system calls that have no safe
//! form in rustix (fork, signal dispositions, shared mappings). Every block says why it is sound.
#![allow(unsafe_code)]

pub mod eventfd;
pub mod mem;
pub mod process;
pub mod shm;
pub mod signals;
