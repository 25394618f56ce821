//! Looking at what WhatsApp shows: before the first upload to an instance with no record
//! (adoption: a first run, a lost state directory, a fleet handed over from scripts, a
//! shard that moved) and, in the daemon, about once per `driftInterval` for each instance
//! in sync (drift). One `getWaSettings`, then the picture's file only when its URL's path
//! is not the one recorded; pictures are compared perceptually, since WhatsApp re-encodes
//! and resizes what it shows.

use crate::gateway::{Gateway, Reader};
use crate::metrics::{GET_WA_SETTINGS, Metrics};
use crate::outcome::{CallFailure, FailureKind};
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
    /// It could not be told (a failed read, an instance not authorised).
    Unknown {
        /// A stable label (the gateway's failure kind, or `instance-not-usable`).
        kind: &'static str,
        /// Why, for people.
        why: String,
    },
}

/// Looks at the live picture of the instance `reader` names and compares it with `wanted`.
/// `recorded` is the URL answered when `wanted` was applied: the same path means the same
/// picture, without a download. Shared by adoption, the daemon's looks and `--drift`.
pub(crate) async fn look<G: Gateway>(
    gateway: &G,
    reader: &Reader,
    wanted: &Wanted,
    recorded: Option<&str>,
    metrics: &Metrics,
) -> Look {
    let started = Instant::now();
    let settings = gateway.wa_settings(reader).await;
    let outcome = (settings.as_ref()).map_or_else(|f| f.kind.label(), |_| "read");
    metrics.request(GET_WA_SETTINGS, outcome, started.elapsed());
    let settings = match settings {
        Ok(settings) if settings.state.is_authorized() => settings,
        Ok(settings) => {
            return Look::Unknown {
                kind: "instance-not-usable",
                why: format!(
                    "stateInstance is {}: the live picture cannot be read",
                    settings.state.label()
                ),
            };
        }
        Err(failure) => return Look::failed(failure),
    };
    let Some(url) = settings.avatar else {
        return Look::Differs("no picture is live".to_owned());
    };
    if recorded.is_some_and(|recorded| same_path(recorded, &url)) {
        return Look::Matches(url);
    }
    let live = match gateway.avatar_file(reader, &url).await {
        Ok(live) => live,
        Err(failure) => return Look::failed(failure),
    };
    let wanted = wanted.clone();
    let compare = move || -> Result<f64, String> {
        let wanted = match wanted {
            Wanted::Hash(hash) => hash,
            Wanted::Bytes(bytes) => process::perceptual_hash(&bytes)
                .map_err(|e| format!("the upload cannot be fingerprinted: {e}"))?,
        };
        let live = process::live_perceptual_hash(&live).map_err(|e| match e {
            process::ProcessError::TooLarge { width, height } => format!(
                "the live picture is {width} × {height} pixels, larger than WhatsApp serves \
                 (at most {} a side is decoded); it is not decoded",
                process::MAX_LIVE_SIDE
            ),
            other => format!("the live picture cannot be decoded: {other}"),
        })?;
        Ok(live.similarity(wanted))
    };
    let compared = tokio::task::spawn_blocking(compare)
        .await
        .unwrap_or_else(|e| Err(format!("the comparison failed: {e}")));
    match compared {
        Ok(similarity) if similarity >= MATCH_SIMILARITY => Look::Matches(url),
        Ok(similarity) => Look::Differs(format!(
            "another picture is live (perceptual similarity {similarity:.2}; \
             {MATCH_SIMILARITY} or more is the same picture)"
        )),
        Err(why) => Look::Unknown {
            kind: FailureKind::UnexpectedAnswer.label(),
            why,
        },
    }
}

impl Look {
    /// A read that failed, as the gateway classified it.
    fn failed(failure: CallFailure) -> Self {
        Self::Unknown {
            kind: failure.kind.label(),
            why: failure.detail,
        }
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
