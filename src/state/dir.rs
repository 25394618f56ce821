//! The state directory on disk: its lock (one writer at a time, naming itself), reading the
//! state file (an unreadable one is moved aside by the writer), and atomic saves.

use super::changes::{self, CHANGES_FILE};
use super::schema::{self, DocumentRef, ParseError, SCHEMA_VERSION, State};
use crate::clock::rfc3339;
use crate::fsio;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub(crate) use crate::layout::{LOCK_FILE, STATE_FILE};

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
    /// Other users could write to the folder, so its state and lock cannot be trusted.
    #[error(
        "the state directory {path} is writable by group or others (mode {mode:03o}); \
         make it private (chmod 700) or give another --state-dir"
    )]
    Permissions {
        /// The folder.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
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
            Self::Permissions { .. } => "state-dir-permissions",
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
    /// Whether the writer should write the whole state now: there are changes to fold in
    /// (perhaps with a torn last line), or the file is of an older format version.
    pub needs_fold: bool,
    /// The size of the state file read, in bytes (0 when there was none).
    pub state_len: u64,
}

impl From<State> for Loaded {
    /// A state as if read from a state file just written.
    fn from(state: State) -> Self {
        Self {
            state,
            unreadable: None,
            needs_fold: false,
            state_len: 0,
        }
    }
}

impl Loaded {
    /// The state; an unreadable file is reported loudly (naming where it went) and work
    /// goes on from empty state.
    pub(crate) fn take(self, dir: &StateDir) -> State {
        if let Some(unreadable) = self.unreadable {
            match unreadable.moved_to {
                Some(aside) => tracing::error!(
                    "the state file {} could not be read ({}); it was moved to {} and work goes \
                     on from empty state (pictures may be sent once more)",
                    dir.state_file().display(),
                    unreadable.reason,
                    aside.display()
                ),
                None => tracing::error!(
                    "the state file {} could not be read ({}); showing what empty state would mean",
                    dir.state_file().display(),
                    unreadable.reason
                ),
            }
        }
        self.state
    }
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
        fsio::create_private_dir(&self.path).map_err(|source| StateError::CreateDir {
            path: self.path.clone(),
            source,
        })?;
        self.check_private()?;
        let lock_path = self.path.join(LOCK_FILE);
        let lock_error = |source| StateError::Lock {
            path: lock_path.clone(),
            source,
        };
        // Never through a symlink (its target would be truncated and written), never a
        // FIFO or device (opening one could block): only a regular file of our own.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&lock_path)
            .map_err(lock_error)?;
        if !file.metadata().map_err(lock_error)?.is_file() {
            return Err(lock_error(std::io::Error::other("not a regular file")));
        }
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

    /// Refuses a state directory that group or others may write to: they could replace
    /// the state, the lock or the prepared pictures under us.
    fn check_private(&self) -> Result<(), StateError> {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(&self.path).map_err(|source| StateError::CreateDir {
            path: self.path.clone(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(StateError::Permissions {
                path: self.path.clone(),
                mode,
            });
        }
        Ok(())
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
        let started = std::time::Instant::now();
        let path = self.state_file();
        let mut loaded = Loaded::from(State::default());
        let unreadable = match std::fs::read(&path) {
            Ok(bytes) => match schema::parse(&bytes) {
                Ok((state, version)) => {
                    loaded.state = state;
                    loaded.state_len = bytes.len() as u64;
                    loaded.needs_fold = version < SCHEMA_VERSION;
                    None
                }
                Err(ParseError::TooNew(found)) => return Err(StateError::TooNew { path, found }),
                Err(ParseError::Invalid(reason)) => Some((STATE_FILE, reason)),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // The writer's first save writes a state file, not changes without one.
                loaded.needs_fold = true;
                None
            }
            Err(e) => Some((STATE_FILE, e.to_string())),
        };
        // The changes are replayed over a readable state file only: over an unreadable
        // one they would make a state that never was.
        let unreadable = match unreadable {
            Some(damage) => Some(damage),
            None => match changes::replay(&self.path, &mut loaded.state) {
                Ok(len) => {
                    loaded.needs_fold |= len > 0;
                    None
                }
                Err(reason) => Some((CHANGES_FILE, reason)),
            },
        };
        if let Some((file, reason)) = unreadable {
            let moved_to = match writer {
                Some(_) => Some(self.move_aside(file)?),
                None => None,
            };
            if file == STATE_FILE {
                loaded.state = State::default();
                if writer.is_some() {
                    // Changes to a state moved aside belong with it.
                    if self.path.join(CHANGES_FILE).exists() {
                        self.move_aside(CHANGES_FILE)?;
                    }
                }
            }
            loaded.needs_fold = writer.is_some();
            loaded.unreadable = Some(Unreadable {
                reason: format!("{file}: {reason}"),
                moved_to,
            });
        }
        super::journal::merge(&self.path, &mut loaded.state);
        tracing::debug!(
            records = loaded.state.instances.len(),
            took_ms = started.elapsed().as_secs_f64() * 1000.0,
            "state loaded"
        );
        Ok(loaded)
    }

    /// Moves `file` of the state directory aside as `<file>.unreadable-<time>`, never
    /// deleting it.
    fn move_aside(&self, file: &str) -> Result<PathBuf, StateError> {
        let aside = self.path.join(format!(
            "{file}.unreadable-{}",
            rfc3339(SystemTime::now()).replace(':', "")
        ));
        std::fs::rename(self.path.join(file), &aside).map_err(|source| StateError::Write {
            path: aside.clone(),
            source,
        })?;
        Ok(aside)
    }

    /// Replaces the state file atomically: temporary file (0600) in the same folder,
    /// fsync, rename over, fsync the folder. Returns the file's size. The changes file is
    /// the caller's to empty afterwards.
    pub fn save(&self, _lock: &StateLock, state: &State) -> Result<u64, StateError> {
        let doc = DocumentRef::new(state);
        // Streamed to the file: a 10,000-instance document is megabytes, and a buffer that
        // size on every save would stay in the allocator's hands.
        let path = self.state_file();
        let mut len = 0;
        fsio::write_atomically(&path, &mut |out| {
            let mut counted = Counted { out, len: 0 };
            serde_json::to_writer(&mut counted, &doc).map_err(std::io::Error::other)?;
            counted.write_all(b"\n")?;
            len = counted.len;
            Ok(())
        })
        .map_err(|source| StateError::Write { path, source })?;
        Ok(len)
    }
}

/// A writer that counts what goes through it.
struct Counted<'a> {
    out: &'a mut dyn Write,
    len: u64,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
