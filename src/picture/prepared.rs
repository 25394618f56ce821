//! Source picture + processing options → the exact JPEG to upload (a "prepared" picture),
//! made once and kept in the state directory, so a pass never decodes an unchanged picture
//! again and an upload reads bytes that are ready.
//!
//! `prepared.json` maps (source SHA-256, options, pipeline version) to the SHA-256 of the
//! prepared bytes, which live in `prepared/<sha256>.jpg` (content-addressed, written
//! atomically, mode 0600). Only the state directory's writer keeps them; read-only modes
//! (`--dry-run`, `--status`) use what is there and prepare the rest in memory;
//! `--check` and `--preview` prepare everything in memory.

use super::caches::{CacheError, save_json};
use super::process;
use crate::fsio;
use crate::manifest::Processing;
use crate::outcome::{LocalKind, LocalProblem};
use crate::picture::{self, Digest};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub(crate) use crate::layout::{PREPARED_FOLDER as FOLDER, PREPARED_INDEX_FILE as INDEX_FILE};
/// The index's format version; another version is ignored (and rebuilt).
const VERSION: u32 = 1;
/// The largest index read (a fleet shows a few pictures: entries are a few per picture).
const MAX_INDEX_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct Index {
    version: u32,
    /// `<source sha256>;<options cache key>` → prepared sha256.
    prepared: HashMap<String, Digest>,
    /// Prepared sha256 → where it was cut from its source (`fit: cover`, `fit: face`), for
    /// the status page.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    cuts: HashMap<Digest, String>,
}

/// Where prepared bytes go.
#[derive(Debug)]
enum Outputs {
    /// The writer's folder: every prepared picture is written there.
    Folder(PathBuf),
    /// Read-only: digests only; the bytes are dropped.
    Discard,
    /// In memory (`--preview`): kept for the caller.
    Keep(HashMap<Digest, Vec<u8>>),
}

/// Prepared pictures: the index, and where their bytes are.
#[derive(Debug)]
pub struct Prepared {
    index: HashMap<String, Digest>,
    /// Where each prepared picture was cut from its source, when it was cut.
    cuts: HashMap<Digest, String>,
    outputs: Outputs,
    dirty: bool,
    /// The folder may hold files no longer used: set by new files and dropped entries.
    unswept: bool,
    /// How many pictures were prepared (decoded or stripped) since the last take.
    made: usize,
    /// The files this process wrote (or found holding exactly their bytes) in the writer's
    /// folder since the last take, with their identity then ([`Checked::trust`]).
    written: Vec<(Digest, picture::Identity)>,
}

impl Prepared {
    /// The writer's view: the index of a state directory, and its folder for new pictures.
    pub fn writer(dir: &Path) -> Self {
        let (index, cuts) = load_index(dir);
        Self {
            index,
            cuts,
            outputs: Outputs::Folder(dir.join(FOLDER)),
            dirty: false,
            unswept: true,
            made: 0,
            written: Vec::new(),
        }
    }

    /// A reader's view: uses the index of a state directory, writes nothing.
    pub fn reader(dir: &Path) -> Self {
        let (index, cuts) = load_index(dir);
        Self {
            index,
            cuts,
            outputs: Outputs::Discard,
            dirty: false,
            unswept: false,
            made: 0,
            written: Vec::new(),
        }
    }

    /// Without a state directory; `keep` holds the prepared bytes for [`Prepared::bytes`].
    pub fn in_memory(keep: bool) -> Self {
        Self {
            index: HashMap::new(),
            cuts: HashMap::new(),
            outputs: if keep {
                Outputs::Keep(HashMap::new())
            } else {
                Outputs::Discard
            },
            dirty: false,
            unswept: false,
            made: 0,
            written: Vec::new(),
        }
    }

    /// The digest of the JPEG to upload for the picture at `path` (whose bytes hash to
    /// `source`) under `options`: known from the index, or prepared now.
    pub fn digest(
        &mut self,
        path: &Path,
        source: Digest,
        options: &Processing,
    ) -> Result<Digest, LocalProblem> {
        let key = key(source, options);
        if let Some(digest) = self.known(&key) {
            return Ok(digest);
        }
        let (digest, bytes, cut) = make(path, source, options)?;
        if let Some(cut) = cut {
            self.cuts.insert(digest, cut.to_string());
        }
        let written = match &self.outputs {
            Outputs::Folder(folder) => {
                Some(write_prepared(folder, digest, &bytes).map_err(|e| cannot_keep(path, &e))?)
            }
            _ => None,
        };
        self.record(key, digest, bytes, written);
        Ok(digest)
    }

    /// Prepares, on every core, what the index does not know yet, so that the
    /// [`Prepared::digest`] calls that follow find it. A picture that fails is left for
    /// `digest` to report.
    pub fn prepare_all<'a>(
        &mut self,
        jobs: impl IntoIterator<Item = (&'a Path, Digest, Processing)>,
    ) {
        // Each (source, options) once, before any key is written out.
        let mut seen = HashSet::new();
        let todo: Vec<(&Path, Digest, Processing, String)> = jobs
            .into_iter()
            .filter(|(_, source, options)| seen.insert((*source, *options)))
            .map(|(path, source, options)| (path, source, options, key(source, &options)))
            .filter(|(.., key)| self.known(key).is_none())
            .collect();
        if todo.len() < 2 {
            return;
        }
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let per_thread = todo.len().div_ceil(threads.min(todo.len()));
        let folder = match &self.outputs {
            Outputs::Folder(folder) => Some(folder.as_path()),
            _ => None,
        };
        let keep_bytes = matches!(self.outputs, Outputs::Keep(_));
        type Made = (
            String,
            Digest,
            Vec<u8>,
            Option<picture::Identity>,
            Option<process::Cut>,
        );
        let made: Vec<Made> = std::thread::scope(|scope| {
            let workers: Vec<_> = todo
                .chunks(per_thread)
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .filter_map(|(path, source, options, key)| {
                                let (digest, bytes, cut) = make(path, *source, options).ok()?;
                                let written = match folder {
                                    Some(folder) => {
                                        Some(write_prepared(folder, digest, &bytes).ok()?)
                                    }
                                    None => None,
                                };
                                // Only --preview keeps the bytes: a fleet's would not fit.
                                let bytes = if keep_bytes { bytes } else { Vec::new() };
                                Some((key.clone(), digest, bytes, written, cut))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| worker.join().unwrap_or_default())
                .collect()
        });
        for (key, digest, bytes, written, cut) in made {
            if let Some(cut) = cut {
                self.cuts.insert(digest, cut.to_string());
            }
            self.record(key, digest, bytes, written);
        }
    }

    /// The prepared digest for `key`, if the index knows it (and, for `--preview`, its
    /// bytes are at hand).
    fn known(&self, key: &str) -> Option<Digest> {
        let digest = *self.index.get(key)?;
        match &self.outputs {
            Outputs::Keep(kept) if !kept.contains_key(&digest) => None,
            _ => Some(digest),
        }
    }

    /// Records a picture just prepared (and, in the writer's folder, `written`).
    fn record(
        &mut self,
        key: String,
        digest: Digest,
        bytes: Vec<u8>,
        written: Option<picture::Identity>,
    ) {
        self.made += 1;
        self.written
            .extend(written.map(|identity| (digest, identity)));
        self.index.insert(key, digest);
        match &mut self.outputs {
            Outputs::Folder(_) => {
                self.dirty = true;
                self.unswept = true;
            }
            Outputs::Discard => {}
            Outputs::Keep(kept) => {
                kept.insert(digest, bytes);
            }
        }
    }

    /// Forgets what the index says about `digest` (its file turned out missing or damaged),
    /// so the next [`Prepared::digest`] prepares it again.
    pub fn forget(&mut self, digest: Digest) {
        let before = self.index.len();
        self.index.retain(|_, d| *d != digest);
        self.dirty |= self.index.len() != before;
    }

    /// The prepared bytes kept in memory ([`Prepared::in_memory`] with `keep`).
    pub fn bytes(&self, digest: Digest) -> Option<&[u8]> {
        match &self.outputs {
            Outputs::Keep(kept) => kept.get(&digest).map(Vec::as_slice),
            _ => None,
        }
    }

    /// How many pictures were prepared since the last call.
    pub fn take_made(&mut self) -> usize {
        std::mem::take(&mut self.made)
    }

    /// The files written in the writer's folder since the last call, with their identity.
    pub fn take_written(&mut self) -> Vec<(Digest, picture::Identity)> {
        std::mem::take(&mut self.written)
    }

    /// Keeps only what `live` pictures need; removes the other prepared files (looking at
    /// the folder only when something may have become unused, so a quiet pass stays cheap).
    pub fn retain(&mut self, live: &HashSet<Digest>) {
        let before = self.index.len();
        self.index.retain(|_, digest| live.contains(digest));
        self.cuts.retain(|digest, _| live.contains(digest));
        if self.index.len() != before {
            self.dirty = true;
            self.unswept = true;
        }
        if !std::mem::take(&mut self.unswept) {
            return;
        }
        if let Outputs::Folder(folder) = &self.outputs {
            // Only our own files go: `<sha256>.jpg` regular files in the state directory's
            // real folder. A symlinked folder (which would lead outside the state
            // directory), a stray file, a link or a sub-folder is left alone.
            if !is_real_dir(folder) {
                return;
            }
            let Ok(entries) = std::fs::read_dir(folder) else {
                return;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(digest) = name
                    .to_str()
                    .and_then(|name| name.strip_suffix(".jpg"))
                    .and_then(|stem| stem.parse::<Digest>().ok())
                else {
                    continue;
                };
                let regular = entry.file_type().is_ok_and(|t| t.is_file());
                if regular && !live.contains(&digest) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }

    /// Saves the index if it changed (the writer only; pictures were written as made).
    pub fn save(&mut self, dir: &Path) -> Result<(), CacheError> {
        if !self.dirty || !matches!(self.outputs, Outputs::Folder(_)) {
            return Ok(());
        }
        let index = Index {
            version: VERSION,
            prepared: self.index.clone(),
            cuts: self.cuts.clone(),
        };
        save_json(dir.join(INDEX_FILE), &index)?;
        self.dirty = false;
        Ok(())
    }
}

/// Prepared files this process found to hold their digest, by identity on disk (device,
/// inode, size, mtime, ctime): the same file read again for another upload needs no new
/// SHA-256 (at 100 KiB, that is most of a call's CPU). A file whose last change was less
/// than 2 s before it was checked is not remembered: a write within the file system's
/// timestamp granularity could leave its identity as it was. Files this process wrote
/// itself ([`Checked::trust`]) are known at once: only the lock's holder writes in that
/// folder, which no one else may write to.
#[derive(Debug, Default)]
pub struct Checked(Mutex<HashMap<Digest, picture::Identity>>);

impl Checked {
    /// The prepared picture at `path`, when it is exactly the bytes of `digest`. Called on
    /// the async loop's thread: a prepared file is a recent upload in the state directory,
    /// read from the page cache in less time than handing the read to another thread and
    /// back costs.
    pub fn read(&self, path: &Path, digest: Digest) -> Option<Vec<u8>> {
        let (file, metadata) = crate::fsio::open_regular_with_metadata(path).ok()?;
        let identity = picture::Identity::of(&metadata);
        if identity.size > picture::MAX_PICTURE_BYTES {
            return None;
        }
        let mut bytes = Vec::with_capacity(usize::try_from(identity.size).ok()?);
        // The size it had when opened, and no further read to find its end: what is read
        // is uploaded only if it hashes to `digest` (or the file is known unchanged).
        file.take(identity.size).read_to_end(&mut bytes).ok()?;
        if bytes.len() as u64 == identity.size && self.files().get(&digest) == Some(&identity) {
            return Some(bytes);
        }
        let checked_at = super::hashes::now_ns();
        if Digest::of(&bytes) != digest {
            return None;
        }
        let settled = checked_at.saturating_sub(super::hashes::RACY_WINDOW_NS);
        if identity.mtime_ns < settled && identity.ctime_ns < settled {
            self.files().insert(digest, identity);
        }
        Some(bytes)
    }

    /// Remembers files this process just wrote with exactly their digest's bytes
    /// ([`Prepared::take_written`]).
    pub fn trust(&self, written: impl IntoIterator<Item = (Digest, picture::Identity)>) {
        self.files().extend(written);
    }

    fn files(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, picture::Identity>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The index key of a source picture under some options.
fn key(source: Digest, options: &Processing) -> String {
    format!("{source};{}", process::cache_key(options))
}

/// Reads the picture at `path`, checks it still hashes to `source`, and turns it into the
/// JPEG to upload: its digest and bytes.
fn make(
    path: &Path,
    source: Digest,
    options: &Processing,
) -> Result<(Digest, Vec<u8>, Option<process::Cut>), LocalProblem> {
    let picture = picture::read(path).map_err(|e| LocalProblem::new(e.kind(), e.to_string()))?;
    if picture.digest != source {
        let e = picture::PictureError::Changing {
            path: path.to_owned(),
        };
        return Err(LocalProblem::new(e.kind(), e.to_string()));
    }
    let (bytes, route, cut) = process::process_cut(&picture.bytes, options)
        .map_err(|e| LocalProblem::new(e.kind(), format!("picture {}: {e}", path.display())))?;
    let digest = Digest::of(&bytes);
    tracing::debug!(picture = %path.display(), ?route, sha256 = %digest.short(), "prepared");
    Ok((digest, bytes, cut))
}

fn cannot_keep(path: &Path, e: &std::io::Error) -> LocalProblem {
    LocalProblem::new(
        LocalKind::StateWrite,
        format!(
            "cannot keep the prepared picture for {}: {e}",
            path.display()
        ),
    )
}

/// Where the writer keeps the prepared picture `digest`.
pub fn path_in(dir: &Path, digest: Digest) -> PathBuf {
    dir.join(FOLDER).join(format!("{digest}.jpg"))
}

/// The index of state directory `dir`, and where its pictures were cut from.
fn load_index(dir: &Path) -> (HashMap<String, Digest>, HashMap<Digest, String>) {
    crate::fsio::read_regular(&dir.join(INDEX_FILE), MAX_INDEX_BYTES)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Index>(&bytes).ok())
        .filter(|index| index.version == VERSION)
        .map(|index| (index.prepared, index.cuts))
        .unwrap_or_default()
}

/// Where each picture prepared in state directory `dir` was cut from its source, by its
/// SHA-256 (hex): what the status page says under it.
pub fn cuts(dir: &Path) -> HashMap<String, String> {
    let (_, cuts) = load_index(dir);
    (cuts.into_iter())
        .map(|(digest, cut)| (digest.to_string(), cut))
        .collect()
}

/// Writes a prepared picture under its digest: temporary file, rename; says the file's
/// identity then. A regular file of that name is kept only if it still holds these exact
/// bytes (the name is their hash). No fsync: this is a cache, and every upload checks the
/// file against its digest, so a file damaged by a crash (left empty by a power loss, say)
/// is replaced here when prepared again.
fn write_prepared(
    folder: &Path,
    digest: Digest,
    bytes: &[u8],
) -> std::io::Result<picture::Identity> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = folder.join(format!("{digest}.jpg"));
    if let Some(identity) = holding(&path, bytes) {
        return Ok(identity);
    }
    fsio::create_private_dir(folder)?;
    if !is_real_dir(folder) {
        return Err(std::io::Error::other(format!(
            "{} is not a folder of the state directory (a symlink?)",
            folder.display()
        )));
    }
    let tmp = folder.join(format!(".{digest}.jpg.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&tmp, &path)?;
    // After the rename, which changes the file's ctime.
    Ok(picture::Identity::of(&std::fs::symlink_metadata(&path)?))
}

/// The identity of `path` if it is a regular file (not a symlink) whose content is exactly
/// `bytes`.
fn holding(path: &Path, bytes: &[u8]) -> Option<picture::Identity> {
    let metadata = std::fs::symlink_metadata(path).ok()?;
    let regular_of_len = metadata.file_type().is_file() && metadata.len() == bytes.len() as u64;
    let holds = regular_of_len && std::fs::read(path).is_ok_and(|on_disk| on_disk == bytes);
    holds.then(|| picture::Identity::of(&metadata))
}

/// Whether `path` is a folder itself, not a symlink to one.
fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checked_file_is_trusted_by_identity_and_a_rewritten_one_checked_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jpg");
        let (a, b) = (b"prepared a".as_slice(), b"prepared b".as_slice());
        std::fs::write(&path, a).unwrap();
        let checked = Checked::default();
        let remembered = |checked: &Checked| checked.files().len();

        // Just written: right, but not remembered (its timestamps could still hide a write).
        assert_eq!(checked.read(&path, Digest::of(a)).as_deref(), Some(a));
        assert_eq!(remembered(&checked), 0);
        assert_eq!(checked.read(&path, Digest::of(b)), None, "wrong digest");

        // Settled: remembered, and read again without hashing.
        std::thread::sleep(std::time::Duration::from_millis(2_100));
        assert_eq!(checked.read(&path, Digest::of(a)).as_deref(), Some(a));
        assert_eq!(remembered(&checked), 1);
        assert_eq!(checked.read(&path, Digest::of(a)).as_deref(), Some(a));

        // Rewritten in place with other bytes of the same size: a new ctime, so hashed and
        // refused.
        std::fs::write(&path, b).unwrap();
        assert_eq!(checked.read(&path, Digest::of(a)), None);
        // Gone: nothing.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(checked.read(&path, Digest::of(a)), None);
    }

    #[test]
    fn a_file_this_process_prepared_is_known_at_once_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source.png");
        let mut png = Vec::new();
        image::RgbImage::from_pixel(32, 32, image::Rgb([200, 30, 30]))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        std::fs::write(&source, &png).unwrap();
        let mut prepared = Prepared::writer(dir.path());
        let options = Processing::default();
        let digest = prepared
            .digest(&source, Digest::of(&png), &options)
            .unwrap();
        let written = prepared.take_written();
        let file = path_in(dir.path(), digest);
        let identity = picture::Identity::of(&std::fs::symlink_metadata(&file).unwrap());
        assert_eq!(written, vec![(digest, identity)]);
        assert!(prepared.take_written().is_empty(), "taken once");

        // Known at once, though written just now; the bytes read are the file's.
        let checked = Checked::default();
        checked.trust(written);
        let bytes = checked.read(&file, digest).unwrap();
        assert_eq!(Digest::of(&bytes), digest);
        // Rewritten: a new identity (its size, here: timestamps may not have moved yet), so
        // hashed and refused.
        let mut other = bytes.clone();
        other.push(0);
        std::fs::write(&file, &other).unwrap();
        assert_eq!(checked.read(&file, digest), None);
    }

    #[test]
    fn where_a_picture_was_cut_is_kept_with_the_index_for_the_status_page() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("wide.png");
        let mut png = Vec::new();
        image::RgbImage::from_fn(160, 120, |x, _| image::Rgb([x as u8, 90, 200]))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        std::fs::write(&source, &png).unwrap();
        let mut prepared = Prepared::writer(dir.path());
        let cover = Processing {
            fit: process::Fit::Cover,
            ..Processing::default()
        };
        let cut = prepared.digest(&source, Digest::of(&png), &cover).unwrap();
        // Not cut: no note.
        let whole = (prepared.digest(&source, Digest::of(&png), &Processing::default())).unwrap();
        prepared.save(dir.path()).unwrap();
        let cuts = super::cuts(dir.path());
        assert_eq!(
            cuts.get(&cut.to_string()).map(String::as_str),
            Some("cut from the centre: a 120 px square at (20, 0) of the 160 × 120 picture")
        );
        assert!(!cuts.contains_key(&whole.to_string()));
        // Dropped with its picture.
        prepared.retain(&HashSet::from([whole]));
        prepared.save(dir.path()).unwrap();
        assert!(super::cuts(dir.path()).is_empty());
    }
}
