//! Manifest → the desired state of each instance, given the picture pass's digests: what
//! the planner compares ([`Desired`]) and, where a call may follow, its token.
//!
//! Problems found here (a picture the pass could not have, a token file that cannot be
//! read) are errors of that instance only; they become [`Desired::Unusable`] and are never
//! sent. An instance already showing its picture needs no token, so a pass with nothing to
//! do reads no token.

use crate::manifest::{
    ApiToken, DriftMode, Instance, Manifest, TokenError, credentials_fingerprint,
};
use crate::outcome::{LocalKind, LocalProblem};
use crate::picture::Digest;
use crate::picture::caches::Caches;
use crate::picture::pass::{self, Pictures, Uses, not_read};
use crate::plan::Desired;
use crate::state::{InstanceRecord, State};

/// One instance's desired state, with what is needed to send it.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// What the planner compares.
    pub desired: Desired,
    /// The resolved token, when a call may follow.
    pub token: Option<ApiToken>,
}

impl Target {
    /// Whether its picture is still being written (looked at again once still).
    pub(crate) fn is_settling(&self) -> bool {
        matches!(&self.desired, Desired::Unusable(p) if p.kind == LocalKind::PictureChanging)
    }
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

/// The desired state of every instance of `manifest` (whose pictures are `uses`), in
/// manifest order.
pub(crate) fn compute(
    manifest: &Manifest,
    uses: &Uses,
    tokens: Tokens,
    caches: &mut Caches,
    state: &State,
) -> Vec<Target> {
    let digests = pass::digests(manifest, uses, caches);
    (manifest.instances.iter().enumerate())
        .map(|(index, instance)| {
            let picture = uses.picture_of(index).and_then(|place| digests.get(place));
            let record = state.instances.get(&instance.id);
            target_for(instance, picture, tokens, record)
        })
        .collect()
}

/// The desired state of one instance, given the pictures of this pass.
pub(crate) fn target(
    instance: &Instance,
    pictures: &mut Pictures<'_>,
    tokens: Tokens,
    state: &State,
) -> Target {
    let picture = match &instance.picture.path {
        Ok(path) if !instance.suspend => Some(pictures.upload_digest(path, &instance.processing)),
        _ => None,
    };
    target_for(
        instance,
        picture.as_ref(),
        tokens,
        state.instances.get(&instance.id),
    )
}

/// The desired state of one instance whose picture's digest is `picture` (none when it is
/// suspended or its path is an error) and whose record is `record`.
pub(crate) fn target_for(
    instance: &Instance,
    picture: Option<&Result<Digest, LocalProblem>>,
    tokens: Tokens,
    record: Option<&InstanceRecord>,
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
            return unusable(LocalProblem::new(
                LocalKind::PicturePath,
                format!("picture: {why}"),
            ));
        }
    };
    let digest = match picture {
        Some(Ok(digest)) => *digest,
        Some(Err(problem)) => return unusable(problem.clone()),
        None => return unusable(not_read(path)),
    };
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
        Err(e) => unusable(LocalProblem::new(e.kind(), e.to_string())),
    }
}
