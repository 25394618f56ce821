//! What the status page shows, kept by the loop for the HTTP listener: the latest report
//! (published after every pass and whenever the instances settle), the manifest's git
//! revision, and thumbnails of the uploads, made once from the prepared cache. The page is
//! read by whoever reaches the listener: it names files relative to the manifest's folder,
//! never where that folder is on the host.

use super::health::Health;
use crate::picture::Digest;
use crate::picture::process::thumbnail;
use crate::report::Report;
use crate::report::html::{PageContext, page};
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
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
    /// The manifest's file name.
    manifest: String,
    /// The manifest's folder as given and as the host resolves it, each ending in `/`,
    /// longest first: taken off every path the page shows.
    folders: Vec<String>,
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
    pub(crate) fn new(manifest: &Path, state_dir: PathBuf) -> Self {
        let folder = manifest.parent().unwrap_or(Path::new(""));
        let mut folders: Vec<String> = [Some(folder.to_owned()), folder.canonicalize().ok()]
            .into_iter()
            .flatten()
            .map(|folder| folder.display().to_string())
            .filter(|folder| !folder.is_empty())
            .map(|folder| format!("{}/", folder.trim_end_matches('/')))
            .filter(|folder| folder != "/")
            .collect();
        folders.sort_by_key(|folder| std::cmp::Reverse(folder.len()));
        folders.dedup();
        let name = manifest.file_name().unwrap_or(manifest.as_os_str());
        Self {
            manifest: name.to_string_lossy().into_owned(),
            folders,
            state_dir,
            latest: Mutex::new(Latest {
                report: Arc::new(Report::new(Vec::new(), crate::report::ReportKind::Status)),
                at: SystemTime::UNIX_EPOCH,
            }),
            thumbnails: Mutex::default(),
        }
    }

    /// The report to show from now on.
    pub(crate) fn publish(&self, mut report: Report, at: SystemTime) {
        for row in &mut report.instances {
            row.picture = self.relative(&row.picture);
            row.error = row.error.as_deref().map(|error| self.relative(error));
        }
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
        // Where each upload was cut from its source, as the prepared index records it.
        let cuts = crate::picture::prepared::cuts(&self.state_dir);
        let context = PageContext {
            manifest: &self.manifest,
            revision: report.revision.as_ref(),
            at,
            cuts: &cuts,
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

    /// `text` with the manifest's folder taken off every path in it.
    fn relative(&self, text: &str) -> String {
        (self.folders.iter()).fold(text.to_owned(), |text, folder| {
            text.replace(folder.as_str(), "")
        })
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Bytes>> {
        self.thumbnails.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ReportKind, Row, Standing, Status};

    #[test]
    fn n3_the_page_names_files_relative_to_the_manifests_folder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("fleet");
        std::fs::create_dir(&folder).unwrap();
        let board = Board::new(&folder.join("manifest.yaml"), dir.path().join("state"));
        let shown = folder.display().to_string();
        let row = Row::<Status, Standing> {
            id_instance: "1101000001".to_owned(),
            picture: format!("{shown}/pictures/a.jpg"),
            status: Status::Failed,
            detail: Standing {
                desired_sha256: Some("a".repeat(64)),
                ..Standing::default()
            },
            error: Some(format!("cannot read {shown}/pictures/a.jpg: no such file")),
            error_kind: Some("picture-unreadable".to_owned()),
        };
        board.publish(
            Report::new(vec![row], ReportKind::Status),
            SystemTime::UNIX_EPOCH,
        );
        let page = board.page();
        assert!(!page.contains(&shown), "{page}");
        assert!(
            page.contains("manifest <code>manifest.yaml</code>"),
            "{page}"
        );
        assert!(page.contains("<code>pictures/a.jpg</code>"), "{page}");
        assert!(
            page.contains("cannot read pictures/a.jpg: no such file"),
            "{page}"
        );
    }

    #[test]
    fn n17_a_fifo_among_the_prepared_pictures_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let digest = Digest::of(b"an upload");
        let path = crate::picture::prepared::path_in(&state, digest);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let board = Arc::new(Board::new(&dir.path().join("manifest.yaml"), state));
        let row = Row::<Status, Standing> {
            id_instance: "1101000001".to_owned(),
            picture: "a.jpg".to_owned(),
            status: Status::InSync,
            detail: Standing {
                desired_sha256: Some(digest.to_string()),
                ..Standing::default()
            },
            error: None,
            error_kind: None,
        };
        board.publish(
            Report::new(vec![row], ReportKind::Status),
            SystemTime::UNIX_EPOCH,
        );
        // In a thread: a read that waits on the FIFO fails the test instead of hanging it.
        let (sent, answered) = std::sync::mpsc::channel();
        let reader = Arc::clone(&board);
        std::thread::spawn(move || sent.send(reader.thumbnail(digest)).unwrap());
        let thumbnail = answered
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the thumbnail waited on a FIFO");
        assert_eq!(thumbnail, None);
        // And the thumbnails' lock is free.
        assert!(board.thumbnails.try_lock().is_ok());
    }
}
