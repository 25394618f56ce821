//! Picture identity on disk → SHA-256, kept in the state directory, so that a pass reads and
//! hashes only the pictures whose files changed; the others cost one `stat`.
//!
//! Like git's index, an entry is trusted only while the file's identity (device, inode,
//! size, mtime, ctime) is unchanged, and only if the file was last modified well before it
//! was hashed: a write within the timestamp granularity of the hash ("racily clean") could
//! leave the identity unchanged, so such a file is hashed again. A missing, stale or
//! unreadable cache costs time, never correctness.

use super::caches::{CacheError, save_json};
use crate::picture::{self, Digest, Identity, PictureError};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub(crate) use crate::layout::HASHES_FILE;
/// The cache's format version; another version is ignored (and rebuilt).
const VERSION: u32 = 1;
/// Files modified less than this before they were hashed are hashed again (2 s covers the
/// coarsest common timestamps, FAT's).
pub(crate) const RACY_WINDOW_NS: i64 = 2_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(flatten)]
    identity: Identity,
    sha256: Digest,
    /// When the file was read, nanoseconds since the epoch.
    hashed_at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct Document {
    version: u32,
    files: HashMap<String, Entry>,
}

/// How a pass used the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HashStats {
    /// Pictures known by their identity: one `stat`, no read.
    pub hits: usize,
    /// Pictures read and hashed.
    pub misses: usize,
}

/// The cache, in memory.
#[derive(Debug, Default)]
pub struct Hashes {
    entries: HashMap<PathBuf, Entry>,
    dirty: bool,
    /// Counts since the last [`Hashes::take_stats`].
    stats: HashStats,
    /// A picture read whose file changed less than this ago is [`PictureError::Changing`]
    /// (see [`picture::SETTLE`]); zero accepts any.
    settle: std::time::Duration,
}

impl Hashes {
    /// Loads the cache of a state directory; anything unusable gives an empty cache.
    pub fn load(dir: &Path) -> Self {
        let path = dir.join(HASHES_FILE);
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Document>(&bytes).ok())
            .filter(|doc| doc.version == VERSION)
            .map(|doc| {
                doc.files
                    .into_iter()
                    .map(|(path, entry)| (PathBuf::from(path), entry))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            entries,
            ..Self::default()
        }
    }

    /// From now on, a picture whose file changed less than `settle` ago is not taken: it
    /// is [`PictureError::Changing`] until it has been still that long.
    pub fn require_settled(&mut self, settle: std::time::Duration) {
        self.settle = settle;
    }

    /// Saves the cache into the folder `dir` if it changed. Only the state directory's
    /// writer saves.
    pub fn save(&mut self, dir: &Path) -> Result<(), CacheError> {
        if !self.dirty {
            return Ok(());
        }
        let files = self
            .entries
            .iter()
            .filter_map(|(path, entry)| Some((path.to_str()?.to_owned(), *entry)))
            .collect();
        let doc = Document {
            version: VERSION,
            files,
        };
        save_json(dir.join(HASHES_FILE), &doc)?;
        self.dirty = false;
        Ok(())
    }

    /// The digest of the picture at `path`: from the cache when its identity is unchanged
    /// (one `stat`), else read, checked and hashed.
    pub fn digest(&mut self, path: &Path) -> Result<Digest, PictureError> {
        if let Ok(meta) = std::fs::metadata(path) {
            let identity = Identity::of(&meta);
            if let Some(entry) = self.entries.get(path)
                && entry.identity == identity
                && entry.identity.mtime_ns < entry.hashed_at_ns.saturating_sub(RACY_WINDOW_NS)
            {
                self.stats.hits += 1;
                return Ok(entry.sha256);
            }
        }
        self.stats.misses += 1;
        let hashed_at_ns = now_ns();
        let settle_ns = i64::try_from(self.settle.as_nanos()).unwrap_or(i64::MAX);
        match picture::read(path) {
            Ok(picture) if picture.identity.ctime_ns > hashed_at_ns.saturating_sub(settle_ns) => {
                Err(PictureError::Changing {
                    path: path.to_owned(),
                })
            }
            Ok(picture) => {
                self.remember(path, picture.identity, picture.digest, hashed_at_ns);
                Ok(picture.digest)
            }
            Err(e) => {
                if self.entries.remove(path).is_some() {
                    self.dirty = true;
                }
                Err(e)
            }
        }
    }

    /// Records a digest just computed from the file at `path` with `identity`.
    pub fn remember(&mut self, path: &Path, identity: Identity, sha256: Digest, hashed_at_ns: i64) {
        let entry = Entry {
            identity,
            sha256,
            hashed_at_ns,
        };
        if self.entries.get(path) != Some(&entry) {
            self.entries.insert(path.to_owned(), entry);
            self.dirty = true;
        }
    }

    /// The digests of a set of pictures, each distinct path looked at once.
    pub fn digest_all<'a>(
        &mut self,
        paths: impl IntoIterator<Item = &'a Path>,
    ) -> HashMap<PathBuf, Result<Digest, PictureError>> {
        let mut out = HashMap::new();
        // Each path once, told apart by its bytes (cheaper than hashing its components).
        let mut seen = HashSet::new();
        for path in paths {
            if seen.insert(path.as_os_str()) {
                let digest = self.digest(path);
                out.insert(path.to_owned(), digest);
            }
        }
        out
    }

    /// Forgets files that are no longer pictures of the manifest.
    pub fn retain(&mut self, paths: &HashSet<&Path>) {
        let before = self.entries.len();
        self.entries
            .retain(|path, _| paths.contains(path.as_path()));
        self.dirty |= self.entries.len() != before;
    }

    /// How the cache was used since the last call.
    pub fn take_stats(&mut self) -> HashStats {
        std::mem::take(&mut self.stats)
    }
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
