//! The rollout and the change window as reports show them (`--json`'s `rollout` and
//! `window`, the table's notes, the status page): which wave, how far, a halt with the
//! failures that caused it, when uploads resume.

use crate::clock::{rfc3339, serde_rfc3339, serde_rfc3339_opt};
use crate::state::rollout::{HaltFailure, RolloutRecord};
use serde::Serialize;
use std::time::SystemTime;

/// A rollout, for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RolloutView {
    /// The revision (the first 12 hex digits of its desired pictures' SHA-256).
    pub revision: String,
    /// How many instances it changes.
    pub instances: usize,
    /// Cumulative: how many of them each wave releases.
    pub waves: Vec<usize>,
    /// The wave released, from 1.
    pub wave: usize,
    /// How many instances landed (uploaded, and read back with `verify`).
    pub landed: usize,
    /// How many failed.
    pub failed: usize,
    /// When it started.
    #[serde(with = "serde_rfc3339")]
    pub started_at: SystemTime,
    /// When the next wave starts, once the released one landed.
    #[serde(with = "serde_rfc3339_opt")]
    pub next_wave_at: Option<SystemTime>,
    /// The halt, if it halted.
    pub halted: Option<HaltView>,
    /// When every wave had landed.
    #[serde(with = "serde_rfc3339_opt")]
    pub done_at: Option<SystemTime>,
}

/// A halt, for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HaltView {
    /// When.
    #[serde(with = "serde_rfc3339")]
    pub at: SystemTime,
    /// The wave that failed, from 1.
    pub wave: usize,
    /// How many of its instances failed.
    pub failed: usize,
    /// The first few, with why.
    pub failures: Vec<HaltFailure>,
}

impl RolloutView {
    /// The view of `rollout`, with `landed` and `failed` of its instances.
    pub fn of(rollout: &RolloutRecord, landed: usize, failed: usize) -> Self {
        Self {
            revision: rollout.revision.chars().take(12).collect(),
            instances: rollout.instances.len(),
            waves: rollout.waves.clone(),
            wave: rollout.wave + 1,
            landed,
            failed,
            started_at: rollout.started_at,
            next_wave_at: rollout.next_wave_at,
            halted: rollout.halted.as_ref().map(|halt| HaltView {
                at: halt.at,
                wave: halt.wave + 1,
                failed: halt.failed,
                failures: halt.failures.clone(),
            }),
            done_at: rollout.done_at,
        }
    }

    /// The table's notes: one line, and a halt's failures.
    pub fn lines(&self) -> Vec<String> {
        let waves = self.waves.len();
        let released = self.waves.get(self.wave - 1).copied().unwrap_or(0);
        let head = format!("\nrollout of revision {}", self.revision);
        if let Some(done) = self.done_at {
            return vec![format!(
                "{head}: done at {} ({waves} wave{}, {} instance{})",
                rfc3339(done),
                if waves == 1 { "" } else { "s" },
                self.instances,
                if self.instances == 1 { "" } else { "s" },
            )];
        }
        if let Some(halt) = &self.halted {
            let mut lines = vec![format!(
                "{head}: HALTED at wave {} of {waves} ({}): {} of its instances failed; \
                 nothing more is uploaded for this revision",
                halt.wave,
                rfc3339(halt.at),
                halt.failed
            )];
            for failure in &halt.failures {
                lines.push(format!("  {}: {}", failure.id_instance, failure.reason));
            }
            if halt.failed > halt.failures.len() {
                lines.push(format!(
                    "  … and {} more",
                    halt.failed - halt.failures.len()
                ));
            }
            lines.push(
                "resume it with `avatar-sync --reconcile --resume` (or SIGUSR1 to the daemon); \
                 a new revision (a fix or a revert) starts a new rollout"
                    .to_owned(),
            );
            return lines;
        }
        let mut line = format!(
            "{head}: wave {} of {waves}, {released} of {} instances released, {} landed, {} failed",
            self.wave, self.instances, self.landed, self.failed
        );
        if let Some(at) = self.next_wave_at {
            line.push_str(&format!(
                "; wave {} starts at {}",
                self.wave + 1,
                rfc3339(at)
            ));
        }
        vec![line]
    }
}

/// A change window holding uploads, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WindowView {
    /// When uploads may happen again (`null`: not within a year).
    #[serde(with = "serde_rfc3339_opt")]
    pub opens_at: Option<SystemTime>,
}

impl WindowView {
    /// The table's note.
    pub fn line(&self) -> String {
        match self.opens_at {
            Some(at) => format!(
                "\na change window holds every upload until {}; run again then (the daemon \
                 waits for it)",
                rfc3339(at)
            ),
            None => {
                "\na change window holds every upload, and no opening is within a year".to_owned()
            }
        }
    }
}
