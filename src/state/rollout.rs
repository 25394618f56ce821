//! The rollout in progress (`rollout.json`): which revision it belongs to, its instances in
//! wave order, the wave released, when the next one may start, and a halt with the failures
//! that caused it. Written atomically whenever one of these changes (a few times per
//! revision), not batched: a kill at any moment leaves the last state of the rollout, so a
//! restart or a later one-shot run continues it, and a pause is never skipped.
//!
//! What became of each instance (landed, read back, failed) is not kept here but derived
//! from its record, which the state saves anyway ([`crate::plan::rollout`]).

use crate::clock::{serde_rfc3339, serde_rfc3339_opt};
use crate::manifest::InstanceId;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::SystemTime;

pub(crate) use crate::layout::ROLLOUT_FILE;
/// The largest `rollout.json` read (a million instances' ids take about 15 MB).
const MAX_ROLLOUT_BYTES: u64 = 64 * 1024 * 1024;
/// At most this many failures are kept with a halt (the count is kept whole).
pub(crate) const MAX_HALT_FAILURES: usize = 20;

/// A revision's rollout, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RolloutRecord {
    /// The revision it belongs to: SHA-256 (hex) of every instance's desired picture.
    pub revision: String,
    /// When it started.
    #[serde(with = "serde_rfc3339")]
    pub started_at: SystemTime,
    /// The instances whose upload the revision changed, in wave order.
    pub instances: Vec<InstanceId>,
    /// Cumulative: how many of `instances` each wave releases.
    pub waves: Vec<usize>,
    /// The wave released (0 is the first).
    pub wave: usize,
    /// When it was released.
    #[serde(with = "serde_rfc3339")]
    pub wave_started_at: SystemTime,
    /// The wave landed: the next one starts then (after `pause`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_rfc3339_opt"
    )]
    pub next_wave_at: Option<SystemTime>,
    /// The rollout halted: nothing more is uploaded for this revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<Halt>,
    /// Every wave landed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_rfc3339_opt"
    )]
    pub done_at: Option<SystemTime>,
}

/// Why and when a rollout halted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Halt {
    /// When.
    #[serde(with = "serde_rfc3339")]
    pub at: SystemTime,
    /// The wave that failed (0 is the first).
    pub wave: usize,
    /// How many of its instances failed.
    pub failed: usize,
    /// The first [`MAX_HALT_FAILURES`] of them, with why.
    pub failures: Vec<HaltFailure>,
}

/// One failure that halted a rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HaltFailure {
    /// Which instance.
    pub id_instance: InstanceId,
    /// Why, in one line.
    pub reason: String,
}

/// Reads the rollout recorded in the state directory `dir`, if any. A damaged file is an
/// error naming it: a rollout is never restarted silently (its pause would be skipped).
pub(crate) fn load(dir: &Path) -> Result<Option<RolloutRecord>, String> {
    let path = dir.join(ROLLOUT_FILE);
    let bytes = match crate::fsio::read_regular(&path, MAX_ROLLOUT_BYTES) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        format!(
            "{} is damaged ({e}); move it aside to start the rollout again from its first wave",
            path.display()
        )
    })
}

/// Records `rollout` in `dir` (atomically), or removes the file when there is none.
pub(crate) fn save(dir: &Path, rollout: Option<&RolloutRecord>) -> std::io::Result<()> {
    let path = dir.join(ROLLOUT_FILE);
    match rollout {
        Some(rollout) => {
            let bytes = serde_json::to_vec(rollout).map_err(std::io::Error::other)?;
            crate::fsio::write_bytes_atomically(&path, &bytes)
        }
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}
