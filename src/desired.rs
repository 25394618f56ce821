//! Manifest → the desired state of each instance: its picture's digest (each distinct file
//! looked at once per pass, through the [`Hashes`] cache) and, where a call may follow, its
//! token.
//!
//! Problems found here (a missing picture, a token file that cannot be read) are errors of
//! that instance only; they become [`Desired::Unusable`] and are never sent. An instance
//! already showing its picture needs no token, so a pass with nothing to do reads no token.

use crate::hashes::Hashes;
use crate::manifest::{ApiToken, Instance, Manifest, TokenError, credentials_fingerprint};
use crate::picture::{Digest, PictureError};
use crate::plan::{Desired, LocalProblem};
use crate::state::State;
use std::collections::HashMap;
use std::path::PathBuf;

/// One instance's desired state, with what is needed to send it.
#[derive(Clone, Debug)]
pub struct Target {
    /// What the planner compares.
    pub desired: Desired,
    /// The resolved token, when a call may follow.
    pub token: Option<ApiToken>,
}

/// Whether an instance whose token cannot be had is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tokens {
    /// The token is needed (sending, or planning what would be sent).
    Required,
    /// Only reading what is recorded: a token source absent here (the service's
    /// credentials, say) does not make the instance failed.
    Optional,
}

/// The desired state of every instance, in manifest order.
pub fn compute(
    manifest: &Manifest,
    tokens: Tokens,
    hashes: &mut Hashes,
    state: &State,
) -> Vec<Target> {
    let paths = manifest
        .instances
        .iter()
        .filter(|i| !i.suspend)
        .filter_map(|i| i.picture.path.as_deref().ok());
    let digests = hashes.digest_all(paths);
    manifest
        .instances
        .iter()
        .map(|instance| target(instance, &digests, tokens, state))
        .collect()
}

/// The desired state of one instance, given the digests of this pass.
pub fn target(
    instance: &Instance,
    digests: &HashMap<PathBuf, Result<Digest, PictureError>>,
    tokens: Tokens,
    state: &State,
) -> Target {
    let unusable = |label, message| Target {
        desired: Desired::Unusable(LocalProblem { label, message }),
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
        Err(why) => return unusable("picture-path", format!("picture: {why}")),
    };
    let digest = match digests.get(path) {
        Some(Ok(digest)) => *digest,
        Some(Err(e)) => return unusable(e.label(), e.to_string()),
        None => {
            return unusable(
                "picture-unreadable",
                format!("picture {} was not read", path.display()),
            );
        }
    };
    let applied = state
        .instances
        .get(&instance.id)
        .and_then(|r| r.applied.as_ref())
        .map(|a| a.sha256);
    if applied == Some(digest) {
        // In sync: nothing will be sent, so the token is not read.
        return Target {
            desired: Desired::Picture {
                digest,
                credentials: None,
            },
            token: None,
        };
    }
    match instance.token.resolve() {
        Ok(token) => Target {
            desired: Desired::Picture {
                digest,
                credentials: Some(credentials_fingerprint(&instance.api_url, &token)),
            },
            token: Some(token),
        },
        Err(TokenError::Unavailable(_)) if tokens == Tokens::Optional => Target {
            desired: Desired::Picture {
                digest,
                credentials: None,
            },
            token: None,
        },
        Err(e) => unusable(e.label(), e.to_string()),
    }
}
