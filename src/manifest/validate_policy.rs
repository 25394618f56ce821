//! `rollout:` and `windows:` as parsed → the typed [`RolloutPolicy`] and [`Windows`], each
//! problem named with its line.

use super::super::parsed::{At, ParsedRollout, ParsedWindow};
use super::super::problem::ProblemKind;
use super::super::rollout::{Amount, RolloutPolicy};
use super::super::windows::{Window, WindowKind, Windows};
use super::Validator;
use crate::clock::parse_duration;
use std::time::Duration;

impl Validator<'_> {
    /// `rollout:`, validated; `None` when it is not written.
    pub(super) fn rollout(&mut self, raw: Option<At<ParsedRollout>>) -> Option<RolloutPolicy> {
        let At(raw, line) = raw?;
        let mut policy = RolloutPolicy::default();
        if let Some(At(waves, waves_line)) = raw.waves {
            let mut amounts = Vec::with_capacity(waves.len());
            for At(written, at) in waves {
                match Amount::parse(&written) {
                    Ok(Amount::Count(0) | Amount::Percent(0)) => self.problem(
                        ProblemKind::InvalidOption,
                        at,
                        None,
                        format!("rollout.waves: a wave of `{written}` would upload nothing"),
                    ),
                    Ok(amount) => amounts.push(amount),
                    Err(e) => self.problem(
                        ProblemKind::InvalidOption,
                        at,
                        None,
                        format!("rollout.waves: {e}"),
                    ),
                }
            }
            if amounts.is_empty() {
                let message = "rollout.waves needs at least one wave, such as [1, 10%, 100%]";
                self.problem(ProblemKind::InvalidOption, waves_line, None, message);
            } else if amounts.windows(2).any(|pair| decreasing(pair[0], pair[1])) {
                let message = "rollout.waves are cumulative (how many have the new picture \
                               after each wave): each must be more than the one before";
                self.problem(ProblemKind::InvalidOption, waves_line, None, message);
            }
            policy.waves = amounts;
        }
        policy.verify = raw.verify.unwrap_or(false);
        if let Some(At(written, at)) = raw.max_failures {
            match Amount::parse(&written) {
                Ok(amount) => policy.max_failures = amount,
                Err(e) => self.problem(
                    ProblemKind::InvalidOption,
                    at,
                    None,
                    format!("rollout.maxFailures: {e}"),
                ),
            }
        }
        if let Some(At(written, at)) = raw.pause {
            match parse_duration(&written) {
                Ok(pause) => policy.pause = pause,
                Err(e) => self.problem(
                    ProblemKind::InvalidDuration,
                    at,
                    None,
                    format!("rollout.pause: {e}"),
                ),
            }
        }
        let _ = line;
        Some(policy)
    }

    /// `windows:`, validated.
    pub(super) fn windows(&mut self, raw: Vec<At<ParsedWindow>>) -> Windows {
        let mut windows = Vec::with_capacity(raw.len());
        for At(window, line) in raw {
            let (kind, cron) = match (window.allow, window.deny) {
                (Some(allow), None) => (WindowKind::Allow, allow),
                (None, Some(deny)) => (WindowKind::Deny, deny),
                (Some(_), Some(_)) => {
                    let message = "a window is either `allow` or `deny`, not both";
                    self.problem(ProblemKind::InvalidOption, line, None, message);
                    continue;
                }
                (None, None) => {
                    let message = "a window needs `allow` or `deny`: the cron schedule of its \
                                   openings, such as deny: \"0 9 * * 1-5\"";
                    self.problem(ProblemKind::MissingKey, line, None, message);
                    continue;
                }
            };
            // A missing duration is named by the reader.
            let Some(At(written, duration_line)) = window.duration else {
                continue;
            };
            let duration = match parse_duration(&written) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    let message = "windows: duration must be more than 0";
                    self.problem(ProblemKind::InvalidDuration, duration_line, None, message);
                    continue;
                }
                Err(e) => {
                    let message = format!("windows: duration: {e}");
                    self.problem(ProblemKind::InvalidDuration, duration_line, None, message);
                    continue;
                }
            };
            let zone = window.timezone.as_ref().map(|z| z.0.as_str());
            match Window::new(kind, &cron.0, duration, zone, line) {
                Ok(window) if window.duration > Duration::from_secs(366 * 24 * 3600) => {
                    let message = "windows: a duration of more than a year never closes";
                    self.problem(ProblemKind::InvalidDuration, duration_line, None, message);
                }
                Ok(window) => windows.push(window),
                Err(e) => {
                    let at = match (&window.timezone, e.contains("time zone")) {
                        (Some(zone), true) => zone.line(),
                        _ => cron.line(),
                    };
                    let message = format!("windows: {}: {e}", kind.key());
                    self.problem(ProblemKind::InvalidOption, at, None, message);
                }
            }
        }
        Windows(windows)
    }
}

/// Whether wave `next` would not be more than wave `before` (same units only: a count
/// after a percentage depends on how many change).
fn decreasing(before: Amount, next: Amount) -> bool {
    match (before, next) {
        (Amount::Count(a), Amount::Count(b)) => b <= a,
        (Amount::Percent(a), Amount::Percent(b)) => b <= a,
        _ => false,
    }
}
