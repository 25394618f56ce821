//! YAML manifest text → a validated [`Manifest`] of typed values: the front door (load,
//! cache, parse); the model is in `model.rs`.
//!
//! The raw serde structs stay private to this module; everything else sees typed ids,
//! resolved paths, durations and secret tokens. Every problem names the file and the line
//! (and the instance, where one applies), and all problems of a manifest are reported
//! together, so one run shows the operator everything to fix.

mod cache;
mod drift;
mod expand;
#[cfg(test)]
mod fuzz;
mod keys;
mod limits;
mod model;
mod openpgp;
mod parsed;
#[cfg(test)]
mod policy_tests;
mod problem;
mod processing;
mod receiver;
mod revision;
mod rollout;
mod schema;
mod scope;
mod sealed;
mod shard;
mod signers;
mod snapshot;
mod token;
mod validate;
mod values;
mod windows;
mod yaml;

pub use cache::PendingCache;
pub use drift::DriftMode;
pub(crate) use expand::ExpandError;
pub use keys::{
    INSTANCE_KEYS, Key, KeyType, NOTIFY_EVENTS, NOTIFY_KEYS, PROCESSING_KEYS, ROLLOUT_KEYS,
    TOP_KEYS, WINDOW_KEYS,
};
pub use limits::MAX_MANIFEST_BYTES;
pub use model::{
    DEFAULT_API_URL, DEFAULT_DRIFT_INTERVAL, DEFAULT_MIN_INTERVAL, DEFAULT_RESYNC_INTERVAL,
    Instance, Manifest, PictureSource, SIZE_RANGE,
};
pub use problem::{ManifestError, PictureRef, Problem, ProblemKind};
pub use processing::{Fit, Processing, parse_background};
pub use receiver::{EventName, NotifyFormat, Receiver, WebhookUrl};
pub use revision::{Revision, git_revision, head_commit};
pub use rollout::{Amount, RolloutPolicy};
pub use schema::json_schema;
pub use scope::Scope;
pub use sealed::{AgeIdentities, use_identities};
pub use shard::{Shard, shard_of};
pub use signers::{AllowedSigners, Signer, Unverified};
pub use snapshot::{Pinned, Snapshot, SnapshotError, snapshot};
pub use token::{TokenError, TokenSource};
pub use values::{
    ApiToken, ApiUrl, IdHasher, IdMap, InstanceId, credentials_fingerprint, is_loopback,
};
pub use windows::{Gate, Window, WindowKind, Windows, local_time};

use std::path::Path;
use validate::Validator;

/// Reads and validates the manifest at `path` (a `shard`'s instances only, when it is one),
/// expanding `${NAME}` from the process environment. The daemon's reloads go through the
/// same two steps ([`read_bytes`], then [`from_bytes_in`]), so it never runs a manifest
/// that a fresh start would refuse.
pub fn load(path: &Path, shard: Option<Shard>) -> Result<Manifest, ManifestError> {
    let env = |name: &str| std::env::var(name).ok();
    from_bytes_in(&read_bytes(path)?, path, shard, &env)
}

/// The manifest file's bytes: a regular file of at most [`MAX_MANIFEST_BYTES`].
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, ManifestError> {
    crate::fsio::read_regular(path, MAX_MANIFEST_BYTES).map_err(|e| {
        let message = format!("cannot read the manifest: {e}");
        ManifestError::one(ProblemKind::Unreadable, path, None, message)
    })
}

/// Whether a run that parses the manifest afresh keeps the parse ([`load_cached`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The state directory's writer keeps it ([`PendingCache::save`]).
    Parse,
    /// A reader only uses what is there.
    Nothing,
}

/// Reads and validates the manifest at `path` as [`load`] does, taking its parse from the
/// cache in the state directory `dir` when the bytes are the ones cached. A writer (`keep`)
/// gets a fresh parse back, to save there once it holds the lock. A `shard` keeps only its
/// own instances (and its own cache): its memory follows its shard, not the fleet.
pub fn load_cached(
    path: &Path,
    dir: &Path,
    keep: Keep,
    shard: Option<Shard>,
) -> Result<(Manifest, Option<PendingCache>), ManifestError> {
    let env = |name: &str| std::env::var(name).ok();
    // Looked up by the file's hash first: a hit never holds the manifest's bytes (at fleet
    // size, megabytes beside the state's records).
    if let Some(key) = cache::key_of_file(path, shard)
        && let Some(validated) = cache::read(dir, &key, Validator::new(path, &env))
    {
        tracing::debug!("manifest parse taken from the cache");
        return Ok((validated?, None));
    }
    from_bytes_cached(&read_bytes(path)?, path, dir, keep, shard, &env)
}

/// [`from_bytes`], with the parse cached in `dir` ([`load_cached`]).
fn from_bytes_cached(
    bytes: &[u8],
    path: &Path,
    dir: &Path,
    keep: Keep,
    shard: Option<Shard>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Manifest, Option<PendingCache>), ManifestError> {
    let key = cache::key(bytes, shard);
    if let Some(validated) = cache::read(dir, &key, Validator::new(path, env)) {
        tracing::debug!("manifest parse taken from the cache");
        return Ok((validated?, None));
    }
    let read = parse_yaml(utf8(bytes, path)?, path, shard)?;
    // Only a parse without a problem is kept: one with problems is refused anyway.
    let pending = match keep {
        Keep::Parse if read.problems.is_empty() => PendingCache::new(dir, key, &read.parsed),
        _ => None,
    };
    Ok((validate(read, path, env)?, pending))
}

/// Validates the manifest `bytes` read from `path`: UTF-8 text, then [`parse`].
pub fn from_bytes(
    bytes: &[u8],
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Manifest, ManifestError> {
    from_bytes_in(bytes, path, None, env)
}

/// [`from_bytes`], keeping only `shard`'s instances when it is one.
pub fn from_bytes_in(
    bytes: &[u8],
    path: &Path,
    shard: Option<Shard>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Manifest, ManifestError> {
    validate(parse_yaml(utf8(bytes, path)?, path, shard)?, path, env)
}

fn utf8<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str, ManifestError> {
    std::str::from_utf8(bytes).map_err(|e| {
        ManifestError::one(
            ProblemKind::Unreadable,
            path,
            None,
            format!(
                "the manifest is not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// Validates manifest `text` that was read from `path`. `env` looks up `${NAME}`.
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Manifest, ManifestError> {
    validate(parse_yaml(text, path, None)?, path, env)
}

/// The manifest `read` from `path`: its problems of shape and its values', together.
fn validate(
    read: yaml::Read,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Manifest, ManifestError> {
    Validator::new(path, env)
        .with_problems(read.problems)
        .manifest(read.parsed)
}

/// The YAML `text` read from `path`, parsed within the safety limits (a `shard`'s
/// instances only).
fn parse_yaml(text: &str, path: &Path, shard: Option<Shard>) -> Result<yaml::Read, ManifestError> {
    if let Err(bomb) = limits::check_expansion(text) {
        return Err(ManifestError::one(
            ProblemKind::YamlLimit,
            path,
            Some(bomb.line),
            bomb.message,
        ));
    }
    yaml::read(text, path, shard)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod yaml_tests;
