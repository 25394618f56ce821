//! Looking at what WhatsApp shows: before the first upload to an instance with no record
//! (adoption: a first run, a lost state directory, a fleet handed over from scripts, a
//! shard that moved) and, in the daemon, about once per `driftInterval` for each instance
//! in sync (drift). One `getWaSettings`, then the picture's file only when its URL's path
//! is not the one recorded; pictures are compared perceptually, since WhatsApp re-encodes
//! and resizes what it shows.

use crate::gateway::{Gateway, Reader};
use crate::manifest::{ApiToken, Instance};
use crate::metrics::{GET_WA_SETTINGS, Metrics};
use crate::picture::phash::{MATCH_SIMILARITY, PerceptualHash};
use crate::picture::process;
use std::time::Instant;

/// The picture a look compares with: its fingerprint when the state keeps it, else the
/// upload's bytes (fingerprinted on the spot).
#[derive(Clone, Debug)]
pub(crate) enum Wanted {
    /// The recorded fingerprint.
    Hash(PerceptualHash),
    /// The upload's bytes.
    Bytes(Vec<u8>),
}

/// What a look found.
#[derive(Debug)]
pub(crate) enum Look {
    /// The live picture is the wanted one; its URL.
    Matches(String),
    /// Another picture, or none, is live; why, for people.
    Differs(String),
    /// It could not be told (a failed read, an instance not authorised); why.
    Unknown(String),
}

/// Looks at `instance`'s live picture and compares it with `wanted` (the upload's bytes).
/// `recorded` is the URL answered when `wanted` was applied: the same path means the same
/// picture, without a download.
pub(super) async fn look<G: Gateway>(
    gateway: &G,
    instance: &Instance,
    token: &ApiToken,
    wanted: &Wanted,
    recorded: Option<&str>,
    metrics: &Metrics,
) -> Look {
    let reader = Reader {
        api_url: instance.api_url.clone(),
        id: instance.id.clone(),
        token: token.clone(),
    };
    let started = Instant::now();
    let settings = gateway.wa_settings(&reader).await;
    let outcome = settings
        .as_ref()
        .map_or_else(|f| f.kind.label(), |_| "read");
    metrics.request(GET_WA_SETTINGS, outcome, started.elapsed());
    let settings = match settings {
        Ok(settings) if settings.state.is_authorized() => settings,
        Ok(settings) => {
            return Look::Unknown(format!("stateInstance is {}", settings.state.label()));
        }
        Err(failure) => return Look::Unknown(format!("{}: {}", failure.kind, failure.detail)),
    };
    let Some(url) = settings.avatar else {
        return Look::Differs("no picture is live".to_owned());
    };
    if recorded.is_some_and(|recorded| same_path(recorded, &url)) {
        return Look::Matches(url);
    }
    let live = match gateway.avatar_file(&url).await {
        Ok(live) => live,
        Err(failure) => return Look::Unknown(format!("{}: {}", failure.kind, failure.detail)),
    };
    let wanted = wanted.clone();
    let compare = move || -> Option<f64> {
        let wanted = match wanted {
            Wanted::Hash(hash) => hash,
            Wanted::Bytes(bytes) => process::perceptual_hash(&bytes).ok()?,
        };
        Some(process::perceptual_hash(&live).ok()?.similarity(wanted))
    };
    match tokio::task::spawn_blocking(compare).await {
        Ok(Some(similarity)) if similarity >= MATCH_SIMILARITY => Look::Matches(url),
        Ok(Some(similarity)) => Look::Differs(format!(
            "another picture is live (perceptual similarity {similarity:.2}; \
             {MATCH_SIMILARITY} or more is the same picture)"
        )),
        _ => Look::Unknown("the live picture cannot be decoded".to_owned()),
    }
}

/// Whether two URLs name the same file: host and path equal, whatever the (signed,
/// rotating) query says.
pub(crate) fn same_path(a: &str, b: &str) -> bool {
    let path = |url: &str| {
        let url = reqwest::Url::parse(url).ok()?;
        Some((url.host_str()?.to_owned(), url.path().to_owned()))
    };
    path(a).is_some_and(|a| Some(a) == path(b))
}
