//! The state directory: what was applied, when each instance was last called, the backoff
//! in force; loaded at start, saved atomically, guarded by a lock so there is one writer.
//!
//! Layout: `state.json` (the versioned document, mode 0600) and `lock` (held with
//! `File::try_lock` by the writer, and naming it). The format is documented in
//! `docs/state.md`. Saves replace the whole file through a temporary file in the same
//! folder (write, fsync, rename, fsync the folder), so a crash at any moment leaves either
//! the old or the new file. [`StateStore`] batches saves to a few a second.

use crate::clock::{rfc3339, serde_rfc3339, serde_rfc3339_opt};
use crate::gateway::FailureKind;
use crate::hashes::Hashes;
use crate::manifest::InstanceId;
use crate::picture::Digest;
use crate::prepared::Prepared;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// The state document's format version. Bump on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;
/// The state document's file name inside the state directory.
pub const STATE_FILE: &str = "state.json";
/// The lock file's name inside the state directory.
pub const LOCK_FILE: &str = "lock";
/// Least time between two saves while outcomes keep landing.
pub const SAVE_INTERVAL: Duration = Duration::from_millis(250);
/// How many refused pictures to remember per instance.
const MAX_REFUSED: usize = 8;

/// Everything recorded, per instance.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    /// Per-instance records, by `idInstance`.
    pub instances: BTreeMap<InstanceId, InstanceRecord>,
}

/// What is recorded for one instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRecord {
    /// The last picture GREEN-API confirmed (`"setProfilePicture": true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Applied>,
    /// When the last call's answer arrived (or it failed): the throttle counts from here.
    #[serde(default, with = "serde_rfc3339_opt")]
    pub last_call_at: Option<SystemTime>,
    /// The failure in force, with its backoff; cleared by a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Pictures the gateway refused (400 `File is empty` / `Unsupported media type`):
    /// never sent again. The most recent few are kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_sha256: Vec<Digest>,
}

/// A confirmed picture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// SHA-256 of the bytes GREEN-API confirmed.
    pub sha256: Digest,
    /// When the confirmation arrived.
    #[serde(with = "serde_rfc3339")]
    pub at: SystemTime,
    /// The `urlAvatar` GREEN-API answered.
    pub url_avatar: Option<String>,
}

/// The failure in force for an instance, and its backoff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// What kind of failure (the gateway's label).
    pub kind: FailureKind,
    /// One line for people.
    pub reason: String,
    /// Consecutive failures so far (1 after the first).
    pub consecutive: u32,
    /// Not before this time.
    #[serde(with = "serde_rfc3339")]
    pub next_attempt_at: SystemTime,
    /// The picture that was being sent.
    pub sha256: Digest,
    /// A short, one-way fingerprint of the apiUrl and token that failed, so a changed
    /// token or host is retried at once. The token cannot be recovered from it.
    pub credentials: String,
}

impl InstanceRecord {
    /// Remembers that `digest` was refused by the gateway.
    pub fn remember_refused(&mut self, digest: Digest) {
        if !self.refused_sha256.contains(&digest) {
            self.refused_sha256.push(digest);
        }
        let excess = self.refused_sha256.len().saturating_sub(MAX_REFUSED);
        self.refused_sha256.drain(..excess);
    }
}

#[derive(Serialize)]
struct DocumentRef<'a> {
    version: u32,
    instances: &'a BTreeMap<InstanceId, InstanceRecord>,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

#[derive(Deserialize)]
struct Document {
    version: u32,
    instances: BTreeMap<InstanceId, InstanceRecord>,
}

/// Trouble with the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The folder could not be created.
    #[error("cannot create the state directory {path}: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another process holds the lock.
    #[error(
        "the state directory {dir} is in use by another avatar-sync ({holder}); \
         stop it first, or give this one another --state-dir"
    )]
    Locked {
        /// The folder.
        dir: PathBuf,
        /// Who holds it, as it wrote in the lock file.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file could not be written.
    #[error("cannot save the state file {path}: {source}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file was written by a newer avatar-sync.
    #[error(
        "the state file {path} has format version {found}, newer than this avatar-sync \
         understands ({SCHEMA_VERSION}); upgrade avatar-sync (the file was left as it is)"
    )]
    TooNew {
        /// The state file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
}

impl StateError {
    /// A stable machine label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::CreateDir { .. } => "state-dir",
            Self::Locked { .. } => "state-locked",
            Self::Lock { .. } => "state-lock",
            Self::Write { .. } => "state-write",
            Self::TooNew { .. } => "state-too-new",
        }
    }
}

/// The state file could not be read and work goes on from empty state.
#[derive(Debug)]
pub struct Unreadable {
    /// Why it could not be read.
    pub reason: String,
    /// Where it was moved (only a writer moves it).
    pub moved_to: Option<PathBuf>,
}

/// The state as loaded, and whether the file on disk was unusable.
#[derive(Debug)]
pub struct Loaded {
    /// The state (empty when there was none or it was unreadable).
    pub state: State,
    /// Set when the file existed but could not be read.
    pub unreadable: Option<Unreadable>,
}

/// A state directory on disk.
#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
}

/// Proof that this process is the one writer of a state directory. Released on drop.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    dir: PathBuf,
}

impl StateDir {
    /// The state directory at `path` (not touched until used).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state file's path.
    pub fn state_file(&self) -> PathBuf {
        self.path.join(STATE_FILE)
    }

    /// Becomes the one writer: creates the folder (mode 0700) if needed and takes the lock,
    /// or says at once who holds it. `purpose` is written into the lock file for others to read.
    pub fn lock(&self, purpose: &str) -> Result<StateLock, StateError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .map_err(|source| StateError::CreateDir {
                path: self.path.clone(),
                source,
            })?;
        let lock_path = self.path.join(LOCK_FILE);
        let lock_error = |source| StateError::Lock {
            path: lock_path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(lock_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StateError::Locked {
                    dir: self.path.clone(),
                    holder: if holder.is_empty() {
                        "a process that has not said who it is".to_owned()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_error(e)),
        }
        let who = format!(
            "pid {}, {purpose}, since {}",
            std::process::id(),
            rfc3339(SystemTime::now())
        );
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(who.as_bytes()))
            .map_err(lock_error)?;
        Ok(StateLock {
            _file: file,
            dir: self.path.clone(),
        })
    }

    /// Reads the state without changing anything (for `--dry-run` and `--status`).
    pub fn load(&self) -> Result<Loaded, StateError> {
        self.read(None)
    }

    /// Reads the state as its writer: an unreadable file is moved aside, not deleted.
    pub fn load_for_write(&self, lock: &StateLock) -> Result<Loaded, StateError> {
        debug_assert_eq!(lock.dir, self.path);
        self.read(Some(lock))
    }

    fn read(&self, writer: Option<&StateLock>) -> Result<Loaded, StateError> {
        let path = self.state_file();
        let reason = match std::fs::read(&path) {
            Ok(bytes) => match parse(&bytes) {
                Ok(state) => {
                    return Ok(Loaded {
                        state,
                        unreadable: None,
                    });
                }
                Err(ParseError::TooNew(found)) => return Err(StateError::TooNew { path, found }),
                Err(ParseError::Invalid(reason)) => reason,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Loaded {
                    state: State::default(),
                    unreadable: None,
                });
            }
            Err(e) => e.to_string(),
        };
        let moved_to = match writer {
            Some(_) => {
                let aside = self.path.join(format!(
                    "{STATE_FILE}.unreadable-{}",
                    rfc3339(SystemTime::now()).replace(':', "")
                ));
                std::fs::rename(&path, &aside).map_err(|source| StateError::Write {
                    path: aside.clone(),
                    source,
                })?;
                Some(aside)
            }
            None => None,
        };
        Ok(Loaded {
            state: State::default(),
            unreadable: Some(Unreadable { reason, moved_to }),
        })
    }

    /// Replaces the state file atomically: temporary file (0600) in the same folder,
    /// fsync, rename over, fsync the folder.
    pub fn save(&self, lock: &StateLock, state: &State) -> Result<(), StateError> {
        let doc = DocumentRef {
            version: SCHEMA_VERSION,
            instances: &state.instances,
        };
        // Streamed to the file: a 10,000-instance document is megabytes, and a buffer that
        // size on every save would stay in the allocator's hands.
        self.write_atomically_with(lock, STATE_FILE, &mut |out| {
            serde_json::to_writer_pretty(&mut *out, &doc).map_err(std::io::Error::other)?;
            out.write_all(b"\n")
        })
    }

    /// Replaces the file `name` in the state directory with `bytes`, atomically: a
    /// temporary file (0600) beside it, fsync, rename over, fsync the folder. Only the
    /// lock holder writes.
    pub fn write_atomically(
        &self,
        lock: &StateLock,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), StateError> {
        self.write_atomically_with(lock, name, &mut |out| out.write_all(bytes))
    }

    /// As [`StateDir::write_atomically`], with the content written by `write`.
    fn write_atomically_with(
        &self,
        _lock: &StateLock,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), StateError> {
        let path = self.path.join(name);
        let file_name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = path.with_file_name(format!(".{file_name}.tmp"));
        let write_error = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(write_error)?;
        }
        // A leftover temporary file (from a crash, or put there by someone else) could carry
        // a wider mode into the new file: start from a fresh one.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(write_error(e)),
            _ => {}
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(write_error)?;
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, &mut file);
        write(&mut out)
            .and_then(|()| out.flush())
            .map_err(write_error)?;
        drop(out);
        file.sync_all().map_err(write_error)?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(write_error)?;
        File::open(path.parent().unwrap_or(&self.path))
            .and_then(|dir| dir.sync_all())
            .map_err(write_error)?;
        Ok(())
    }
}

enum ParseError {
    TooNew(u32),
    Invalid(String),
}

fn parse(bytes: &[u8]) -> Result<State, ParseError> {
    let check_version = |version: u32| match version {
        v if v > SCHEMA_VERSION => Err(ParseError::TooNew(v)),
        0 => Err(ParseError::Invalid("unknown format version 0".to_owned())),
        _ => Ok(()),
    };
    // One pass over the (possibly large) document in the common case; a document this
    // version cannot read is looked at again only to tell a newer format from damage.
    match serde_json::from_slice::<Document>(bytes) {
        Ok(doc) => {
            check_version(doc.version)?;
            Ok(State {
                instances: doc.instances,
            })
        }
        Err(e) => {
            if let Ok(only) = serde_json::from_slice::<VersionOnly>(bytes) {
                check_version(only.version)?;
            }
            Err(ParseError::Invalid(format!(
                "not a valid state document: {e}"
            )))
        }
    }
}

/// The writer's view of the state: holds the lock and the state, and saves changes in
/// batches (at most one save per [`SAVE_INTERVAL`] while outcomes keep landing).
#[derive(Debug)]
pub struct StateStore {
    dir: StateDir,
    lock: StateLock,
    state: State,
    hashes: Hashes,
    prepared: Prepared,
    dirty: bool,
    last_save: Option<Instant>,
}

impl StateStore {
    /// Wraps a locked directory and its loaded state.
    pub fn new(dir: StateDir, lock: StateLock, state: State) -> Self {
        let hashes = Hashes::load(&dir);
        let prepared = Prepared::writer(&dir);
        Self {
            dir,
            lock,
            state,
            hashes,
            prepared,
            dirty: false,
            last_save: None,
        }
    }

    /// The state as it stands in memory.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The state, and the caches to compute desired pictures against it.
    pub fn for_pass(&mut self) -> (&State, &mut Hashes, &mut Prepared) {
        (&self.state, &mut self.hashes, &mut self.prepared)
    }

    /// Where the prepared picture `digest` is kept.
    pub fn prepared_path(&self, digest: Digest) -> PathBuf {
        crate::prepared::path_in(&self.dir, digest)
    }

    /// Saves the picture caches if they changed (once per pass).
    pub fn save_caches(&mut self) -> Result<(), StateError> {
        self.hashes.save(&self.dir, &self.lock)?;
        self.prepared.save(&self.dir, &self.lock)
    }

    /// Replaces an instance's record; it reaches disk with the next save.
    pub fn set(&mut self, id: InstanceId, record: InstanceRecord) {
        self.state.instances.insert(id, record);
        self.dirty = true;
    }

    /// When the next batched save is due, if anything is waiting to be saved.
    pub fn save_due_at(&self) -> Option<Instant> {
        self.dirty.then(|| {
            self.last_save
                .map_or_else(Instant::now, |at| at + SAVE_INTERVAL)
        })
    }

    /// Saves if something changed and the last save is at least [`SAVE_INTERVAL`] old.
    pub fn save_if_due(&mut self) -> Result<(), StateError> {
        match self.save_due_at() {
            Some(at) if at <= Instant::now() => self.save(),
            _ => Ok(()),
        }
    }

    /// Saves now if anything changed.
    pub fn save(&mut self) -> Result<(), StateError> {
        if self.dirty {
            self.dir.save(&self.lock, &self.state)?;
            self.dirty = false;
            self.last_save = Some(Instant::now());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
