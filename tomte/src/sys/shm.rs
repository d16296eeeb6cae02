//! Shared mappings for worker channels (written with the worker channel).
