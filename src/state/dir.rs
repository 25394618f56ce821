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
        "the state directory {path} is writable by {who} (mode {mode:03o}, owner {uid}:{gid}); \
         make it private (chmod 700), or give a --state-dir below it (avatar-sync creates it 0700)"
    )]
    Permissions {
        /// The folder.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
        /// Who else may write: "others", or "a group this process is not in".
        who: &'static str,
    },
    /// The folder exists but this process may not create files in it (a volume left
    /// `root:root 0755`, say).
    #[error(
        "the state directory {path} is not writable by this process (uid {me}; the folder is \
         {uid}:{gid}, mode {mode:03o}); make it this user's (chown), or group-writable by one \
         of its groups (Kubernetes: the pod's securityContext.fsGroup)"
    )]
    NotWritable {
        /// The folder.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
        /// This process's effective user.
        me: u32,
    },
    /// The state cannot be reached at all (permission denied; `--state-dir` names a file):
    /// a reader knows nothing, which is not the same as nothing recorded.
    #[error("cannot read the state in {path}: {source}")]
    Read {
        /// The state file.
        path: PathBuf,
        /// The I/O error.
        #[source]
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
            Self::Permissions { .. } => "state-dir-permissions",
            Self::NotWritable { .. } => "state-dir-not-writable",
            Self::Write { .. } => "state-write",
            Self::TooNew { .. } => "state-too-new",
            Self::Read { .. } => "state-unreadable",
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

    /// Refuses a state directory that someone else could change under us (replace the
    /// state, the lock or the prepared pictures): see [`trust`].
    fn check_private(&self) -> Result<(), StateError> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(&self.path).map_err(|source| StateError::CreateDir {
            path: self.path.clone(),
            source,
        })?;
        let me = Identity::of_this_process();
        match trust(meta.mode(), meta.uid(), meta.gid(), &me) {
            Trust::Private | Trust::OwnGroup => Ok(()),
            Trust::Shared(who) => Err(StateError::Permissions {
                path: self.path.clone(),
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                who,
            }),
            Trust::NotWritable => Err(StateError::NotWritable {
                path: self.path.clone(),
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                me: me.uid,
            }),
        }
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
            // A reader (`--status`, `--dry-run`) that cannot reach the state would report
            // every instance pending: an error instead (a writer's lock fails before this).
            Err(source)
                if writer.is_none()
                    && matches!(
                        source.kind(),
                        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::NotADirectory
                    ) =>
            {
                return Err(StateError::Read { path, source });
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
            took_ms = crate::clock::millis(started.elapsed()),
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

/// Who this process is, for the state directory's rule: its effective user and every
/// group it has (effective and supplementary).
#[derive(Debug)]
pub(crate) struct Identity {
    uid: u32,
    groups: Vec<u32>,
}

impl Identity {
    /// Read from `/proc/self/status` (no call needs `unsafe`). Unreadable, it is a user and
    /// groups no folder has, so nothing is trusted for a group's sake.
    fn of_this_process() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        Self::from_status(&status)
    }

    /// From the text of `/proc/<pid>/status`: `Uid:` and `Gid:` list real, effective, saved
    /// and file-system ids; `Groups:` the supplementary ones.
    fn from_status(status: &str) -> Self {
        let ids = |key: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .map(|rest| {
                    rest.split_whitespace()
                        .filter_map(|id| id.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut groups = ids("Groups:");
        // The effective group (second of four).
        groups.extend(ids("Gid:").get(1));
        Self {
            uid: ids("Uid:").get(1).copied().unwrap_or(u32::MAX),
            groups,
        }
    }
}

/// What a state directory's owner and mode mean for this process.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Trust {
    /// Only its owner (this process's user, or root) may write to it.
    Private,
    /// Group-writable, by a group of this process, and owned by it or root: a folder made
    /// for it, as kubelet makes a volume's root with `fsGroup` (`root:65532`, mode 2775).
    OwnGroup,
    /// Someone else may write to it: refused.
    Shared(&'static str),
    /// No one else may write to it, but neither may this process.
    NotWritable,
}

/// The state directory's rule. The state, the lock and the prepared uploads are trusted
/// only in a folder no one else can change: write by others is refused, even with the
/// sticky bit (a local-path volume's `1777` root: give a `--state-dir` below it, which
/// avatar-sync creates 0700); write by a group is accepted only for a group of this
/// process, on a folder owned by this user or root (kubelet's `fsGroup`: every member of
/// that group is the pod itself).
pub(crate) fn trust(mode: u32, uid: u32, gid: u32, me: &Identity) -> Trust {
    let owner_ok = uid == me.uid || uid == 0;
    let in_group = me.groups.contains(&gid);
    if mode & 0o002 != 0 {
        return Trust::Shared("others");
    }
    if mode & 0o020 != 0 {
        if !in_group {
            return Trust::Shared("a group this process is not in");
        }
        if !owner_ok {
            return Trust::Shared("another user, who may change its mode");
        }
        return Trust::OwnGroup;
    }
    let writable = me.uid == 0 || (uid == me.uid && mode & 0o200 != 0);
    if writable {
        Trust::Private
    } else {
        Trust::NotWritable
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

#[cfg(test)]
mod tests {
    //! The state directory's rule ([`trust`]) for the folders volumes come as, and the
    //! errors a writer gets on a real folder.
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// User 65532 in group 65532, as the image and the StatefulSet run it (kubelet adds the
    /// pod's fsGroup to the supplementary groups).
    fn nonroot() -> Identity {
        Identity::from_status(
            "Name:\tavatar-sync\nUid:\t65532\t65532\t65532\t65532\nGid:\t65532\t65532\t65532\t65532\nGroups:\t65532 \n",
        )
    }

    #[test]
    fn the_process_identity_is_read_from_its_status() {
        let me = Identity::from_status(
            "Uid:\t1000\t1001\t1001\t1001\nGid:\t100\t200\t200\t200\nGroups:\t4 27 \n",
        );
        assert_eq!(me.uid, 1001, "the effective user");
        let mut groups = me.groups.clone();
        groups.sort_unstable();
        assert_eq!(groups, [4, 27, 200]);
        // Unreadable: nobody, in no group.
        let nobody = Identity::from_status("");
        assert_eq!((nobody.uid, nobody.groups.len()), (u32::MAX, 0));
        // This process: the same user that owns what it creates.
        use std::os::unix::fs::MetadataExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let meta = tmp.path().metadata().unwrap();
        let me = Identity::of_this_process();
        assert_eq!(me.uid, meta.uid());
        assert!(me.groups.contains(&meta.gid()), "{me:?} {}", meta.gid());
    }

    #[test]
    fn volumes_as_kubelet_and_podman_make_them() {
        let me = nonroot();
        // kubelet with fsGroup: 65532 and fsGroupChangePolicy: the root is root:65532 2775.
        assert_eq!(trust(0o42775, 0, 65532, &me), Trust::OwnGroup);
        // A podman named volume copies the image's folder: 65532:65532 0700.
        assert_eq!(trust(0o40700, 65532, 65532, &me), Trust::Private);
        // What avatar-sync creates below a shared root: its own 0700 (setgid inherited).
        assert_eq!(trust(0o42700, 65532, 65532, &me), Trust::Private);
        // Storage without ownership management: root:root 0755, nobody but root writes.
        assert_eq!(trust(0o40755, 0, 0, &me), Trust::NotWritable);
        // local-path's world-writable root, sticky or not: others may write.
        assert_eq!(trust(0o41777, 0, 0, &me), Trust::Shared("others"));
        assert_eq!(trust(0o40777, 65532, 65532, &me), Trust::Shared("others"));
    }

    #[test]
    fn group_write_is_trusted_only_for_a_group_of_this_process_on_a_folder_of_its_own_or_roots() {
        let me = nonroot();
        assert_eq!(
            trust(0o40770, 65532, 100, &me),
            Trust::Shared("a group this process is not in")
        );
        assert_eq!(
            trust(0o40770, 1000, 65532, &me),
            Trust::Shared("another user, who may change its mode")
        );
        assert_eq!(trust(0o40770, 65532, 65532, &me), Trust::OwnGroup);
        // Readable by all, writable by its owner only: private, if the owner is us.
        assert_eq!(trust(0o40755, 65532, 65532, &me), Trust::Private);
        assert_eq!(trust(0o40755, 1000, 1000, &me), Trust::NotWritable);
        assert_eq!(trust(0o40500, 65532, 65532, &me), Trust::NotWritable);
        // Root writes anywhere, but trusts group write only for its own groups too.
        let root = Identity::from_status("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t0\n");
        assert_eq!(trust(0o40755, 1000, 1000, &root), Trust::Private);
        assert_eq!(
            trust(0o42775, 0, 65532, &root),
            Trust::Shared("a group this process is not in")
        );
    }

    #[test]
    fn a_folder_writable_by_this_process_group_is_locked_and_one_writable_by_others_is_refused_naming_the_fix()
     {
        use std::os::unix::fs::MetadataExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path().join("state"));
        std::fs::create_dir(dir.path()).unwrap();
        // Created with this process's group: group write is for us.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o2775)).unwrap();
        drop(dir.lock("group").unwrap());

        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = dir.lock("sticky").unwrap_err();
        assert_eq!(err.label(), "state-dir-permissions");
        let meta = dir.path().metadata().unwrap();
        let message = err.to_string();
        for part in [
            "writable by others".to_owned(),
            "mode 1777".to_owned(),
            format!("owner {}:{}", meta.uid(), meta.gid()),
            "--state-dir below it".to_owned(),
            "chmod 700".to_owned(),
        ] {
            assert!(message.contains(&part), "{part:?} not in {message}");
        }
        // A --state-dir below it is created 0700 and trusted.
        let below = StateDir::new(dir.path().join("state"));
        drop(below.lock("below").unwrap());
        assert_eq!(below.path().metadata().unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn a_folder_this_process_cannot_write_says_whose_it_is_and_what_to_do() {
        let err = StateError::NotWritable {
            path: "/var/lib/avatar-sync".into(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            me: 65532,
        };
        assert_eq!(err.label(), "state-dir-not-writable");
        assert_eq!(
            err.to_string(),
            "the state directory /var/lib/avatar-sync is not writable by this process (uid \
             65532; the folder is 0:0, mode 755); make it this user's (chown), or \
             group-writable by one of its groups (Kubernetes: the pod's securityContext.fsGroup)"
        );
    }
}
