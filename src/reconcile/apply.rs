//! Runs one planned call through the gateway: reads the prepared JPEG, makes sure it is
//! still exactly the bytes the plan decided on, uploads it, and logs one line with the
//! instance, the outcome and the duration.
//!
//! Pictures are not kept in memory between planning and sending (a fleet shares many
//! megabytes of them); the prepared file is content-addressed, and checking its digest
//! here means a damaged or missing file is never uploaded under the wrong digest.

use super::live::{self, Look, Wanted};
use crate::clock::Clock;
use crate::gateway::{Gateway, InstanceState, Reader, Upload};
use crate::manifest::{ApiToken, DriftMode, Instance, InstanceId, Manifest};
use crate::metrics::{GET_STATE_INSTANCE, Metrics, SET_PROFILE_PICTURE};
use crate::outcome::{CallFailure, CallOutcome};
use crate::picture::prepared::Checked;
use crate::picture::{Digest, process};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// A call the plan decided on.
pub(crate) struct Call {
    /// The manifest the plan was made from.
    pub manifest: Arc<Manifest>,
    /// Which of its instances.
    pub index: usize,
    /// The prepared JPEG's file.
    pub path: PathBuf,
    /// The multipart filename: the source picture's stem with `.jpg`.
    pub filename: String,
    /// The picture the plan decided to send.
    pub digest: Digest,
    /// The fingerprint of the apiUrl and token used (recorded with a failure).
    pub credentials: String,
    /// The instance's token.
    pub token: ApiToken,
    /// Look at the live picture first, and record it without a call if it is this one
    /// (an instance with no record, the manifest's `adopt`).
    pub adopt: bool,
    /// Prepared files already checked against their digest.
    pub checked: Arc<Checked>,
    /// The picture's perceptual fingerprint, if already known (from an earlier upload of
    /// the same bytes): not computed again.
    pub fingerprint: Option<Arc<str>>,
}

/// A look at an in-sync instance's live picture (drift), planned by the daemon.
pub(crate) struct Check {
    /// The manifest the plan was made from.
    pub manifest: Arc<Manifest>,
    /// Which of its instances.
    pub index: usize,
    /// The prepared JPEG that was applied.
    pub path: PathBuf,
    /// Its digest.
    pub digest: Digest,
    /// The instance's token.
    pub token: ApiToken,
    /// The URL GREEN-API answered when it was applied.
    pub recorded: Option<String>,
    /// The applied picture's fingerprint, as the state keeps it.
    pub wanted_hash: Option<Arc<str>>,
    /// Prepared files already checked against their digest.
    pub checked: Arc<Checked>,
}

/// A poll of a blocked instance's `getStateInstance`.
pub(crate) struct Poll {
    /// The manifest the plan was made from.
    pub manifest: Arc<Manifest>,
    /// Which of its instances.
    pub index: usize,
    /// The instance's token.
    pub token: ApiToken,
}

/// What came back from a call.
#[derive(Debug)]
pub(crate) enum Landed {
    /// The request was made; here is its outcome.
    Called {
        /// Which instance.
        id: InstanceId,
        /// The picture sent.
        digest: Digest,
        /// The fingerprint of the apiUrl and token used.
        credentials: String,
        /// What GREEN-API answered.
        outcome: CallOutcome,
        /// When the answer arrived (or the call failed): the throttle counts from here.
        finished_at: SystemTime,
        /// The upload's perceptual fingerprint, when applied and drift is looked for.
        perceptual_hash: Option<Arc<str>>,
    },
    /// The live picture already was the planned one: nothing was sent.
    Adopted {
        /// Which instance.
        id: InstanceId,
        /// The picture found live.
        digest: Digest,
        /// The live picture's URL.
        url_avatar: String,
        /// When it was found.
        at: SystemTime,
    },
    /// A blocked instance's state, as `getStateInstance` answered.
    Polled {
        /// Which instance.
        id: InstanceId,
        /// What it answered.
        state: Result<InstanceState, CallFailure>,
        /// When.
        at: SystemTime,
    },
    /// A look at the live picture of an instance in sync.
    Checked {
        /// Which instance.
        id: InstanceId,
        /// The picture it should show.
        digest: Digest,
        /// What the look found.
        look: Look,
        /// When.
        at: SystemTime,
    },
    /// The prepared picture was missing or not the planned bytes; nothing was sent.
    Stale {
        /// Which instance.
        id: InstanceId,
        /// The picture that was planned.
        digest: Digest,
    },
}

/// Makes the call and reports how it landed.
pub(crate) async fn send<G: Gateway>(
    call: Call,
    gateway: G,
    clock: Clock,
    metrics: Arc<Metrics>,
) -> Landed {
    let instance = &call.manifest.instances[call.index];
    let bytes = match call.checked.read(&call.path, call.digest) {
        Some(bytes) => bytes,
        None => {
            tracing::warn!(
                instance = %instance.id,
                file = %call.path.display(),
                "the prepared picture is missing or damaged; preparing it again"
            );
            return Landed::Stale {
                id: instance.id.clone(),
                digest: call.digest,
            };
        }
    };
    let adopted = if call.adopt {
        let wanted = Wanted::Bytes(bytes.clone());
        let reader = reader_of(instance, &call.token);
        match live::look(&gateway, &reader, &wanted, None, &metrics).await {
            Look::Matches(url) => Some(url),
            Look::Differs(why) | Look::Unknown { why, .. } => {
                tracing::debug!(instance = %instance.id, "not adopted ({why}): uploading");
                None
            }
        }
    } else {
        None
    };
    if let Some(url_avatar) = adopted {
        tracing::info!(
            instance = %instance.id,
            sha256 = %call.digest.short(),
            "adopted: the live picture already is this one; recorded without a call"
        );
        return Landed::Adopted {
            id: instance.id.clone(),
            digest: call.digest,
            url_avatar,
            at: clock.now(),
        };
    }
    // Its fingerprint is kept when drift is looked for (computed once per picture, not on
    // the way of the upload).
    let fingerprint = call.fingerprint;
    let keep_hash =
        (instance.drift != DriftMode::Off && fingerprint.is_none()).then(|| bytes.clone());
    let started = Instant::now();
    let outcome = gateway
        .set_profile_picture(Upload {
            api_url: instance.api_url.clone(),
            id: instance.id.clone(),
            token: call.token,
            filename: call.filename,
            bytes,
        })
        .await;
    let finished_at = clock.now();
    let took = started.elapsed();
    let duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    let outcome_label = match &outcome {
        CallOutcome::Applied { .. } => "applied",
        CallOutcome::Failed(failure) => failure.kind.label(),
    };
    metrics.request(SET_PROFILE_PICTURE, outcome_label, took);
    match &outcome {
        CallOutcome::Applied { .. } => tracing::info!(
            instance = %instance.id,
            outcome = "applied",
            duration_ms,
            sha256 = %call.digest.short(),
            "setProfilePicture"
        ),
        CallOutcome::Failed(failure) => tracing::warn!(
            instance = %instance.id,
            outcome = failure.kind.label(),
            duration_ms,
            sha256 = %call.digest.short(),
            detail = %failure.detail,
            "setProfilePicture"
        ),
    }
    let perceptual_hash = match (&outcome, keep_hash) {
        (CallOutcome::Applied { .. }, Some(bytes)) => {
            let hash = tokio::task::spawn_blocking(move || process::perceptual_hash(&bytes));
            hash.await
                .ok()
                .and_then(Result::ok)
                .map(|h| h.to_string().into())
        }
        (CallOutcome::Applied { .. }, None) if instance.drift != DriftMode::Off => fingerprint,
        _ => None,
    };
    Landed::Called {
        id: instance.id.clone(),
        digest: call.digest,
        credentials: call.credentials,
        outcome,
        finished_at,
        perceptual_hash,
    }
}

/// Polls a blocked instance's state.
pub(crate) async fn poll<G: Gateway>(
    poll: Poll,
    gateway: G,
    clock: Clock,
    metrics: Arc<Metrics>,
) -> Landed {
    let instance = &poll.manifest.instances[poll.index];
    let reader = reader_of(instance, &poll.token);
    let started = Instant::now();
    let state = gateway.state_instance(&reader).await;
    let outcome = state.as_ref().map_or_else(|f| f.kind.label(), |_| "read");
    metrics.request(GET_STATE_INSTANCE, outcome, started.elapsed());
    if let Ok(state) = &state {
        tracing::debug!(instance = %instance.id, state = state.label(), "getStateInstance");
    }
    Landed::Polled {
        id: instance.id.clone(),
        state,
        at: clock.now(),
    }
}

/// Looks at an in-sync instance's live picture.
pub(crate) async fn check<G: Gateway>(
    check: Check,
    gateway: G,
    clock: Clock,
    metrics: Arc<Metrics>,
) -> Landed {
    let instance = &check.manifest.instances[check.index];
    // The applied picture: its fingerprint as kept, else the prepared file's bytes.
    let known = (check.wanted_hash.as_deref()).and_then(|hash| hash.parse().ok());
    let wanted = match known {
        Some(hash) => Some(Wanted::Hash(hash)),
        None => (check.checked.read(&check.path, check.digest)).map(Wanted::Bytes),
    };
    let look = match wanted {
        Some(wanted) => {
            let reader = reader_of(instance, &check.token);
            let recorded = check.recorded.as_deref();
            live::look(&gateway, &reader, &wanted, recorded, &metrics).await
        }
        None => Look::Unknown {
            kind: "state-write",
            why: "the prepared picture is missing or damaged".to_owned(),
        },
    };
    Landed::Checked {
        id: instance.id.clone(),
        digest: check.digest,
        look,
        at: clock.now(),
    }
}

/// Whom a read of `instance` is for.
fn reader_of(instance: &Instance, token: &ApiToken) -> Reader {
    Reader {
        api_url: instance.api_url.clone(),
        id: instance.id.clone(),
        token: token.clone(),
    }
}

/// The multipart filename: the picture's file stem with `.jpg`.
pub(crate) fn upload_filename(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "picture".to_owned());
    format!("{stem}.jpg")
}
