//! The state directory: what was applied, when each instance was last called, the backoff
//! in force; loaded at start, saved atomically, guarded by a lock so there is one writer.
//!
//! Layout: `state.json` (the versioned document, mode 0600) and `lock` (held with
//! `File::try_lock` by the writer, and naming it). The format is documented in
//! `docs/state.md`. Saves replace the whole file through a temporary file in the same
//! folder (write, fsync, rename, fsync the folder), so a crash at any moment leaves either
//! the old or the new file. Between saves, `calls.journal` remembers which calls started
//! (`journal.rs`), so a killed process's successor still keeps the throttle. [`StateStore`] batches saves to a few a second. The picture
//! caches that live in the same folder belong to the reconciler, not to this module.

mod changes;
mod dir;
mod journal;
mod outbox;
pub(crate) mod rollout;
mod schema;
mod store;

pub(crate) use dir::{Loaded, StateDir, StateError, StateLock};
pub(crate) use outbox::{Outbox, Queued};
pub(crate) use schema::{Applied, Failure, InstanceRecord, State};
pub(crate) use store::{SAVE_RETRY, SaveCost, StateStore};

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
