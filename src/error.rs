//! The crate's error type: what stops a whole run (as opposed to one instance's trouble,
//! which is reported per instance). Each variant has a stable machine label; `main` alone
//! turns these into exit codes.

use crate::gateway::GatewayInitError;
use crate::manifest::ManifestError;
use crate::state::StateError;

/// The label of [`Error::Manifest`].
pub(crate) const MANIFEST_INVALID: &str = "manifest-invalid";

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong (exit 64).
    #[error("{0}")]
    Usage(String),
    /// The run's scope holds an instance it cannot act on (`--instance` of another shard).
    #[error("{0}")]
    Scope(String),
    /// `--replace` names an instance the run does not act on (not in the manifest, or not
    /// among `--instance`).
    #[error("{0}")]
    Replace(String),
    /// The manifest cannot be used.
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    /// The `--age-identity` file cannot be used.
    #[error("{0}")]
    Identity(String),
    /// A git revision cannot be read (`--plan`, `--verify-signers`).
    #[error("{0}")]
    Revision(String),
    /// `--verify-signers`: the commit at `HEAD` is not signed by an allowed key.
    #[error("{0}")]
    Unverified(String),
    /// The state directory cannot be used.
    #[error(transparent)]
    State(#[from] StateError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Gateway(#[from] GatewayInitError),
    /// Something the process needs from its host failed (runtime, signals, watches, a folder).
    #[error("{what}: {source}")]
    Host {
        /// What could not be done, naming the path or facility.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A stable machine label for `--json` and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Usage(_) => "usage",
            Self::Scope(_) => "instance-outside-shard",
            Self::Replace(_) => "replace-not-in-scope",
            Self::Manifest(_) => MANIFEST_INVALID,
            Self::Identity(_) => "age-identity",
            Self::Revision(_) => "revision",
            Self::Unverified(_) => "revision-unverified",
            Self::State(e) => e.label(),
            Self::Gateway(_) => "http-client",
            Self::Host { .. } => "host",
        }
    }
}
