//! The state directory's layout: the name of every file and folder avatar-sync keeps there,
//! in one place (`docs/state.md` documents each). The modules that read and write them
//! (`state`, `picture`, `manifest`'s cache) take their names from here.

/// The state document.
pub(crate) const STATE_FILE: &str = "state.json";
/// The records changed since the state document was written, one JSON line each.
pub(crate) const CHANGES_FILE: &str = "changes.jsonl";
/// The calls started (and bytes refused) since the last save, appended before each call.
pub(crate) const JOURNAL_FILE: &str = "calls.journal";
/// The one writer's lock; it says who holds it.
pub(crate) const LOCK_FILE: &str = "lock";
/// The manifest's last parse, keyed by the manifest file's SHA-256.
pub(crate) const MANIFEST_CACHE_FILE: &str = "manifest-cache.json";
/// Source picture identity → SHA-256.
pub(crate) const HASHES_FILE: &str = "hashes.json";
/// (source, processing options) → the prepared JPEG's SHA-256.
pub(crate) const PREPARED_INDEX_FILE: &str = "prepared.json";
/// The prepared JPEGs, content-addressed.
pub(crate) const PREPARED_FOLDER: &str = "prepared";
/// Ids of instances to upload again, one a line, written by an operator; the daemon reads
/// and removes it on SIGHUP (`systemctl reload`).
pub(crate) const REPLACE_FILE: &str = "replace";
