//! What the status page shows, kept by the loop for the HTTP listener: the latest report
//! (published after every pass and whenever the instances settle), the manifest's git
//! revision, and thumbnails of the uploads, made once from the prepared cache.

use super::health::Health;
use crate::picture::Digest;
use crate::picture::process::thumbnail;
use crate::report::Report;
use crate::report::html::{PageContext, page};
use bytes::Bytes;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Thumbnails are this many pixels on their longest edge (shown at 96 CSS pixels, sharp
/// on a phone's 2× screen up to its 128).
const THUMBNAIL_SIDE: u32 = 128;

/// The loop's side of the HTTP listener: liveness, readiness and the status page.
#[derive(Debug)]
pub(crate) struct Observed {
    /// Alive and ready.
    pub health: Health,
    /// The status page's data.
    pub board: Board,
}

/// The latest report and what the page needs with it.
#[derive(Debug)]
pub(crate) struct Board {
    manifest: String,
    state_dir: PathBuf,
    latest: Mutex<Latest>,
    thumbnails: Mutex<HashMap<Digest, Bytes>>,
}

#[derive(Debug)]
struct Latest {
    report: Arc<Report>,
    at: SystemTime,
}

impl Board {
    /// An empty board for the manifest at `manifest`, reading uploads from `state_dir`.
    pub(crate) fn new(manifest: String, state_dir: PathBuf) -> Self {
        Self {
            manifest,
            state_dir,
            latest: Mutex::new(Latest {
                report: Arc::new(Report::new(Vec::new(), crate::report::ReportKind::Status)),
                at: SystemTime::UNIX_EPOCH,
            }),
            thumbnails: Mutex::default(),
        }
    }

    /// The report to show from now on.
    pub(crate) fn publish(&self, report: Report, at: SystemTime) {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        *latest = Latest {
            report: Arc::new(report),
            at,
        };
    }

    /// The status page.
    pub(crate) fn page(&self) -> String {
        let (report, at) = {
            let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
            (Arc::clone(&latest.report), latest.at)
        };
        let context = PageContext {
            manifest: &self.manifest,
            revision: report.manifest_revision.as_deref(),
            at,
        };
        crate::redact::scrub(&page(&report, &context)).into_owned()
    }

    /// The thumbnail of the upload `digest`, if the page shows that picture. Made from the
    /// prepared file (a regular file, capped, checked against its digest), then kept.
    /// Blocking: reads a file and decodes a JPEG, holding no lock meanwhile.
    pub(crate) fn thumbnail(&self, digest: Digest) -> Option<Bytes> {
        let wanted = digest.to_string();
        let shown = {
            let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
            (latest.report.instances.iter())
                .any(|row| row.detail.desired_sha256.as_deref() == Some(wanted.as_str()))
        };
        if !shown {
            return None;
        }
        if let Some(bytes) = self.kept().get(&digest) {
            return Some(bytes.clone());
        }
        let path = crate::picture::prepared::path_in(&self.state_dir, digest);
        let upload = crate::fsio::read_regular(&path, crate::picture::MAX_PICTURE_BYTES)
            .ok()
            .filter(|b| Digest::of(b) == digest)?;
        let bytes = Bytes::from(thumbnail(&upload, THUMBNAIL_SIDE).ok()?);
        // Two requests may both make it; the second keeps the same bytes.
        let mut thumbnails = self.kept();
        // Pictures come and go with the manifest; a fleet has at most a few thousand.
        if thumbnails.len() >= 4096 {
            thumbnails.clear();
        }
        thumbnails.insert(digest, bytes.clone());
        Some(bytes)
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Bytes>> {
        self.thumbnails.lock().unwrap_or_else(|e| e.into_inner())
    }
}
