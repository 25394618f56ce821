//! What `--check` says of `rollout:` and `windows:`: the waves as written, and whether
//! uploads may happen now, when they may next (or are next held), and each window's next
//! opening in its own time zone.

use crate::clock::{human_duration, rfc3339, serde_rfc3339_opt};
use crate::manifest::{Gate, Manifest, local_time};
use serde::Serialize;
use std::time::SystemTime;

/// The rollout policy, as `--check` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RolloutCheck {
    /// The waves as written (`2`, `10%`).
    pub waves: Vec<String>,
    /// Whether uploads are read back.
    pub verify: bool,
    /// As written.
    pub max_failures: String,
    /// As a duration (`10m`).
    pub pause: String,
    /// How many instances are canaries.
    pub canaries: usize,
}

/// The change windows, as `--check` shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WindowsCheck {
    /// Whether uploads may happen now.
    pub open_now: bool,
    /// Closed now: when uploads may next happen (`null`: not within a year).
    #[serde(with = "serde_rfc3339_opt")]
    pub opens_at: Option<SystemTime>,
    /// Open now: when uploads are next held, if within a year.
    #[serde(with = "serde_rfc3339_opt")]
    pub closes_at: Option<SystemTime>,
    /// Each window with its next opening.
    pub windows: Vec<WindowLine>,
}

/// One window, with its next opening.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WindowLine {
    /// `allow` or `deny`.
    pub kind: &'static str,
    /// The schedule as written.
    pub schedule: String,
    /// How long it stays open.
    pub duration: String,
    /// Its time zone.
    pub timezone: String,
    /// When it next opens.
    #[serde(with = "serde_rfc3339_opt")]
    pub next_opening: Option<SystemTime>,
    /// The same, on the zone's wall clock (`2026-12-07 09:00 CET`).
    pub next_opening_local: Option<String>,
}

/// The rollout policy of `manifest`, if it writes one.
pub(crate) fn rollout(manifest: &Manifest) -> Option<RolloutCheck> {
    let policy = manifest.rollout.as_ref()?;
    Some(RolloutCheck {
        waves: policy.waves.iter().map(ToString::to_string).collect(),
        verify: policy.verify,
        max_failures: policy.max_failures.to_string(),
        pause: human_duration(policy.pause),
        canaries: manifest.instances.iter().filter(|i| i.canary).count(),
    })
}

/// The windows of `manifest` at `now`, if it writes any.
pub(crate) fn windows(manifest: &Manifest, now: SystemTime) -> Option<WindowsCheck> {
    if manifest.windows.is_empty() {
        return None;
    }
    let gate = manifest.windows.gate(now);
    let windows = (manifest.windows.0.iter())
        .map(|w| {
            let next = w.next_start(now);
            WindowLine {
                kind: w.kind.key(),
                schedule: w.written.clone(),
                duration: human_duration(w.duration),
                timezone: w.zone_name.clone(),
                next_opening: next,
                next_opening_local: next.map(|at| local_time(at, &w.zone)),
            }
        })
        .collect();
    Some(match gate {
        Gate::Open => WindowsCheck {
            open_now: true,
            opens_at: None,
            closes_at: manifest.windows.next_close(now),
            windows,
        },
        Gate::Closed { opens } => WindowsCheck {
            open_now: false,
            opens_at: opens,
            closes_at: None,
            windows,
        },
    })
}

impl RolloutCheck {
    /// The table's note.
    pub fn line(&self) -> String {
        format!(
            "\nrollout: waves [{}], verify {}, maxFailures {}, pause {}; {} canar{}",
            self.waves.join(", "),
            self.verify,
            self.max_failures,
            self.pause,
            self.canaries,
            if self.canaries == 1 { "y" } else { "ies" }
        )
    }
}

impl WindowsCheck {
    /// The table's notes.
    pub fn lines(&self) -> Vec<String> {
        let when = |at: Option<SystemTime>| at.map_or("not within a year".to_owned(), rfc3339);
        let mut lines = vec![match self.open_now {
            true => format!(
                "\nchange windows: uploads may happen now; next held from {}",
                when(self.closes_at)
            ),
            false => format!(
                "\nchange windows: uploads are held now; the next opening is {}",
                when(self.opens_at)
            ),
        }];
        for w in &self.windows {
            lines.push(format!(
                "  {} \"{}\" for {} in {}: next at {}",
                w.kind,
                w.schedule,
                w.duration,
                w.timezone,
                w.next_opening_local
                    .clone()
                    .unwrap_or_else(|| "not within a year".to_owned())
            ));
        }
        lines
    }
}
