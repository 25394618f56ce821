//! The memory all decodes in flight may hold together. Each decode is limited to
//! [`MAX_DECODED_BYTES`](super::MAX_DECODED_BYTES) of pixels, but pictures are prepared on
//! every core: without a shared bound, three 9,000 × 9,000 PNGs took 664 MB on 2 cores and
//! would take about 5 GB on 16. A decode first reserves what its pixels and their processed
//! copy will take, waiting while others hold the budget; the memory used for pixels is
//! bounded by [`TOTAL`] however many cores there are.

use std::sync::{Condvar, Mutex, MutexGuard};

/// The most bytes of pixels all decodes in flight may hold at once.
pub const TOTAL: u64 = super::MAX_DECODED_BYTES;

/// The process-wide budget every decode reserves from.
pub(super) static DECODES: Budget = Budget::new(TOTAL);

/// A number of bytes shared by threads: reserved, waited for, given back.
pub(crate) struct Budget {
    total: u64,
    /// (bytes reserved now, the most ever reserved at once).
    used: Mutex<(u64, u64)>,
    freed: Condvar,
}

/// Bytes reserved from a [`Budget`], given back when dropped.
#[must_use = "the bytes are given back when this is dropped"]
pub(crate) struct Reservation<'a> {
    budget: &'a Budget,
    bytes: u64,
}

impl Budget {
    pub(crate) const fn new(total: u64) -> Self {
        Self {
            total,
            used: Mutex::new((0, 0)),
            freed: Condvar::new(),
        }
    }

    /// Reserves `bytes` (at most the whole budget), waiting until that much is free.
    pub(crate) fn reserve(&self, bytes: u64) -> Reservation<'_> {
        let bytes = bytes.min(self.total);
        let mut used = self.lock();
        while used.0 + bytes > self.total {
            used = self
                .freed
                .wait(used)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        used.0 += bytes;
        used.1 = used.1.max(used.0);
        Reservation {
            budget: self,
            bytes,
        }
    }

    /// The most bytes ever reserved at once.
    #[cfg(test)]
    pub(crate) fn peak(&self) -> u64 {
        self.lock().1
    }

    fn lock(&self) -> MutexGuard<'_, (u64, u64)> {
        // A panic while holding the lock leaves a consistent count: keep going.
        self.used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.lock().0 -= self.bytes;
        self.budget.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn a_reservation_waits_until_enough_is_given_back() {
        let budget = Budget::new(100);
        let reserved = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let first = budget.reserve(60);
            let waiter = scope.spawn(|| {
                let _second = budget.reserve(60);
                reserved.store(true, Ordering::SeqCst);
            });
            // Not proof of waiting on its own, but the second can never be in before this.
            std::thread::sleep(Duration::from_millis(50));
            assert!(!reserved.load(Ordering::SeqCst), "60 + 60 > 100 was let in");
            drop(first);
            waiter.join().unwrap();
        });
        assert!(reserved.load(Ordering::SeqCst));
        assert_eq!(budget.peak(), 60);
    }

    #[test]
    fn more_than_the_whole_budget_takes_the_whole_budget() {
        let budget = Budget::new(100);
        let all = budget.reserve(1_000);
        assert_eq!(all.bytes, 100);
        drop(all);
        let _again = budget.reserve(100);
        assert_eq!(budget.peak(), 100);
    }
}
