//! The outbox: messages for the receivers of `notify:`, kept in the state directory from
//! the moment they are decided until a receiver answered 2xx, so a crash or a restart loses
//! none. Each message is one file in `outbox/`, named by its sequence number (so the
//! oldest is first), written as every state file is ([`crate::fsio::write_atomically`]:
//! a temporary file, fsync, rename, fsync the folder) before anything is sent; delivered,
//! it is removed. Beside it, `notified.json` records what each receiver was told (keys,
//! not text), written the same way after the messages it covers, so that a message found
//! in the outbox at start counts as told even if the record missed it.
//!
//! Bounded: at most [`MAX_QUEUED`] messages wait; a new one beyond that drops the oldest
//! (counted by the caller), so a receiver that is down for days costs a fixed amount of
//! disk, never unbounded growth.

pub(crate) use crate::layout::{OUTBOX_FOLDER, TOLD_FILE};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The most messages the outbox holds.
pub(crate) const MAX_QUEUED: usize = 1000;
/// The largest message file read back (a body is a few hundred bytes).
const MAX_MESSAGE_BYTES: u64 = 64 * 1024;
/// The largest record of what was told read back.
const MAX_TOLD_BYTES: u64 = 64 * 1024 * 1024;

/// One message waiting for its receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Queued {
    /// The receiver's key (a hash of its URL, never the URL).
    pub receiver: String,
    /// The message's id (a hash of its key).
    pub id: String,
    /// The instance it is about.
    pub instance: String,
    /// The body's `event`.
    pub event: String,
    /// The desired picture's SHA-256.
    pub desired: String,
    /// The body, exactly as it is sent (and signed).
    pub body: String,
}

/// The outbox folder of one state directory, and the messages in it by sequence number.
#[derive(Debug)]
pub(crate) struct Outbox {
    dir: PathBuf,
    told_file: PathBuf,
    queued: BTreeMap<u64, Queued>,
    next: u64,
}

impl Outbox {
    /// Opens the outbox of the state directory `state_dir` (the writer's: its lock is
    /// held), reading back what a previous process left. A damaged message file is moved aside (`.damaged`) and logged.
    pub(crate) fn open(state_dir: &Path) -> std::io::Result<Self> {
        let dir = state_dir.join(OUTBOX_FOLDER);
        let mut queued = BTreeMap::new();
        // Made with the first message: a fleet that notifies no one has no outbox.
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.collect::<Vec<_>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            let Some(seq) = (path.file_name().and_then(|n| n.to_str()))
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue; // a temporary file of a write cut short, or something else
            };
            let read = crate::fsio::read_regular(&path, MAX_MESSAGE_BYTES)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Queued>(&b).map_err(|e| e.to_string()));
            match read {
                Ok(message) => {
                    queued.insert(seq, message);
                }
                Err(e) => {
                    let aside = path.with_extension("damaged");
                    tracing::error!(
                        "outbox message {} is damaged ({e}); moved to {}",
                        path.display(),
                        aside.display()
                    );
                    let _ = std::fs::rename(&path, &aside);
                }
            }
        }
        let next = queued.keys().next_back().map_or(0, |last| last + 1);
        Ok(Self {
            dir,
            told_file: state_dir.join(TOLD_FILE),
            queued,
            next,
        })
    }

    /// Writes `message` durably and queues it; returns its sequence number and the oldest
    /// messages dropped to stay within [`MAX_QUEUED`].
    pub(crate) fn put(&mut self, message: Queued) -> std::io::Result<(u64, Vec<Queued>)> {
        let seq = self.next;
        let bytes = serde_json::to_vec(&message).map_err(std::io::Error::other)?;
        crate::fsio::write_bytes_atomically(&self.path(seq), &bytes)?;
        self.next += 1;
        self.queued.insert(seq, message);
        let mut dropped = Vec::new();
        while self.queued.len() > MAX_QUEUED {
            let Some((&oldest, _)) = self.queued.first_key_value() else {
                break;
            };
            if let Some(message) = self.take(oldest)? {
                dropped.push(message);
            }
        }
        Ok((seq, dropped))
    }

    /// Forgets message `seq` (delivered, or dropped) and removes its file.
    pub(crate) fn take(&mut self, seq: u64) -> std::io::Result<Option<Queued>> {
        let message = self.queued.remove(&seq);
        match std::fs::remove_file(self.path(seq)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(message),
        }
    }

    /// The messages waiting, oldest first.
    pub(crate) fn queued(&self) -> impl Iterator<Item = (u64, &Queued)> {
        self.queued.iter().map(|(&seq, m)| (seq, m))
    }

    /// How many messages wait.
    pub(crate) fn len(&self) -> usize {
        self.queued.len()
    }

    /// The saved record of what was told, if any.
    pub(crate) fn read_told(&self) -> Option<Vec<u8>> {
        crate::fsio::read_regular(&self.told_file, MAX_TOLD_BYTES).ok()
    }

    /// Saves the record of what was told, atomically.
    pub(crate) fn write_told(&self, bytes: &[u8]) -> std::io::Result<()> {
        crate::fsio::write_bytes_atomically(&self.told_file, bytes)
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u32) -> Queued {
        Queued {
            receiver: "r".to_owned(),
            id: format!("m{n}"),
            instance: "1".to_owned(),
            event: "failed".to_owned(),
            desired: "d".to_owned(),
            body: format!("{{\"n\":{n}}}"),
        }
    }

    #[test]
    fn messages_outlive_the_process_until_taken_and_the_oldest_go_first_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        let (first, _) = outbox.put(message(0)).unwrap();
        outbox.put(message(1)).unwrap();
        drop(outbox); // as a SIGKILL would

        let mut outbox = Outbox::open(dir.path()).unwrap();
        let ids: Vec<&str> = outbox.queued().map(|(_, m)| m.id.as_str()).collect();
        assert_eq!(ids, ["m0", "m1"]);
        assert_eq!(outbox.take(first).unwrap(), Some(message(0)));
        let mut dropped = Vec::new();
        for n in 2..(MAX_QUEUED as u32 + 3) {
            dropped.extend(outbox.put(message(n)).unwrap().1);
        }
        assert_eq!(outbox.len(), MAX_QUEUED);
        let dropped: Vec<String> = dropped.into_iter().map(|m| m.id).collect();
        assert_eq!(dropped, ["m1", "m2"]);
        let files = std::fs::read_dir(dir.path().join(OUTBOX_FOLDER))
            .unwrap()
            .count();
        assert_eq!(files, MAX_QUEUED);
        let reopened = Outbox::open(dir.path()).unwrap();
        assert_eq!(reopened.queued().next().unwrap().1.id, "m3");
    }

    #[test]
    fn a_damaged_message_is_moved_aside_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(OUTBOX_FOLDER);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(format!("{:020}.json", 7)), b"{not json").unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        assert_eq!(outbox.len(), 0);
        assert!(folder.join(format!("{:020}.damaged", 7)).exists());
    }
}
