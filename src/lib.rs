//! avatar-sync keeps the profile pictures of GREEN-API WhatsApp instances equal to what a
//! YAML manifest in git says they should be.
//!
//! Data flows one way: the **manifest** is parsed and validated into typed values
//! ([`manifest`]); each picture is read, hashed and prepared into the exact JPEG to upload
//! ([`picture`]); the pure **planner** compares what is desired with what is **recorded**
//! and the current time and decides, per instance, whether to call now, wait (throttle,
//! backoff) or leave it alone ([`plan`]); the **gateway** makes the calls ([`gateway`]); each
//! outcome is **recorded** in the state directory as it lands ([`state`]). The
//! [`reconcile`] engine runs that flow for every mode, [`report`] turns its result into the
//! table or the `--json` document, and the drivers on top are the one-shot [`modes`] and the
//! [`daemon`] loop.
//!
//! The modules form layers, and a module imports only from its own layer or from layers
//! above it in this list, never back up the flow (the `layers` test checks every
//! `crate::` path in `src/`):
//!
//! 1. foundations: [`clock`] (time and chance), [`fsio`] (atomic files), [`outcome`]
//!    (labelled outcome kinds shared by gateway, planner and state), [`usage`];
//! 2. [`manifest`]; 3. [`picture`]; 4. [`state`] (the records: the planner's input and
//!    the apply step's output); 5. [`plan`]; 6. [`gateway`];
//! 7. [`report`], [`metrics`]; 8. [`reconcile`]; 9. [`daemon`]; 10. [`modes`], [`error`], [`cli`],
//!    [`logging`] (the command line and the process around it).

pub mod cli;
pub(crate) mod clock;
pub mod daemon;
pub mod error;
pub(crate) mod fsio;
pub(crate) mod gateway;
pub(crate) mod layout;
pub mod logging;
pub mod manifest;
pub(crate) mod metrics;
pub mod modes;
pub(crate) mod notify;
pub(crate) mod outcome;
pub mod picture;
pub(crate) mod plan;
pub(crate) mod reconcile;
pub mod redact;
pub(crate) mod report;
pub(crate) mod state;
pub mod usage;

pub use error::Error;

#[cfg(test)]
mod design;
#[cfg(test)]
mod layers;
#[cfg(test)]
mod testing;

/// The `User-Agent` sent with every GREEN-API request: `avatar-sync/<version>`.
pub const USER_AGENT: &str = concat!("avatar-sync/", env!("CARGO_PKG_VERSION"));
