//! The two picture caches a writer keeps in its state directory, held together: source file
//! identity → SHA-256 ([`Hashes`]) and (source, options) → prepared JPEG ([`Prepared`]).
//! The reconciler owns them; a missing or damaged cache costs time, never correctness.

use super::hashes::Hashes;
use super::prepared::{self, Prepared};
use crate::picture::Digest;
use std::path::{Path, PathBuf};

/// A picture cache could not be saved (it costs time at the next start, not correctness).
#[derive(Debug, thiserror::Error)]
#[error("cannot save the picture cache {path}: {source}")]
pub struct CacheError {
    /// The cache file.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// Writes a cache document as JSON, atomically (one helper for both caches).
pub(super) fn save_json(path: PathBuf, doc: &impl serde::Serialize) -> Result<(), CacheError> {
    serde_json::to_vec(doc)
        .map_err(std::io::Error::other)
        .and_then(|bytes| crate::fsio::write_bytes_atomically(&path, &bytes))
        .map_err(|source| CacheError { path, source })
}

impl CacheError {
    /// A stable machine label.
    pub(crate) fn label(&self) -> &'static str {
        "cache-write"
    }
}

/// Both caches of one folder (the state directory).
#[derive(Debug)]
pub(crate) struct Caches {
    dir: PathBuf,
    /// Whether [`Caches::save`] writes (a writer's caches).
    writes: bool,
    /// Source file identity → SHA-256.
    pub hashes: Hashes,
    /// (source, options) → prepared JPEG.
    pub prepared: Prepared,
}

impl Caches {
    /// The writer's caches in `dir`: prepared pictures are written there.
    pub(crate) fn writer(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            writes: true,
            hashes: Hashes::load(dir),
            prepared: Prepared::writer(dir),
        }
    }

    /// A reader's view of the caches in `dir`: uses what is there, writes nothing.
    pub(crate) fn reader(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            writes: false,
            hashes: Hashes::load(dir),
            prepared: Prepared::reader(dir),
        }
    }

    /// Caches that start empty and keep prepared pictures in memory ([`Prepared::bytes`]);
    /// nothing is read from or written to `dir`.
    pub(crate) fn in_memory(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            writes: false,
            hashes: Hashes::default(),
            prepared: Prepared::in_memory(true),
        }
    }

    /// Where the prepared picture `digest` is kept.
    pub(crate) fn prepared_path(&self, digest: Digest) -> PathBuf {
        prepared::path_in(&self.dir, digest)
    }

    /// Saves what changed (a writer's caches only; once per pass).
    pub(crate) fn save(&mut self) -> Result<(), CacheError> {
        if !self.writes {
            return Ok(());
        }
        self.hashes.save(&self.dir)?;
        self.prepared.save(&self.dir)
    }
}
