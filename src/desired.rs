//! Manifest → the desired state of each instance: its picture hashed (each distinct file
//! read once per pass) and its token resolved.
//!
//! Problems found here (a missing picture, a token file that cannot be read) are errors of
//! that instance only; they become [`Desired::Unusable`] and are never sent.

use crate::manifest::{ApiToken, Instance, Manifest, TokenError, credentials_fingerprint};
use crate::picture::{self, Digest, PictureError};
use crate::plan::{Desired, LocalProblem};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One instance's desired state, with what is needed to send it.
#[derive(Clone, Debug)]
pub struct Target {
    /// What the planner compares.
    pub desired: Desired,
    /// The resolved token, when the instance is sendable.
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
pub fn compute(manifest: &Manifest, tokens: Tokens) -> Vec<Target> {
    let paths = manifest
        .instances
        .iter()
        .filter(|i| !i.suspend)
        .filter_map(|i| i.picture.path.as_deref().ok());
    let digests = picture::digest_all(paths);
    manifest
        .instances
        .iter()
        .map(|instance| target(instance, &digests, tokens))
        .collect()
}

/// The desired state of one instance, given the digests of this pass.
pub fn target(
    instance: &Instance,
    digests: &HashMap<PathBuf, Result<Digest, PictureError>>,
    tokens: Tokens,
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
    let digest = match digests
        .get(path)
        .cloned()
        .unwrap_or_else(|| digest_of(path))
    {
        Ok(digest) => digest,
        Err(e) => return unusable(e.label(), e.to_string()),
    };
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

fn digest_of(path: &Path) -> Result<Digest, PictureError> {
    picture::read(path).map(|p| p.digest)
}
