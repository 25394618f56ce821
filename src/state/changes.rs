//! The changes file: records changed since `state.json` was last written, so a save costs
//! what changed, not the whole fleet.
//!
//! A batch of outcomes is appended as one JSON line per changed instance
//! (`{"idInstance":"…","record":{…}}`), then `fdatasync`ed. Loading replays the lines over
//! `state.json` in order; each line holds an instance's whole record, so replaying a line
//! twice changes nothing. When the file outgrows `state.json` (and [`FOLD_AT_LEAST`]), the
//! next save writes the whole state to `state.json` and empties it: the cost of a rewrite is
//! spread over at least as many changed records as the state holds. A crash can tear only
//! the last line, which is then dropped (its outcomes are lost as an unsaved batch's are;
//! `calls.journal` still holds their calls' times); a damaged line elsewhere makes the file
//! unreadable.

use super::schema::{InstanceRecord, State};
use crate::manifest::InstanceId;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

pub(crate) use crate::layout::CHANGES_FILE;
/// Changes are folded into `state.json` once they outgrow it, and never below this size.
pub(crate) const FOLD_AT_LEAST: u64 = 4 * 1024 * 1024;
/// The most of a changes file that is read (it is folded long before).
const MAX_CHANGES_BYTES: u64 = 1024 * 1024 * 1024;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LineRef<'a> {
    id_instance: &'a InstanceId,
    record: &'a InstanceRecord,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    id_instance: InstanceId,
    record: InstanceRecord,
}

/// The writer's changes file (opened on first append).
#[derive(Debug)]
pub(crate) struct Changes {
    path: PathBuf,
    file: Option<File>,
    /// Its length: what the next fold compares with the state file's.
    len: u64,
}

impl Changes {
    /// The changes file of state directory `dir`, empty: a writer folds what it finds on
    /// disk into the state file before its first save.
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(CHANGES_FILE),
            file: None,
            len: 0,
        }
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends the records of `ids` as they are in `state`, one line each, and syncs the
    /// file's data: one write, one `fdatasync`.
    pub(crate) fn append<'a>(
        &mut self,
        state: &State,
        ids: impl IntoIterator<Item = &'a InstanceId>,
    ) -> std::io::Result<()> {
        let mut lines = Vec::with_capacity(64 * 1024);
        for id in ids {
            if let Some(record) = state.instances.get(id) {
                let line = LineRef {
                    id_instance: id,
                    record,
                };
                serde_json::to_writer(&mut lines, &line).map_err(std::io::Error::other)?;
                lines.push(b'\n');
            }
        }
        let file = self.file()?;
        file.write_all(&lines)?;
        file.sync_data()?;
        self.len += lines.len() as u64;
        Ok(())
    }

    /// Removes the file: the state file just written holds everything it said.
    pub(crate) fn clear(&mut self) -> std::io::Result<()> {
        self.file = None;
        self.len = 0;
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn file(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            self.file = Some(crate::fsio::open_private_append(&self.path)?);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }
}

/// Replays the changes file of state directory `dir` over `state`, and says how many bytes
/// it held (0 when there is none). A torn last line is dropped; any other line that is not
/// a record makes the whole file unreadable (the error says which line), and `state` is
/// then left as it was.
pub(crate) fn replay(dir: &Path, state: &mut State) -> Result<u64, String> {
    let path = dir.join(CHANGES_FILE);
    let bytes = match crate::fsio::read_regular(&path, MAX_CHANGES_BYTES) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.to_string()),
    };
    let mut records = Vec::new();
    let mut lines = bytes.split(|&b| b == b'\n').enumerate().peekable();
    while let Some((n, line)) = lines.next() {
        let last = lines.peek().is_none_or(|(_, rest)| rest.is_empty());
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Line>(line) {
            Ok(line) => records.push(line),
            // A crash while appending tears the last line only.
            Err(_) if last => {}
            Err(e) => return Err(format!("line {}: {e}", n + 1)),
        }
    }
    for line in records {
        state.instances.insert(line.id_instance, line.record);
    }
    Ok(bytes.len() as u64)
}
