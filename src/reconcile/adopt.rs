//! Adoption: before the first upload to an instance avatar-sync has no record of (a first
//! run, a lost state directory, a fleet handed over from scripts, a shard that moved), its
//! live picture is read; when it already is the picture to send (compared perceptually:
//! WhatsApp re-encodes and resizes what it shows), it is recorded as applied without a
//! call, sparing WhatsApp's ten-second limit. Any failure to read falls back to uploading.

use crate::gateway::{Gateway, Reader};
use crate::manifest::{ApiToken, Instance};
use crate::metrics::{GET_WA_SETTINGS, Metrics};
use crate::picture::process;
use std::time::Instant;

/// The live picture's URL when `instance` already shows `upload`; `None` when it does not,
/// or when that cannot be told.
pub(super) async fn already_live<G: Gateway>(
    gateway: &G,
    instance: &Instance,
    token: &ApiToken,
    upload: &[u8],
    metrics: &Metrics,
) -> Option<String> {
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
    let cannot = |why: &str| {
        tracing::debug!(instance = %instance.id, "cannot adopt ({why}): uploading");
    };
    let settings = match settings {
        Ok(settings) if settings.state.is_authorized() => settings,
        Ok(settings) => {
            cannot(&format!("stateInstance is {}", settings.state.label()));
            return None;
        }
        Err(failure) => {
            cannot(&format!("{}: {}", failure.kind, failure.detail));
            return None;
        }
    };
    let url = settings.avatar?;
    let live = match gateway.avatar_file(&url).await {
        Ok(live) => live,
        Err(failure) => {
            cannot(&format!("{}: {}", failure.kind, failure.detail));
            return None;
        }
    };
    let upload = upload.to_vec();
    let compare = move || -> Option<bool> {
        let (live, wanted) = (
            process::perceptual_hash(&live),
            process::perceptual_hash(&upload),
        );
        Some(live.ok()?.matches(wanted.ok()?))
    };
    match tokio::task::spawn_blocking(compare).await {
        Ok(Some(true)) => Some(url),
        Ok(Some(false)) => {
            tracing::debug!(instance = %instance.id, "another picture is live: uploading");
            None
        }
        _ => {
            cannot("the live picture cannot be decoded");
            None
        }
    }
}
