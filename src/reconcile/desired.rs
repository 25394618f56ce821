//! Manifest → the desired state of each instance: the digest of the exact JPEG to upload
//! (its picture looked at once per pass through the hash cache, then prepared through the
//! prepared-picture cache, both in [`Caches`]) and, where a call may follow, its token.
//!
//! Problems found here (a missing or undecodable picture, a token file that cannot be read)
//! are errors of that instance only; they become [`Desired::Unusable`] and are never sent.
//! An instance already showing its picture needs no token, so a pass with nothing to do
//! reads no token.

use crate::manifest::Processing;
use crate::manifest::{
    ApiToken, DriftMode, Instance, Manifest, TokenError, credentials_fingerprint,
};
use crate::outcome::LocalProblem;
use crate::picture::caches::Caches;
use crate::picture::hashes::Hashes;
use crate::picture::prepared::Prepared;
use crate::picture::{Digest, PictureError};
use crate::plan::Desired;
use crate::state::State;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// One instance's desired state, with what is needed to send it.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// What the planner compares.
    pub desired: Desired,
    /// The resolved token, when a call may follow.
    pub token: Option<ApiToken>,
}

/// Whether an instance whose token cannot be had is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tokens {
    /// The token is needed (sending, or planning what would be sent).
    Required,
    /// Only reading what is recorded: a token source absent here (the service's
    /// credentials, say) does not make the instance failed.
    Optional,
}

/// The picture files a pass looks at: those of the instances that are not suspended.
pub(crate) fn picture_paths(manifest: &Manifest) -> impl Iterator<Item = &Path> {
    manifest
        .instances
        .iter()
        .filter(|i| !i.suspend)
        .filter_map(|i| i.picture.path.as_deref().ok())
}

/// The desired state of every instance, in manifest order.
pub(crate) fn compute(
    manifest: &Manifest,
    tokens: Tokens,
    caches: &mut Caches,
    state: &State,
) -> Vec<Target> {
    let sources = caches.hashes.digest_all(picture_paths(manifest));
    prepare_ahead(manifest, &sources, &mut caches.prepared);
    let mut pictures = Pictures::new(&sources, &mut caches.prepared);
    manifest
        .instances
        .iter()
        .map(|instance| target(instance, &mut pictures, tokens, state))
        .collect()
}

/// Prepares every (picture, options) of `manifest` that is not prepared yet, on every core,
/// before the instances are looked at one by one.
pub(crate) fn prepare_ahead(manifest: &Manifest, sources: &Sources, prepared: &mut Prepared) {
    let jobs = manifest
        .instances
        .iter()
        .filter(|i| !i.suspend)
        .filter_map(|i| {
            let path = i.picture.path.as_deref().ok()?;
            let source = sources.get(path)?.as_ref().ok()?;
            Some((path, *source, i.processing))
        });
    prepared.prepare_all(jobs);
}

/// The source digests of every picture of `manifest`, hashed and prepared in memory with
/// no state directory (`--check`, `--preview`); `keep` keeps the prepared bytes.
pub(crate) fn prepare_in_memory(manifest: &Manifest, keep: bool) -> (Sources, Prepared) {
    let sources = Hashes::default().digest_all(picture_paths(manifest));
    let mut prepared = Prepared::in_memory(keep);
    prepare_ahead(manifest, &sources, &mut prepared);
    (sources, prepared)
}

/// The source digest of each picture file of a pass (or why it could not be had).
pub(crate) type Sources = HashMap<PathBuf, Result<Digest, PictureError>>;

/// The pictures of one pass: source digests, and what each (picture, options) prepares to.
pub(crate) struct Pictures<'a> {
    /// The source digest of each picture file of the pass.
    pub sources: &'a Sources,
    /// Where prepared pictures come from.
    pub prepared: &'a mut Prepared,
    /// Each distinct (picture, options) is prepared once per pass (by the path's bytes: a
    /// lookup neither allocates nor walks the path's components).
    pub memo: HashMap<Processing, HashMap<OsString, Result<Digest, LocalProblem>>>,
}

impl<'a> Pictures<'a> {
    /// The pictures of a pass whose sources are `sources`, prepared through `prepared`.
    pub(crate) fn new(sources: &'a Sources, prepared: &'a mut Prepared) -> Self {
        Self {
            sources,
            prepared,
            memo: HashMap::new(),
        }
    }

    /// The digest of the JPEG to upload for `path` under `options`.
    pub fn upload_digest(
        &mut self,
        path: &Path,
        options: &Processing,
    ) -> Result<Digest, LocalProblem> {
        if let Some(known) = (self.memo.get(options)).and_then(|m| m.get(path.as_os_str())) {
            return known.clone();
        }
        let result = match self.sources.get(path) {
            Some(Ok(source)) => self.prepared.digest(path, *source, options),
            Some(Err(e)) => Err(LocalProblem {
                label: e.label(),
                message: e.to_string(),
            }),
            None => Err(LocalProblem {
                label: "picture-unreadable",
                message: format!("picture {} was not read", path.display()),
            }),
        };
        (self.memo.entry(*options).or_default())
            .insert(path.as_os_str().to_owned(), result.clone());
        result
    }
}

/// The desired state of one instance, given the pictures of this pass.
pub(crate) fn target(
    instance: &Instance,
    pictures: &mut Pictures<'_>,
    tokens: Tokens,
    state: &State,
) -> Target {
    let unusable = |problem: LocalProblem| Target {
        desired: Desired::Unusable(problem),
        token: None,
    };
    if instance.suspend {
        return Target {
            desired: Desired::Suspended,
            token: None,
        };
    }
    let path = match &instance.picture.path {
        Ok(path) => path,
        Err(why) => {
            return unusable(LocalProblem {
                label: "picture-path",
                message: format!("picture: {why}"),
            });
        }
    };
    let digest = match pictures.upload_digest(path, &instance.processing) {
        Ok(digest) => digest,
        Err(problem) => return unusable(problem),
    };
    let record = state.instances.get(&instance.id);
    let applied = record.and_then(|r| r.applied.as_ref()).map(|a| a.sha256);
    let healing = instance.drift == DriftMode::Heal && record.is_some_and(|r| r.drifted.is_some());
    if applied == Some(digest) && !healing {
        // In sync: nothing will be sent, so the token is not read.
        return Target {
            desired: Desired::Picture {
                digest,
                drift: instance.drift,
                credentials: None,
            },
            token: None,
        };
    }
    match instance.token.resolve() {
        Ok(token) => Target {
            desired: Desired::Picture {
                digest,
                drift: instance.drift,
                credentials: Some(credentials_fingerprint(&instance.api_url, &token)),
            },
            token: Some(token),
        },
        Err(TokenError::Unavailable(_)) if tokens == Tokens::Optional => Target {
            desired: Desired::Picture {
                digest,
                drift: instance.drift,
                credentials: None,
            },
            token: None,
        },
        Err(e) => unusable(LocalProblem {
            label: e.label(),
            message: e.to_string(),
        }),
    }
}
