//! How many connections the listener holds, and which one gives way. Each connection costs
//! a file descriptor and its buffers, so they are capped ([`cap`]: below the process's
//! descriptor limit, with room kept for the engine's files and calls). A connection that
//! has not sent a request yet (a client between requests, or one that never will) is
//! idle; when the cap is reached, a new connection closes the oldest idle one, so a flood
//! of held connections cannot keep a probe from being answered, and the flood costs at most
//! the cap in memory. A request being answered is never cut.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// The most connections held at once, whatever the descriptor limit.
pub(crate) const MAX_CONNECTIONS: usize = 1024;

/// Descriptors kept for everything but the listener: the manifest, pictures, token files,
/// the state directory's files, watches, and a socket for each call in flight.
pub(crate) const RESERVED_DESCRIPTORS: u64 = 512;

/// The connections to allow with `limit` descriptors (the soft `RLIMIT_NOFILE`): half of
/// what is left after [`RESERVED_DESCRIPTORS`] (an evicted connection's descriptor may not
/// be closed yet when the next is accepted), at most [`MAX_CONNECTIONS`], at least 8.
pub(crate) fn cap(limit: u64) -> usize {
    let spare = limit.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    usize::try_from(spare).map_or(MAX_CONNECTIONS, |spare| spare.clamp(8, MAX_CONNECTIONS))
}

/// The descriptors this process may open: the soft `RLIMIT_NOFILE`, first raised to the
/// hard limit (as Go's runtime does; the unit sets both with `LimitNOFILE=`).
pub(crate) fn descriptors() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return RESERVED_DESCRIPTORS * 2;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// The open connections.
#[derive(Debug)]
pub(crate) struct Connections {
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Open connections.
    open: usize,
    /// The idle ones, by when they became idle (oldest first): what closes each.
    idle: BTreeMap<u64, Arc<Notify>>,
    /// The next idle-since number.
    next: u64,
}

/// One admitted connection: idle until [`Self::busy`]. Dropped when the connection ends.
#[derive(Debug)]
pub(crate) struct Slot {
    connections: Arc<Connections>,
    close: Arc<Notify>,
    /// Changed only under the connections' lock, which decides it: an `Idle` slot that is
    /// no longer in [`Inner::idle`] was evicted.
    standing: Mutex<Standing>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    /// Waiting for a request; its place among the idle.
    Idle(u64),
    /// Answering a request.
    Busy,
    /// Told to close; no longer counted.
    Evicted,
}

impl Connections {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        tracing::debug!(cap, "the HTTP listener holds at most this many connections");
        Arc::new(Self {
            cap,
            inner: Mutex::default(),
        })
    }

    /// Admits a new connection, idle, closing the oldest idle one when the cap is reached;
    /// `None` (refuse it) when every held connection is answering a request.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Arc<Slot>> {
        let mut inner = self.lock();
        if inner.open >= self.cap {
            let (_, close) = inner.idle.pop_first()?;
            close.notify_one();
            inner.open -= 1; // counted as gone now; its task ends on its own
        }
        inner.open += 1;
        let close = Arc::new(Notify::new());
        let since = inner.next;
        inner.next += 1;
        inner.idle.insert(since, Arc::clone(&close));
        drop(inner);
        Some(Arc::new(Slot {
            connections: Arc::clone(self),
            close,
            standing: Mutex::new(Standing::Idle(since)),
        }))
    }

    /// Open connections.
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.lock().open
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Slot {
    /// Resolves when this connection must close (it was idle and another took its place).
    pub(crate) async fn closed(&self) {
        self.close.notified().await;
    }

    /// Marks the connection as answering a request until the guard is dropped; then it is
    /// idle again, the youngest. A connection told to close stays so.
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        let mut inner = self.connections.lock();
        let mut standing = self.standing_lock();
        if let Standing::Idle(since) = *standing {
            *standing = if inner.idle.remove(&since).is_some() {
                Standing::Busy
            } else {
                Standing::Evicted
            };
        }
        drop((standing, inner));
        Busy(Arc::clone(self))
    }

    fn standing_lock(&self) -> MutexGuard<'_, Standing> {
        self.standing.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A request being answered ([`Slot::busy`]).
pub(crate) struct Busy(Arc<Slot>);

impl Drop for Busy {
    fn drop(&mut self) {
        let slot = &self.0;
        let mut inner = slot.connections.lock();
        let mut standing = slot.standing_lock();
        if *standing == Standing::Busy {
            let since = inner.next;
            inner.next += 1;
            inner.idle.insert(since, Arc::clone(&slot.close));
            *standing = Standing::Idle(since);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.connections.lock();
        let counted = match *self.standing_lock() {
            Standing::Idle(since) => inner.idle.remove(&since).is_some(),
            Standing::Busy => true,
            Standing::Evicted => false,
        };
        if counted {
            inner.open -= 1;
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_the_engine() {
        assert_eq!(cap(1024), 256);
        assert_eq!(cap(16_384), MAX_CONNECTIONS);
        assert_eq!(cap(100), 8);
        assert_eq!(cap(u64::MAX), MAX_CONNECTIONS);
    }

    #[tokio::test]
    async fn n2_at_the_cap_the_oldest_idle_connection_gives_way_and_a_busy_one_never_does() {
        let connections = Connections::new(3);
        let first = connections.admit().unwrap();
        let second = connections.admit().unwrap();
        let third = connections.admit().unwrap();
        assert_eq!(connections.open(), 3);

        // The first is answering a request: the second, the oldest idle, gives way.
        let answering = first.busy();
        let fourth = connections.admit().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), second.closed())
            .await
            .expect("the oldest idle connection was told to close");
        assert_eq!(connections.open(), 3);
        // Its request arrived as it was told to close: it stays closing, counted once.
        drop(second.busy());
        drop(second); // its task ends: nothing counted twice
        assert_eq!(connections.open(), 3);

        // The first, idle again, is now the youngest: the third gives way next.
        drop(answering);
        let _fifth = connections.admit().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), third.closed())
            .await
            .expect("the third gave way");
        drop(third);

        // With every held connection answering, a new one is refused.
        let (_a, _b, _c) = (first.busy(), fourth.busy(), _fifth.busy());
        assert!(connections.admit().is_none());
        assert_eq!(connections.open(), 3);
        drop((first, fourth));
        assert_eq!(connections.open(), 3, "busy guards still hold their slots");
    }
}
