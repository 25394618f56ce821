//! Change windows (`windows:`): when uploads may happen. Each window is a cron schedule
//! (POSIX five fields, minute first; or six, seconds first) read in an IANA time zone, and
//! a duration: it opens at each time the schedule names and lasts that long, in real
//! time. `deny` windows hold every upload while they are open; with `allow` windows,
//! uploads happen only inside one of them. Reads, drift warnings and reports go on.
//!
//! The schedules are parsed by `croner` and evaluated on `jiff`'s zoned times: a
//! daylight-saving change neither skips a window (a start in the spring gap opens just
//! after it) nor opens one twice (a start in the repeated autumn hour opens at its first
//! pass only).

use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::time::{Duration, SystemTime};

/// How far ahead an opening is looked for: beyond a year, a window set never opens.
const HORIZON: Duration = Duration::from_secs(400 * 24 * 3600);
/// At most this many window edges are stepped over looking for an opening.
const MAX_STEPS: usize = 10_000;

/// Whether a window allows or denies uploads while it is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// Uploads happen only inside an allow window (when there is one).
    Allow,
    /// No upload inside a deny window.
    Deny,
}

impl WindowKind {
    /// The key that writes it.
    pub fn key(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// One change window.
#[derive(Clone, Debug)]
pub struct Window {
    /// Allow or deny.
    pub kind: WindowKind,
    /// The schedule as written, for messages.
    pub written: String,
    /// When it opens.
    cron: Cron,
    /// How long it stays open, in real time.
    pub duration: Duration,
    /// The time zone the schedule is read in (`timezone`, default UTC).
    pub zone: TimeZone,
    /// Its name as written (`UTC` when none).
    pub zone_name: String,
    /// The manifest line where it starts.
    pub line: u64,
}

impl Window {
    /// A window from its parts; `Err` with why, in the manifest's words.
    pub fn new(
        kind: WindowKind,
        written: &str,
        duration: Duration,
        zone_name: Option<&str>,
        line: u64,
    ) -> Result<Self, String> {
        let cron = parse_cron(written)?;
        let zone_name = zone_name.unwrap_or("UTC");
        let zone = TimeZone::get(zone_name).map_err(|_| {
            format!(
                "timezone `{zone_name}` is not an IANA time zone name (such as Europe/Berlin, \
                 America/New_York or UTC)"
            )
        })?;
        if duration.is_zero() {
            return Err("a window's duration must be more than 0s".to_owned());
        }
        Ok(Self {
            kind,
            written: written.to_owned(),
            cron,
            duration,
            zone,
            zone_name: zone_name.to_owned(),
            line,
        })
    }

    /// When the latest opening at or before `at` was, if one was within the horizon.
    fn last_start(&self, at: SystemTime) -> Option<SystemTime> {
        let zoned = to_timestamp(at)?.to_zoned(self.zone.clone());
        let start = self.cron.find_previous_occurrence(&zoned, true).ok()?;
        let start = SystemTime::from(start.timestamp());
        (at.duration_since(start).ok()? < HORIZON).then_some(start)
    }

    /// When it next opens after `at` (strictly), if within a year.
    pub fn next_start(&self, at: SystemTime) -> Option<SystemTime> {
        let zoned = to_timestamp(at)?.to_zoned(self.zone.clone());
        let start = self.cron.find_next_occurrence(&zoned, false).ok()?;
        let start = SystemTime::from(start.timestamp());
        (start.duration_since(at).ok()? < HORIZON).then_some(start)
    }

    /// When the opening that covers `at` closes, if `at` is inside one.
    pub fn open_until(&self, at: SystemTime) -> Option<SystemTime> {
        let end = self.last_start(at)? + self.duration;
        (at < end).then_some(end)
    }
}

/// The manifest's windows.
#[derive(Clone, Debug, Default)]
pub struct Windows(pub Vec<Window>);

/// Whether uploads may happen at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Uploads may happen.
    Open,
    /// No upload until `opens` (`None`: not within a year).
    Closed {
        /// When uploads may happen again.
        opens: Option<SystemTime>,
    },
}

impl Windows {
    /// Whether any window is written.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether uploads may happen at `at`, and if not, when they may.
    pub fn gate(&self, at: SystemTime) -> Gate {
        let mut t = at;
        for _ in 0..MAX_STEPS {
            match self.blocked_until(t) {
                None if t == at => return Gate::Open,
                None => return Gate::Closed { opens: Some(t) },
                Some(Some(next))
                    if next > t && next.duration_since(at).is_ok_and(|d| d < HORIZON) =>
                {
                    t = next;
                }
                Some(_) => return Gate::Closed { opens: None },
            }
        }
        Gate::Closed { opens: None }
    }

    /// `None` when uploads may happen at `t`; else the next time worth looking at (the end
    /// of the deny windows open at `t`, or the next allow window's opening), if any.
    fn blocked_until(&self, t: SystemTime) -> Option<Option<SystemTime>> {
        let denied = (self.0.iter())
            .filter(|w| w.kind == WindowKind::Deny)
            .filter_map(|w| w.open_until(t))
            .max();
        if denied.is_some() {
            return Some(denied);
        }
        let allows: Vec<&Window> = (self.0.iter())
            .filter(|w| w.kind == WindowKind::Allow)
            .collect();
        if allows.is_empty() {
            return None;
        }
        if allows.iter().any(|w| w.open_until(t).is_some()) {
            return None;
        }
        Some(allows.iter().filter_map(|w| w.next_start(t)).min())
    }

    /// When uploads are next held, from `at` (open now): the next deny window's opening or
    /// the end of the allow window in force, if any within the horizon.
    pub fn next_close(&self, at: SystemTime) -> Option<SystemTime> {
        let deny = (self.0.iter())
            .filter(|w| w.kind == WindowKind::Deny)
            .filter_map(|w| w.next_start(at))
            .min();
        let allow_end = (self.0.iter())
            .filter(|w| w.kind == WindowKind::Allow)
            .filter_map(|w| w.open_until(at))
            .max();
        [deny, allow_end].into_iter().flatten().min()
    }
}

/// A cron schedule as the manifest writes it: five fields (minute first) or six (seconds
/// first); Sunday is 0 or 7, and names (`MON`, `JAN`) work.
pub fn parse_cron(written: &str) -> Result<Cron, String> {
    let fields = written.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "`{written}` is not a cron schedule: it needs five fields (minute hour \
             day-of-month month day-of-week, such as \"0 9 * * 1-5\"), or six with seconds \
             first; it has {fields}"
        ));
    }
    written
        .parse::<Cron>()
        .map_err(|e| format!("`{written}` is not a cron schedule: {e}"))
}

fn to_timestamp(at: SystemTime) -> Option<Timestamp> {
    Timestamp::try_from(at).ok()
}

/// `at` in `zone`, as people read it (`2026-12-07 09:00 CET`).
pub fn local_time(at: SystemTime, zone: &TimeZone) -> String {
    match to_timestamp(at) {
        Some(ts) => ts
            .to_zoned(zone.clone())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string(),
        None => crate::clock::rfc3339(at),
    }
}

#[cfg(test)]
#[path = "windows_tests.rs"]
mod tests;
