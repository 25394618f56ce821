//! The daemon loop on tokio's paused clock.
