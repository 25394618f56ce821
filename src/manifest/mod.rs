//! YAML manifest text → a validated [`Manifest`] of typed values.
//!
//! The raw serde structs stay private to this file; everything else sees typed ids,
//! resolved paths, durations and secret tokens. Every problem names the file and the line
//! (and the instance, where one applies), and all problems of a manifest are reported
//! together, so one run shows the operator everything to fix.

mod cache;
mod drift;
mod expand;
#[cfg(test)]
mod fuzz;
mod limits;
mod parsed;
mod problem;
mod processing;
mod raw;
mod revision;
mod scope;
mod shard;
mod token;
mod validate;
mod values;

pub use cache::PendingCache;
pub use drift::DriftMode;
pub(crate) use expand::ExpandError;
pub use limits::MAX_MANIFEST_BYTES;
pub use problem::{ManifestError, Problem, ProblemKind};
pub use processing::{Fit, Processing, parse_background};
pub use revision::git_revision;
pub use scope::Scope;
pub use shard::Shard;
pub use token::{TokenError, TokenSource};
pub use values::{
    ApiToken, ApiUrl, IdHasher, IdMap, InstanceId, credentials_fingerprint, is_loopback,
};

use parsed::ParsedManifest;
use raw::RawManifest;
use std::path::{Path, PathBuf};
use std::time::Duration;
use validate::{Validator, yaml_error};

/// Where GREEN-API lives unless the manifest says otherwise.
pub const DEFAULT_API_URL: &str = "https://api.green-api.com";
/// Least time between two `setProfilePicture` calls of one instance (what GREEN-API documents).
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(10);
/// How often the daemon reads each in-sync instance's live picture, unless configured.
pub const DEFAULT_DRIFT_INTERVAL: Duration = Duration::from_secs(3600);
/// How often the daemon re-checks everything, events or not.
pub const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(600);

/// A validated manifest.
#[derive(Debug)]
pub struct Manifest {
    /// The manifest file, as given on the command line.
    pub path: PathBuf,
    /// Least time between two calls of one instance.
    pub min_interval: Duration,
    /// How often the daemon re-checks everything.
    pub resync_interval: Duration,
    /// `adopt` (default true): an instance with no record is first read live, and recorded
    /// as applied without a call when it already shows its picture.
    pub adopt: bool,
    /// How often the daemon reads each in-sync instance's live picture (`driftInterval`).
    pub drift_interval: Duration,
    /// The instances, in manifest order.
    pub instances: Vec<Instance>,
    /// Things that are allowed but worth saying (a token written in the manifest).
    pub warnings: Vec<Problem>,
}

/// One instance of the manifest.
#[derive(Debug)]
pub struct Instance {
    /// The `idInstance`.
    pub id: InstanceId,
    /// Where this instance's GREEN-API host is.
    pub api_url: ApiUrl,
    /// Where the `apiTokenInstance` comes from.
    pub token: TokenSource,
    /// The picture it should show.
    pub picture: PictureSource,
    /// How its picture is turned into the JPEG to upload (`fit`, `size`, `background`,
    /// `quality`: the instance's own, else the manifest's, else the defaults).
    pub processing: Processing,
    /// `suspend: true`: leave this instance alone.
    pub suspend: bool,
    /// What the daemon does when its live picture drifts (`drift`: the instance's own, else
    /// the manifest's, else `warn`).
    pub drift: DriftMode,
    /// The line of the manifest where this instance starts.
    pub line: u64,
}

/// The picture an instance should show.
#[derive(Clone, Debug)]
pub struct PictureSource {
    /// As written in the manifest, for output.
    pub written: String,
    /// The path after `${NAME}` expansion, relative to the manifest's folder; or why it
    /// could not be expanded (an error of this instance only).
    pub path: Result<PathBuf, ExpandError>,
}

/// The smallest and largest `size`, in pixels.
pub const SIZE_RANGE: std::ops::RangeInclusive<u32> = 16..=4096;

/// Reads and validates the manifest at `path`, expanding `${NAME}` from the process
/// environment. The daemon's reloads go through the same two steps ([`read_bytes`], then
/// [`from_bytes`]), so it never runs a manifest that a fresh start would refuse.
pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
    from_bytes(&read_bytes(path)?, path, &|name| std::env::var(name).ok())
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
/// gets a fresh parse back, to save there once it holds the lock.
pub fn load_cached(
    path: &Path,
    dir: &Path,
    keep: Keep,
) -> Result<(Manifest, Option<PendingCache>), ManifestError> {
    let env = |name: &str| std::env::var(name).ok();
    // Looked up by the file's hash first: a hit never holds the manifest's bytes (at fleet
    // size, megabytes beside the state's records).
    if let Some(key) = cache::key_of_file(path)
        && let Some(validated) = cache::read(dir, &key, Validator::new(path, &env))
    {
        tracing::debug!("manifest parse taken from the cache");
        return Ok((validated?, None));
    }
    from_bytes_cached(&read_bytes(path)?, path, dir, keep, &env)
}

/// [`from_bytes`], with the parse cached in `dir` ([`load_cached`]).
fn from_bytes_cached(
    bytes: &[u8],
    path: &Path,
    dir: &Path,
    keep: Keep,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Manifest, Option<PendingCache>), ManifestError> {
    let key = cache::key(bytes);
    if let Some(validated) = cache::read(dir, &key, Validator::new(path, env)) {
        tracing::debug!("manifest parse taken from the cache");
        return Ok((validated?, None));
    }
    let parsed = parse_yaml(utf8(bytes, path)?, path)?;
    let pending = match keep {
        Keep::Parse => PendingCache::new(dir, key, &parsed),
        Keep::Nothing => None,
    };
    Ok((Validator::new(path, env).manifest(parsed)?, pending))
}

/// Validates the manifest `bytes` read from `path`: UTF-8 text, then [`parse`].
pub fn from_bytes(
    bytes: &[u8],
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Manifest, ManifestError> {
    parse(utf8(bytes, path)?, path, env)
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
    Validator::new(path, env).manifest(parse_yaml(text, path)?)
}

/// The YAML `text` read from `path`, parsed within the safety limits.
fn parse_yaml(text: &str, path: &Path) -> Result<ParsedManifest, ManifestError> {
    if let Err(bomb) = limits::check_expansion(text) {
        return Err(ManifestError::one(
            ProblemKind::YamlLimit,
            path,
            Some(bomb.line),
            bomb.message,
        ));
    }
    let options = limits::options(text.len());
    let raw: RawManifest = serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| yaml_error(path, &e, text.len()))?;
    Ok(raw.into())
}

#[cfg(test)]
mod tests;
