//! The manifest file as the daemon last read it, and the files a manifest makes the daemon
//! watch. The manifest is parsed again only when its bytes changed (or a reload asks), and
//! an edit that does not parse is logged and ignored: the last good manifest stays.

use crate::manifest::{self, Manifest, Scope, TokenSource};
use crate::picture::Digest;
use std::path::PathBuf;

/// The manifest file and its bytes as last read, and the instances the run acts on.
pub(crate) struct ManifestSource {
    path: PathBuf,
    bytes: Vec<u8>,
    scope: Scope,
    /// The SHA-256 of the manifest in force.
    in_force: String,
    /// Whether the last read was a valid manifest.
    last_ok: bool,
}

impl ManifestSource {
    /// The manifest at `path`, whose current bytes are the ones already in force; each
    /// manifest read is restricted to `scope`.
    pub(crate) fn new(path: PathBuf, scope: Scope) -> Self {
        let bytes = manifest::read_bytes(&path).unwrap_or_default();
        let in_force = Digest::of(&bytes).to_string();
        Self {
            path,
            bytes,
            scope,
            in_force,
            last_ok: true,
        }
    }

    /// The SHA-256 of the manifest in force, when the last read was valid.
    pub(crate) fn last_load(&self) -> Option<&str> {
        self.last_ok.then_some(self.in_force.as_str())
    }

    /// The manifest file.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Reads the manifest again; `Some` when it changed (or `force`) and is valid, `None`
    /// when it is unchanged or (logged) invalid. `force` also re-reports a broken manifest.
    pub(crate) fn reload(&mut self, force: bool) -> Option<Manifest> {
        let bytes = match manifest::read_bytes(&self.path) {
            Ok(bytes) => bytes,
            Err(e) => {
                log_problems(&e);
                self.last_ok = false;
                return None;
            }
        };
        let changed = bytes != self.bytes;
        if !changed && !force {
            return None;
        }
        self.bytes = bytes;
        match manifest::from_bytes(&self.bytes, &self.path, &|name| std::env::var(name).ok()) {
            Ok(mut manifest) => {
                for id in self.scope.missing_from(&manifest) {
                    tracing::warn!(instance = %id, "--instance {id} is no longer in the manifest");
                }
                manifest.restrict(&self.scope);
                self.in_force = Digest::of(&self.bytes).to_string();
                self.last_ok = true;
                let what = if changed {
                    "manifest changed; reloaded"
                } else {
                    "manifest reloaded"
                };
                tracing::info!(manifest = %self.path.display(), "{what}");
                for warning in &manifest.warnings {
                    tracing::warn!("{warning}");
                }
                Some(manifest)
            }
            Err(e) => {
                log_problems(&e);
                self.last_ok = false;
                None
            }
        }
    }
}

fn log_problems(e: &manifest::ManifestError) {
    for problem in &e.problems {
        tracing::error!(kind = problem.kind.label(), "{problem}");
    }
    tracing::error!("the manifest above is ignored; the last good manifest stays in force");
}

/// The files the daemon watches: the manifest, every picture and every token file (a
/// corrected token is retried at once).
pub(crate) fn watched_files(manifest: &Manifest) -> Vec<PathBuf> {
    let pictures = (manifest.instances.iter()).filter_map(|i| i.picture.path.as_ref().ok());
    let tokens = manifest.instances.iter().filter_map(|i| match &i.token {
        TokenSource::File(Ok(path)) => Some(path),
        _ => None,
    });
    // Each file once: a fleet's instances share a few pictures.
    let mut seen = std::collections::HashSet::new();
    std::iter::once(&manifest.path)
        .chain(pictures)
        .chain(tokens)
        .filter(|path| seen.insert(path.as_os_str()))
        .cloned()
        .collect()
}
