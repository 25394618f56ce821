//! The engine's schedule: which instances are due now (calls, then reads of live state)
//! and a timer heap of the ones that wait (a throttle, a backoff, the next look or poll).
//! Entries are instances' places in the manifest; the engine skips stale ones (an instance
//! re-planned since) as they come up, so re-planning costs `O(log n)`, never a search.
//!
//! Reads of one instance's live state (`getWaSettings`, `getStateInstance`) are spaced by
//! at least [`READ_SPACING`]: GREEN-API allows one a second. [`read_time`] is the one place
//! that rule is applied.

use crate::manifest::InstanceId;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, SystemTime};

/// How often an unusable instance's state is polled, at most (`driftInterval` if shorter).
pub(crate) const HEALTH_POLL: Duration = Duration::from_secs(5 * 60);

/// The least time between two reads of one instance's live state: GREEN-API's one a
/// second, with room for the network's jitter.
pub(crate) const READ_SPACING: Duration = Duration::from_millis(1100);

/// How many times `--drift` reads an instance again after a 429 (waits of 2.2, 4.4, 8.8,
/// 17.6 and 35.2 s: about a minute in all, within the default `--timeout`).
pub(crate) const READ_RETRIES: u32 = 5;

/// Why an instance's live state is read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Read {
    /// A look at an in-sync instance's live picture (drift), about once per `driftInterval`.
    Look {
        /// When the record says it was last looked at (`liveCheckedAt`).
        last: Option<SystemTime>,
        /// Where in the interval this instance's looks fall, in `[0, 1)`.
        spread: f64,
    },
    /// A poll of a blocked instance's `getStateInstance`.
    Poll,
}

/// When `read` of an instance falls, planned at `now` with looks every `every`
/// (`driftInterval`), never sooner than [`READ_SPACING`] after its last read `last_read`.
/// A look is `every` after the last one, or, when there was none (or it is long past), at
/// the point of the interval fixed by the instance (a fleet's looks are spread evenly).
pub(crate) fn read_time(
    read: Read,
    now: SystemTime,
    every: Duration,
    last_read: Option<SystemTime>,
) -> SystemTime {
    let every = every.max(READ_SPACING);
    let at = match read {
        Read::Poll => now + every.min(HEALTH_POLL),
        Read::Look {
            last: Some(last), ..
        } if last + every > now => last + every,
        Read::Look { spread, .. } => now + every.mul_f64(spread),
    };
    match last_read {
        Some(read) => at.max(read + READ_SPACING),
        None => at,
    }
}

/// Instances due now, and a timer heap of those that wait.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    /// Calls due now, waiting for a free permit.
    calls: VecDeque<usize>,
    /// Instances whose wait (throttle, backoff) ends at a time.
    waits: BinaryHeap<Reverse<(SystemTime, usize)>>,
    /// Instances whose live state is read at a time.
    reads: BinaryHeap<Reverse<(SystemTime, usize)>>,
    /// Reads whose time has come, waiting for a free permit (calls come first).
    reads_due: VecDeque<usize>,
    /// When each instance's live state was last read by this process.
    last_read: HashMap<InstanceId, SystemTime>,
    /// Reads of each instance answered 429 so far (`--drift` tries them again).
    slowed: HashMap<InstanceId, u32>,
    /// No call starts before this time (the calls journal could not be written).
    calls_held_until: Option<SystemTime>,
}

impl Schedule {
    /// Forgets every entry (a new pass plans every instance again); the reads' times stay.
    pub fn clear(&mut self) {
        self.calls.clear();
        self.waits.clear();
        self.reads.clear();
        self.reads_due.clear();
    }

    /// Instance `index` is due for a call now.
    pub fn call_now(&mut self, index: usize) {
        self.calls.push_back(index);
    }

    /// Instance `index` waits until `at`.
    pub fn wait_until(&mut self, index: usize, at: SystemTime) {
        self.waits.push(Reverse((at, index)));
    }

    /// Instance `index`'s live state is read at `at`.
    pub fn read_at(&mut self, index: usize, at: SystemTime) {
        self.reads.push(Reverse((at, index)));
    }

    /// Instance `index`'s live state is read as soon as a permit is free.
    pub fn read_now(&mut self, index: usize) {
        self.reads_due.push_back(index);
    }

    /// A read of `id`'s live state starts at `at`.
    pub fn read_started(&mut self, id: &InstanceId, at: SystemTime) {
        self.last_read.insert(id.clone(), at);
    }

    /// How long to wait before reading `id` again after GREEN-API answered 429: twice the
    /// read spacing, doubling with each 429, [`READ_RETRIES`] times at most.
    pub fn retry_read(&mut self, id: &InstanceId) -> Option<Duration> {
        let tries = self.slowed.entry(id.clone()).or_default();
        *tries += 1;
        (*tries <= READ_RETRIES).then(|| READ_SPACING * 2_u32.pow(*tries))
    }

    /// When `id`'s live state was last read, as far as this schedule knows.
    pub fn last_read(&self, id: &InstanceId) -> Option<SystemTime> {
        self.last_read.get(id).copied()
    }

    /// The next wait that is over by `now` (its time and instance), taken off the heap.
    pub fn wait_over(&mut self, now: SystemTime) -> Option<(SystemTime, usize)> {
        pop_by(&mut self.waits, now)
    }

    /// The next read whose time has come by `now`, taken off the heap.
    pub fn read_come(&mut self, now: SystemTime) -> Option<(SystemTime, usize)> {
        pop_by(&mut self.reads, now)
    }

    /// The next call due, if any, unless calls are held at `now`.
    pub fn next_call(&mut self, now: SystemTime) -> Option<usize> {
        if self.calls_held_until.is_some_and(|until| until > now) {
            return None;
        }
        self.calls_held_until = None;
        self.calls.pop_front()
    }

    /// Holds every call until `until`; `index` (one that could not start) is due again then.
    pub fn hold_calls(&mut self, index: usize, until: SystemTime) {
        self.calls_held_until = Some(until);
        self.calls.push_front(index);
    }

    /// The next read due, if any.
    pub fn next_read(&mut self) -> Option<usize> {
        self.reads_due.pop_front()
    }

    /// Whether calls are due but wait for a permit.
    pub fn calls_queued(&self) -> bool {
        !self.calls.is_empty()
    }

    /// Whether calls or reads are due but wait for a permit.
    pub fn queued(&self) -> bool {
        !self.calls.is_empty() || !self.reads_due.is_empty()
    }

    /// How many calls are due, and how many instances wait.
    pub fn counts(&self) -> (usize, usize) {
        (self.calls.len(), self.waits.len())
    }

    /// The earliest time a wait ends or a read comes, if any.
    pub fn next_at(&self) -> Option<SystemTime> {
        let first = |heap: &BinaryHeap<Reverse<(SystemTime, usize)>>| {
            heap.peek().map(|Reverse((at, _))| *at)
        };
        // Held calls are due again when the hold ends.
        let held = self.calls_held_until.filter(|_| !self.calls.is_empty());
        [first(&self.waits), first(&self.reads), held]
            .into_iter()
            .flatten()
            .min()
    }
}

fn pop_by(
    heap: &mut BinaryHeap<Reverse<(SystemTime, usize)>>,
    now: SystemTime,
) -> Option<(SystemTime, usize)> {
    let Reverse((at, index)) = *heap.peek()?;
    (at <= now).then(|| {
        heap.pop();
        (at, index)
    })
}

#[cfg(test)]
mod tests;
