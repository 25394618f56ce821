//! The calls journal: which instances had a call started, and which pictures were refused,
//! since the state was last saved.
//!
//! The state is saved in batches, a few times a second, and a call can be in flight for up
//! to [`ANSWER_DEADLINE`]. A process killed meanwhile (SIGKILL, OOM) would forget that it
//! called, and its successor could call the same instance again at once, closer than
//! `minInterval` to an answer still coming. So before a call starts, one line naming the
//! instance and the time is appended here; a successful state save empties the file (the
//! state then holds the same facts as `callStartedAt`); loading the state merges what is
//! left. A refusal of a picture (`refused-bytes`) is appended as soon as it lands, so that
//! the same bytes are never sent again even by a successor. Appends are not fsynced: they
//! only have to outlive the process, and a power loss costs a reboot, which is longer than
//! any wait they guard.
//!
//! Lines are `<idInstance> <milliseconds since the epoch>` (a call started) and
//! `<idInstance> refused <sha256>`; a damaged or torn line is ignored.

use super::schema::State;
use crate::manifest::InstanceId;
use crate::picture::Digest;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[cfg(doc)]
use crate::outcome::ANSWER_DEADLINE;

pub(crate) use crate::layout::JOURNAL_FILE;
/// The most of a journal that is read: far more than any run's calls between two saves.
const MAX_JOURNAL_BYTES: u64 = 64 * 1024 * 1024;

/// The writer's journal (opened on first use).
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: Option<File>,
}

impl Journal {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(JOURNAL_FILE),
            file: None,
        }
    }

    /// Records that calls of `ids` start at `at`: one append.
    pub(crate) fn started(&mut self, ids: &[InstanceId], at: SystemTime) -> std::io::Result<()> {
        let millis = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let mut lines = String::with_capacity(ids.len() * 32);
        for id in ids {
            lines.push_str(&format!("{id} {millis}\n"));
        }
        self.file()?.write_all(lines.as_bytes())
    }

    /// Records that the gateway refused `digest` for `id`: one append.
    pub(crate) fn refused(&mut self, id: &InstanceId, digest: Digest) -> std::io::Result<()> {
        self.file()?
            .write_all(format!("{id} refused {digest}\n").as_bytes())
    }

    /// Empties the journal: the state just saved holds everything it said.
    pub(crate) fn clear(&mut self) -> std::io::Result<()> {
        match &self.file {
            Some(file) => file.set_len(0),
            None => match std::fs::metadata(&self.path) {
                Ok(_) => self.file()?.set_len(0),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            },
        }
    }

    fn file(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            self.file = Some(crate::fsio::open_private_append(&self.path)?);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }
}

/// Merges the journal of the state directory `dir` into `state`: an instance with a call
/// started after its last recorded answer gets `callStartedAt`. A missing or unreadable
/// journal merges nothing (a damaged one is logged).
pub(crate) fn merge(dir: &Path, state: &mut State) {
    let path = dir.join(JOURNAL_FILE);
    let bytes = match crate::fsio::read_regular(&path, MAX_JOURNAL_BYTES) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::warn!("cannot read the calls journal {}: {e}", path.display());
            return;
        }
    };
    for line in String::from_utf8_lossy(&bytes).lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let Some(Ok(id)) = words.first().map(|id| InstanceId::parse(id)) else {
            continue;
        };
        match words[1..] {
            [millis] => {
                let Some(at) = (millis.parse::<u64>().ok())
                    .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
                else {
                    continue;
                };
                let record = state.instances.entry(id).or_default();
                if record.last_call_at.is_none_or(|answered| answered < at) {
                    record.call_started_at = record.call_started_at.max(Some(at));
                }
            }
            ["refused", sha] => {
                if let Ok(digest) = sha.parse::<Digest>() {
                    state
                        .instances
                        .entry(id)
                        .or_default()
                        .remember_refused(digest);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::InstanceRecord;

    fn id(text: &str) -> InstanceId {
        InstanceId::parse(text).unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn started_calls_outlive_the_process_until_a_save_clears_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::new(dir.path());
        journal.started(&[id("1"), id("2")], at(1_000)).unwrap();
        journal.started(&[id("1")], at(2_000)).unwrap();
        drop(journal); // as a SIGKILL would

        let mut state = State::default();
        state.instances.insert(
            id("2"),
            InstanceRecord {
                last_call_at: Some(at(1_500)), // its answer was saved
                ..InstanceRecord::default()
            },
        );
        merge(dir.path(), &mut state);
        assert_eq!(state.instances[&id("1")].call_started_at, Some(at(2_000)));
        assert_eq!(state.instances[&id("2")].call_started_at, None);

        let mut journal = Journal::new(dir.path());
        journal.clear().unwrap();
        let mut empty = State::default();
        merge(dir.path(), &mut empty);
        assert!(empty.instances.is_empty());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join(JOURNAL_FILE))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_torn_or_damaged_journal_merges_what_it_can() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(JOURNAL_FILE),
            format!(
                "7 1000\nnot a line\nx 5\n8 99999999999999999999\n9 refused {}\n9 12\n9 refused ab",
                Digest::of(b"refused")
            ),
        )
        .unwrap();
        let mut state = State::default();
        merge(dir.path(), &mut state);
        assert_eq!(state.instances[&id("7")].call_started_at, Some(at(1)));
        assert_eq!(
            state.instances[&id("9")].call_started_at,
            Some(at(0) + Duration::from_millis(12))
        );
        assert_eq!(
            state.instances[&id("9")].refused_sha256,
            [Digest::of(b"refused")]
        );
        assert_eq!(state.instances.len(), 2);
    }
}
