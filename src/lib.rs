//! avatar-sync keeps the profile pictures of GREEN-API WhatsApp instances equal to what a
//! YAML manifest in git says they should be.
//!
//! Data flows one way: the **manifest** is parsed and validated into typed values
//! ([`manifest`]); each picture is read, checked and hashed into the **desired** state
//! ([`picture`]); the pure **planner** compares desired with the **recorded** state and the
//! current time and decides, per instance, whether to call now, wait (throttle or backoff)
//! or leave it alone ([`plan`]); the **apply** step sends the due calls through the
//! GREEN-API client ([`gateway`], [`apply`]) and each outcome is **recorded** in the state
//! directory as it lands ([`state`]). [`reconcile`] runs that loop once for every mode;
//! [`report`] turns its result into the table or the `--json` document.

pub mod apply;
pub mod check;
pub mod cli;
pub mod clock;
pub mod daemon;
pub mod desired;
pub mod error;
pub mod gateway;
pub mod hashes;
pub mod logging;
pub mod manifest;
pub mod picture;
pub mod plan;
pub mod prepared;
pub mod preview;
pub mod process;
pub mod reconcile;
pub mod report;
pub mod run;
pub mod shard;
pub mod state;
pub mod systemd;
pub mod usage;
pub mod watch;

pub use error::Error;

/// The `User-Agent` sent with every GREEN-API request: `avatar-sync/<version>`.
pub const USER_AGENT: &str = concat!("avatar-sync/", env!("CARGO_PKG_VERSION"));
