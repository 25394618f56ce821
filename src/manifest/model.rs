//! The validated manifest: what the rest of the program sees of it (typed ids, resolved
//! paths, durations, secret tokens), and its defaults.

use super::{
    ApiUrl, DriftMode, ExpandError, InstanceId, Problem, Processing, Receiver, RolloutPolicy,
    TokenSource, Windows,
};
use std::path::PathBuf;
use std::time::Duration;

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
    /// `rollout:`: the uploads a revision changes go out in waves. `None`: all at once.
    pub rollout: Option<RolloutPolicy>,
    /// `windows:`: when uploads may happen (none: always).
    pub windows: Windows,
    /// The instances, in manifest order (a shard's: only its own).
    pub instances: Vec<Instance>,
    /// How many instances the manifest writes, in every shard.
    pub written: usize,
    /// Things that are allowed but worth saying (a token written in the manifest).
    pub warnings: Vec<Problem>,
    /// `notify:`: who is told what happens.
    pub notify: Vec<Receiver>,
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
    /// `canary: true`: always in a rollout's first wave.
    pub canary: bool,
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
