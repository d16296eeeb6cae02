//! The shared-memory channel between the daemon and one worker.
