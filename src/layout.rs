//! The state directory's layout: the name of every file and folder avatar-sync keeps there,
//! in one place (`docs/state.md` documents each). The modules that read and write them
//! (`state`, `picture`, `manifest`'s cache) take their names from here.

/// The state document.
pub(crate) const STATE_FILE: &str = "state.json";
/// The records changed since the state document was written, one JSON line each.
pub(crate) const CHANGES_FILE: &str = "changes.jsonl";
/// The calls started (and bytes refused) since the last save, appended before each call.
pub(crate) const JOURNAL_FILE: &str = "calls.journal";
/// Messages to receivers of `notify:` not yet delivered, one file each, written before
/// they are sent and removed once a receiver answered 2xx.
pub(crate) const OUTBOX_FOLDER: &str = "outbox";
/// What each receiver of `notify:` was told (keys, never text), so a restart does not
/// tell it again.
pub(crate) const TOLD_FILE: &str = "notified.json";
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
/// The rollout in progress: its revision, instances in wave order, wave, pause, halt.
pub(crate) const ROLLOUT_FILE: &str = "rollout.json";
/// The last revision verified and applied under `--verify-signers` (its commit id), for
/// `--status` to show while a newer one at `HEAD` is not verified.
pub(crate) const VERIFIED_REVISION_FILE: &str = "verified-revision";

/// Records `commit` as the last verified revision applied from the state directory `dir`
/// ([`VERIFIED_REVISION_FILE`]). A failure is logged, not fatal: the record only names what
/// the state already shows.
pub(crate) fn record_verified(dir: &std::path::Path, commit: &str) {
    let file = dir.join(VERIFIED_REVISION_FILE);
    if let Err(e) = crate::fsio::write_bytes_atomically(&file, format!("{commit}\n").as_bytes()) {
        tracing::warn!("cannot write {}: {e}", file.display());
    }
}
