//! Benchmarks of tomte side by side with hand-written floors (see `compare`).

pub mod compare;
pub mod floor;
pub mod load;
pub mod procfs;
pub mod shm_floor;
pub mod stress;
pub mod supervisord;
pub mod tls;
pub mod workers;
