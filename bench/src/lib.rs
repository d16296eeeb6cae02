//! Benchmarks of tomte side by side with hand-written floors (see `compare`), and of two builds
//! of tomte against each other (see `ab`).

pub mod ab;
pub mod compare;
pub mod floor;
pub mod load;
pub mod metrics;
pub mod pool;
pub mod procfs;
pub mod shm_floor;
pub mod stress;
pub mod subscribers;
pub mod supervisord;
pub mod tls;
pub mod upgrade;
pub mod workers;
