//! The quiet window: a pass starts once change hints have stopped for [`QUIET`], and at
//! most [`QUIET_MAX`] after the first of them, so a `git pull` of ten files makes one pass
//! and a constant trickle cannot starve it.

use std::time::Duration;
use tokio::time::Instant;

/// Files must be quiet this long before a pass acts on them: a picture's own settle time,
/// so the pass after the window finds the files it was told about still.
pub const QUIET: Duration = crate::picture::SETTLE;
/// A pass starts at most this long after the first event, however busy the files are.
pub const QUIET_MAX: Duration = Duration::from_secs(2);

/// The hints waiting for a pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct QuietWindow {
    /// (first hint, last hint) since the last pass.
    span: Option<(Instant, Instant)>,
}

impl QuietWindow {
    /// A hint arrived at `now`.
    pub(crate) fn note(&mut self, now: Instant) {
        self.span = Some(self.span.map_or((now, now), |(first, _)| (first, now)));
    }

    /// When the pass is due, if any hint is waiting.
    pub(crate) fn due_at(&self) -> Option<Instant> {
        self.span
            .map(|(first, last)| (last + QUIET).min(first + QUIET_MAX))
    }

    /// The pass is starting: forget the hints it covers.
    pub(crate) fn clear(&mut self) {
        self.span = None;
    }
}

#[cfg(test)]
mod tests;
