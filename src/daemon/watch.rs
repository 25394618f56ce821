//! Filesystem events → "something changed" hints. It decides nothing: every pass re-reads
//! from disk, so a lost or spurious event costs at most a pass.
//!
//! It watches folders, not files: editors and git replace files (write a temporary file,
//! rename it over), which ends a watch on the file itself. For a path behind a symlinked
//! folder (`current -> rev-a`, as git-sync and Kubernetes ConfigMap volumes swap them), it
//! also watches the folder holding the symlink, and re-watches a folder whose symlink now
//! points elsewhere. A folder that does not exist yet is retried at the next call of
//! [`Watcher::follow`]; meanwhile its nearest existing ancestor is watched so its creation
//! is noticed.

use super::Event;
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc::UnboundedSender;

/// Watches the folders of a set of files and sends a hint when one of them may have changed.
pub(crate) struct Watcher {
    inner: RecommendedWatcher,
    /// Watched folder → the folder it named when it was watched.
    watched: HashMap<PathBuf, FolderId>,
    /// Paths whose events matter (the files, and the symlinks on their way).
    interesting: Arc<RwLock<HashSet<PathBuf>>>,
    /// Paths removed or renamed since the last [`Watcher::follow`]: a folder among them
    /// is watched again even if a new one took its inode number.
    moved: Arc<Mutex<HashSet<PathBuf>>>,
}

impl Watcher {
    /// A watcher that sends [`Event::Changed`] on `hints` for every relevant event.
    pub(crate) fn new(hints: UnboundedSender<Event>) -> Result<Self, notify::Error> {
        let interesting: Arc<RwLock<HashSet<PathBuf>>> = Arc::default();
        let moved: Arc<Mutex<HashSet<PathBuf>>> = Arc::default();
        let filter = Arc::clone(&interesting);
        let gone = Arc::clone(&moved);
        let inner = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = &event
                && matches!(
                    event.kind,
                    EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
                )
            {
                let mut gone = gone.lock().unwrap_or_else(|e| e.into_inner());
                gone.extend(event.paths.iter().cloned());
            }
            let relevant = match &event {
                // The kernel's queue overflowed, or a watch broke: anything may have changed.
                Err(_) => true,
                Ok(event) if event.need_rescan() => true,
                // Reads (our own passes among them) change nothing; a writer closing does.
                Ok(event) if !changes_content(&event.kind) => false,
                Ok(event) if event.paths.is_empty() => true,
                Ok(event) => {
                    let interesting = filter.read().unwrap_or_else(|e| e.into_inner());
                    event.paths.iter().any(|p| interesting.contains(p))
                }
            };
            if relevant {
                let _ = hints.send(Event::Changed);
            }
        })?;
        Ok(Self {
            inner,
            watched: HashMap::new(),
            interesting,
            moved,
        })
    }

    /// Makes the watch set cover exactly `files` (and the symlinks on their way). Cheap to
    /// call after every pass: it touches only folders whose watch must change.
    pub fn follow<'a>(&mut self, files: impl IntoIterator<Item = &'a Path>) {
        let mut interesting = HashSet::new();
        let mut folders = HashSet::new();
        let mut seen_dirs = HashSet::new();
        // `path` matters: watch the folder that holds it, so its replacement is seen.
        let mut through_parent = |path: &Path, interesting: &mut HashSet<PathBuf>| {
            interesting.insert(path.to_owned());
            if let Some(parent) = path.parent() {
                folders.insert(existing_ancestor(parent));
            }
        };
        for file in files {
            let file = absolute(file);
            through_parent(&file, &mut interesting);
            let Some(dir) = file.parent() else { continue };
            // A file that is itself a symlink into a swapped folder (Kubernetes ConfigMap:
            // `manifest.yaml -> ..data/manifest.yaml`, `..data -> ..2026_11_24…`): the
            // symlinks on the way to its target matter too.
            if let Ok(target) = std::fs::read_link(&file) {
                let target = dir.join(target);
                for link in target.parent().map(symlinks_on_the_way).unwrap_or_default() {
                    through_parent(&link, &mut interesting);
                }
            }
            if !seen_dirs.insert(dir.to_owned()) {
                continue;
            }
            // The folder itself may be swapped (a symlink re-pointed, or a folder renamed
            // or re-created in its place), and so may any symlink on the way to it.
            through_parent(dir, &mut interesting);
            for link in symlinks_on_the_way(dir) {
                through_parent(&link, &mut interesting);
            }
            // A folder that does not exist yet is noticed through its nearest ancestor.
            let mut missing = dir;
            while !missing.exists() {
                interesting.insert(missing.to_owned());
                match missing.parent() {
                    Some(parent) => missing = parent,
                    None => break,
                }
            }
        }
        folders.extend(seen_dirs.iter().map(|dir| existing_ancestor(dir)));
        *self.interesting.write().unwrap_or_else(|e| e.into_inner()) = interesting;

        self.watched.retain(|dir, _| {
            let keep = folders.contains(dir);
            if !keep {
                let _ = self.inner.unwatch(dir);
            }
            keep
        });
        let moved = std::mem::take(&mut *self.moved.lock().unwrap_or_else(|e| e.into_inner()));
        for dir in folders {
            // A watch follows the folder it was set on (its inode): when the path now names
            // another folder (re-pointed symlink, re-created or renamed folder), watch again.
            let now = FolderId::of(&dir);
            match self.watched.get(&dir) {
                Some(before) if *before == now && !moved.contains(&dir) => continue,
                Some(_) => {
                    let _ = self.inner.unwatch(&dir);
                }
                None => {}
            }
            match self.inner.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::debug!(folder = %dir.display(), "watching");
                    self.watched.insert(dir, now);
                }
                Err(e) => {
                    tracing::warn!(folder = %dir.display(), "cannot watch this folder (retried at the next pass): {e}");
                    self.watched.remove(&dir);
                }
            }
        }
    }
}

/// Whether an event can mean new content: everything but opening, reading or closing a
/// file that was only read.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Which folder a path names: device and inode, through symlinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FolderId(Option<(u64, u64)>);

impl FolderId {
    fn of(path: &Path) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self(std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino())))
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

fn existing_ancestor(dir: &Path) -> PathBuf {
    let mut path = dir;
    loop {
        if path.is_dir() {
            return path.to_owned();
        }
        match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => path = parent,
            _ => return PathBuf::from("/"),
        }
    }
}

/// Every ancestor of `dir` (itself included) that is a symlink.
fn symlinks_on_the_way(dir: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .filter(|p| {
            p.symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
        })
        .map(Path::to_owned)
        .collect()
}
