//! The state document: what is recorded per instance, its versioned JSON form
//! (`docs/state.md`), and reading it back. No I/O here: bytes in, [`State`] out, and back.

use crate::clock::{serde_rfc3339, serde_rfc3339_opt};
use crate::manifest::{IdHasher, IdMap, InstanceId};
#[cfg(doc)]
use crate::outcome::ANSWER_DEADLINE;
use crate::outcome::FailureKind;
use crate::picture::Digest;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::SystemTime;

/// The state document's format version. Bump on incompatible changes. Version 2 is version
/// 1's document with `changes.jsonl` beside it (an older avatar-sync, which would not read
/// the changes, refuses it instead of acting on stale records). Version 3 is version 2's
/// with `rollout.json` beside it and `liveMatchedAt` in records: an older avatar-sync,
/// which would upload a halted or paused rollout's pictures at once, refuses it.
pub(crate) const SCHEMA_VERSION: u32 = 3;
/// How many refused pictures to remember per instance.
pub(super) const MAX_REFUSED: usize = 8;

/// Everything recorded, per instance.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    /// Per-instance records, by `idInstance` (hashed: a pass looks each instance up several
    /// times; the file lists them in order).
    pub instances: IdMap<InstanceRecord>,
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
    /// When a call started whose answer is not recorded (the process stopped while it was
    /// in flight): it may have been answered up to [`ANSWER_DEADLINE`] later, and the
    /// throttle counts from there. Cleared when an answer is recorded.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_rfc3339_opt"
    )]
    pub call_started_at: Option<SystemTime>,
    /// The failure in force, with its backoff; cleared by a success. (Boxed: most records
    /// have none, and a fleet's records are held in one table.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Box<Failure>>,
    /// The instance's `stateInstance` as last read (`authorized`, `notAuthorized`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_instance: Option<String>,
    /// When the daemon last read the live picture (`drift`), to spread its next look.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_rfc3339_opt"
    )]
    pub live_checked_at: Option<SystemTime>,
    /// When a read of its live state last started (any process): GREEN-API allows one a
    /// second, so the next read, in this run or the next, waits until a second after it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_rfc3339_opt"
    )]
    pub read_started_at: Option<SystemTime>,
    /// When a look last found the applied picture live (or adoption found it so): a
    /// rollout's read-back (`verify`) of an upload is this, after the upload.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_rfc3339_opt"
    )]
    pub live_matched_at: Option<SystemTime>,
    /// Why the live picture is not the applied one, when the last look found so; cleared
    /// by a look that matches or by a new upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drifted: Option<String>,
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
    /// The perceptual fingerprint of the bytes uploaded (hex), kept for comparing live
    /// pictures with (`drift`); absent where drift is off. (Shared: the instances that
    /// show one picture hold one copy of its fingerprint once read.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perceptual_hash: Option<Arc<str>>,
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
pub(super) struct DocumentRef<'a> {
    version: u32,
    /// How many records follow: the reader makes room for them at once.
    records: usize,
    /// In `idInstance` order, so the file reads (and diffs) in a stable order.
    instances: BTreeMap<&'a InstanceId, &'a InstanceRecord>,
}

impl<'a> DocumentRef<'a> {
    /// The document of `state`, in this version's format.
    pub(super) fn new(state: &'a State) -> Self {
        Self {
            version: SCHEMA_VERSION,
            records: state.instances.len(),
            instances: state.instances.iter().collect(),
        }
    }
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// A state document as read: its version and records (`records`, the count written before
/// them, only sizes the map).
struct Document {
    version: u32,
    instances: IdMap<InstanceRecord>,
}

/// Reads a [`Document`] into a map sized for its records: at fleet size, growing the map
/// step by step (every record hashed again at each step) costs more than reading them.
struct DocumentSeed {
    /// At most how many records to make room for (one per [`RECORD_BYTES`] of the file).
    records: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for DocumentSeed {
    type Value = Document;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Document, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DocumentSeed {
    type Value = Document;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a state document")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        use serde::de::Error;
        let (mut version, mut instances, mut records) = (None, None, 0);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "version" if version.is_some() => return Err(A::Error::duplicate_field("version")),
                "instances" if instances.is_some() => {
                    return Err(A::Error::duplicate_field("instances"));
                }
                "version" => version = Some(map.next_value()?),
                // Only a hint, written before the records: one that is not a count, or
                // larger than the file could hold, is not followed.
                "records" => {
                    let hint = map.next_value::<serde_json::Value>()?.as_u64();
                    let hint = hint.and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
                    records = hint.min(self.records);
                }
                "instances" => instances = Some(map.next_value_seed(RecordsSeed(records))?),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Document {
            version: version.ok_or_else(|| A::Error::missing_field("version"))?,
            instances: instances.ok_or_else(|| A::Error::missing_field("instances"))?,
        })
    }
}

/// The records of a [`Document`], into a map with room for about `.0` of them.
struct RecordsSeed(usize);

impl<'de> serde::de::DeserializeSeed<'de> for RecordsSeed {
    type Value = IdMap<InstanceRecord>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RecordsSeed {
    type Value = IdMap<InstanceRecord>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map of idInstance to record")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut records = IdMap::with_capacity_and_hasher(self.0, Default::default());
        // A fleet shows a few pictures: their fingerprints are held once each. (Hex written
        // by this program: the ids' fast hash serves.)
        let mut fingerprints: HashSet<Arc<str>, BuildHasherDefault<IdHasher>> = HashSet::default();
        while let Some((id, mut record)) = map.next_entry::<InstanceId, InstanceRecord>()? {
            let applied = record.applied.as_mut();
            if let Some(hash) = applied.and_then(|a| a.perceptual_hash.as_mut()) {
                match fingerprints.get(&**hash) {
                    Some(shared) => *hash = Arc::clone(shared),
                    None => {
                        fingerprints.insert(Arc::clone(hash));
                    }
                }
            }
            records.insert(id, record);
        }
        Ok(records)
    }
}

/// Bytes of JSON a record takes, at least, for the room a `records` hint may reserve: an
/// instance that was ever called has a `lastCallAt` (about 50 bytes with its id), one
/// with an applied picture 300 to 500. A damaged hint reserves at most about the memory
/// the file's records take; a file of smaller records makes the map grow a step or two.
const RECORD_BYTES: usize = 200;

pub(super) enum ParseError {
    TooNew(u32),
    Invalid(String),
}

/// Reads a state document: the state, and the format version it was written in.
pub(super) fn parse(bytes: &[u8]) -> Result<(State, u32), ParseError> {
    let check_version = |version: u32| match version {
        v if v > SCHEMA_VERSION => Err(ParseError::TooNew(v)),
        0 => Err(ParseError::Invalid("unknown format version 0".to_owned())),
        _ => Ok(()),
    };
    // One pass over the (possibly large) document in the common case; a document this
    // version cannot read is looked at again only to tell a newer format from damage.
    let seed = DocumentSeed {
        records: bytes.len() / RECORD_BYTES,
    };
    // Checked as UTF-8 once, not string by string.
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ParseError::Invalid(format!("not a valid state document: not UTF-8 ({e})")))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let read = serde::de::DeserializeSeed::deserialize(seed, &mut de).and_then(|doc| {
        de.end()?;
        Ok(doc)
    });
    match read {
        Ok(doc) => {
            check_version(doc.version)?;
            Ok((
                State {
                    instances: doc.instances,
                },
                doc.version,
            ))
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
