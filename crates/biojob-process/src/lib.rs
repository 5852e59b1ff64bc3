//! Supervised child processes (being written).
