//! What the engine keeps about the pictures it uploads: the picture caches of its state
//! directory, the prepared files already checked against their digest, the perceptual
//! fingerprints of pictures already uploaded (drift compares live pictures with them), and
//! the prepared pictures found damaged once.

use crate::manifest::InstanceId;
use crate::picture::Digest;
use crate::picture::caches::Caches;
use crate::picture::prepared::Checked;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

/// The most fingerprints remembered (a few hundred bytes each); forgotten all at once when
/// full, since they are only a saving.
const MAX_FINGERPRINTS: usize = 10_000;

/// The engine's pictures.
pub(crate) struct Uploads {
    /// Source file identity → SHA-256, and (source, options) → prepared JPEG.
    pub caches: Caches,
    /// Prepared files already checked against their digest (one SHA-256 per file, not per
    /// call).
    pub checked: Arc<Checked>,
    /// Perceptual fingerprints of prepared pictures already uploaded: a fleet showing one
    /// picture on many instances decodes it once.
    fingerprints: HashMap<Digest, Arc<str>>,
    /// Prepared pictures found damaged once and prepared again: found damaged a second
    /// time, the instance fails instead of being re-planned at once (no spinning).
    damaged: HashSet<(InstanceId, Digest)>,
}

impl Uploads {
    /// The engine's pictures, kept in `caches`.
    pub fn new(caches: Caches) -> Self {
        Self {
            caches,
            checked: Arc::default(),
            fingerprints: HashMap::new(),
            damaged: HashSet::new(),
        }
    }

    /// Where the prepared picture `digest` is kept.
    pub fn path(&self, digest: Digest) -> PathBuf {
        self.caches.prepared_path(digest)
    }

    /// The fingerprint of `digest`, if an upload of it computed one.
    pub fn fingerprint(&self, digest: Digest) -> Option<Arc<str>> {
        self.fingerprints.get(&digest).cloned()
    }

    /// Remembers the fingerprint of `digest`.
    pub fn remember(&mut self, digest: Digest, fingerprint: Arc<str>) {
        if self.fingerprints.len() >= MAX_FINGERPRINTS {
            self.fingerprints.clear();
        }
        self.fingerprints.insert(digest, fingerprint);
    }

    /// An upload of `id` went out: whatever was damaged for it is forgotten.
    pub fn sent(&mut self, id: &InstanceId) {
        if !self.damaged.is_empty() {
            self.damaged.retain(|(damaged, _)| damaged != id);
        }
    }

    /// The prepared `digest` of `id` was found damaged: it is prepared again from its
    /// source. `true` when this is the second time without an upload in between.
    pub fn damaged(&mut self, id: &InstanceId, digest: Digest) -> bool {
        self.caches.prepared.forget(digest);
        !self.damaged.insert((id.clone(), digest))
    }
}
