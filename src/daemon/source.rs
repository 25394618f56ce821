//! The manifest file as the daemon last read it, and the files a manifest makes the daemon
//! watch. The manifest is parsed again only when its bytes changed (or a reload asks), and
//! an edit that does not parse is logged and ignored: the last good manifest stays. A file
//! that cannot be read (out of descriptors, replaced mid-checkout) is read again soon, not
//! at the next resync: no event may come to say it can be read now.

use crate::manifest::{self, Manifest, Scope, TokenSource};
use crate::picture::Digest;
use crate::report::short_sha;
use std::path::PathBuf;
use std::time::Duration;

/// The manifest file and its bytes as last read, and the instances the run acts on.
pub(crate) struct ManifestSource {
    path: PathBuf,
    bytes: Vec<u8>,
    scope: Scope,
    /// The SHA-256 of the manifest in force.
    in_force: String,
    /// Whether the last read was a valid manifest.
    last_ok: bool,
    /// Reads of the file that failed in a row.
    failed_reads: u32,
    /// `--verify-signers`: the manifest comes from the verified commit at `HEAD`.
    signed: Option<Signed>,
}

/// The daemon's signed revisions: the last verified one stays in force while a newer one
/// at `HEAD` is not verified.
pub(crate) struct Signed {
    signers: manifest::AllowedSigners,
    /// The revision in force, its files kept while its manifest is.
    pinned: manifest::Pinned,
    /// A newer `HEAD` that is not applied: its commit and why (logged once).
    refused: Option<(String, String)>,
    /// The repository's files that move with `HEAD`.
    git_files: Vec<PathBuf>,
    /// The state directory, where the revision applied is recorded.
    state_dir: PathBuf,
}

/// The first wait before reading a manifest that could not be read again; doubled after
/// each failure, up to [`REREAD_MAX`].
pub(crate) const REREAD_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two reads of a manifest that cannot be read.
pub(crate) const REREAD_MAX: Duration = Duration::from_secs(60);

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
            failed_reads: 0,
            signed: None,
        }
    }

    /// As [`ManifestSource::new`], for signed revisions: `pinned` is the verified revision
    /// the daemon starts on.
    pub(crate) fn signed(
        path: PathBuf,
        scope: Scope,
        signers: manifest::AllowedSigners,
        pinned: manifest::Pinned,
        state_dir: PathBuf,
    ) -> Self {
        let git_files = manifest::head_commit(&path)
            .map(|(_, f)| f)
            .unwrap_or_default();
        let mut source = Self::new(path, scope);
        source.in_force = pinned.commit.clone();
        source.signed = Some(Signed {
            signers,
            pinned,
            refused: None,
            git_files,
            state_dir,
        });
        source
    }

    /// With signed revisions, records the one in force in the state directory (once the
    /// daemon holds its lock).
    pub(crate) fn record_in_force(&self) {
        if let Some(signed) = &self.signed {
            crate::layout::record_verified(&signed.state_dir, &signed.pinned.commit);
        }
    }

    /// Besides the manifest's own files, what to watch: with signed revisions, the
    /// manifest's path on disk and the repository's `HEAD` and refs.
    pub(crate) fn also_watched(&self) -> Vec<PathBuf> {
        match &self.signed {
            Some(signed) => std::iter::once(self.path.clone())
                .chain(signed.git_files.iter().cloned())
                .collect(),
            None => Vec::new(),
        }
    }

    /// With signed revisions: the commit in force, and a newer one at `HEAD` that is not
    /// verified.
    pub(crate) fn commits(&self) -> Option<(&str, Option<&str>)> {
        let signed = self.signed.as_ref()?;
        let refused = signed.refused.as_ref().map(|(commit, _)| commit.as_str());
        Some((signed.pinned.commit.as_str(), refused))
    }

    /// With signed revisions: the revision in force, who signed it, and a newer one not
    /// applied.
    pub(crate) fn revision(&self) -> Option<manifest::Revision> {
        let signed = self.signed.as_ref()?;
        Some(manifest::Revision {
            unverified: (signed.refused.as_ref())
                .map(|(commit, why)| format!("{}: {why}", short_sha(commit))),
            ..signed.pinned.revision()
        })
    }

    /// How long to wait before reading the manifest again, when the last read failed.
    pub(crate) fn reread_in(&self) -> Option<Duration> {
        let doublings = self.failed_reads.checked_sub(1)?.min(6);
        Some((REREAD_FIRST * 2_u32.pow(doublings)).min(REREAD_MAX))
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
        if self.signed.is_some() {
            return self.reload_signed(force);
        }
        let bytes = match manifest::read_bytes(&self.path) {
            Ok(bytes) => bytes,
            Err(e) => {
                log_problems(&e);
                self.last_ok = false;
                self.failed_reads = self.failed_reads.saturating_add(1);
                if let Some(wait) = self.reread_in() {
                    tracing::warn!(
                        "reading the manifest again in {}",
                        humantime::format_duration(wait)
                    );
                }
                return None;
            }
        };
        self.failed_reads = 0;
        let changed = bytes != self.bytes;
        if !changed && !force {
            // Readable again, and still the manifest in force.
            if !self.last_ok && Digest::of(&bytes).to_string() == self.in_force {
                self.last_ok = true;
            }
            return None;
        }
        self.bytes = bytes;
        let env = |name: &str| std::env::var(name).ok();
        match manifest::from_bytes_in(&self.bytes, &self.path, self.scope.shard(), &env) {
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

impl ManifestSource {
    /// Signed revisions: the commit at `HEAD`, when it is not the one in force (or `force`)
    /// and is verified; else the last verified one stays, and a refused one is logged once.
    fn reload_signed(&mut self, force: bool) -> Option<Manifest> {
        let signed = self.signed.as_mut()?;
        let head = manifest::head_commit(&self.path);
        if let Some((_, files)) = &head {
            signed.git_files.clone_from(files);
        }
        let head = head.map(|(id, _)| id);
        let known = head.as_deref() == Some(signed.pinned.commit.as_str())
            || (signed.refused.as_ref()).is_some_and(|(id, _)| head.as_deref() == Some(id));
        if known && !force {
            if head.as_deref() == Some(signed.pinned.commit.as_str()) {
                signed.refused = None;
            }
            return None;
        }
        let env = |name: &str| std::env::var(name).ok();
        let shard = self.scope.shard();
        let read = manifest::snapshot(&self.path, "HEAD", shard, &env, Some(&signed.signers));
        match read {
            Ok(snapshot) => {
                let (mut manifest, pinned) = snapshot.split();
                manifest.restrict(&self.scope);
                tracing::info!(
                    commit = %pinned.commit,
                    signer = %pinned.signer.as_ref().map(ToString::to_string).unwrap_or_default(),
                    "revision verified; applying it"
                );
                self.in_force = pinned.commit.clone();
                self.last_ok = true;
                crate::layout::record_verified(&signed.state_dir, &pinned.commit);
                signed.pinned = pinned;
                signed.refused = None;
                Some(manifest)
            }
            Err(e) => {
                let why = e.to_string();
                let commit = head.unwrap_or_default();
                if force || signed.refused.as_ref().is_none_or(|(id, _)| *id != commit) {
                    match &e {
                        manifest::SnapshotError::Manifest(problems) => log_problems(problems),
                        _ => tracing::warn!("{why}"),
                    }
                    tracing::warn!(
                        in_force = %signed.pinned.commit,
                        "the last verified revision stays in force; nothing is uploaded from the newer one"
                    );
                }
                let reason = why
                    .split_once(" is not applied: ")
                    .map_or(why.as_str(), |(_, reason)| reason)
                    .to_owned();
                signed.refused = Some((commit, reason));
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
