//! Runs one planned call through the gateway: re-reads the picture, makes sure it is still
//! exactly the bytes the plan decided on, uploads it, and logs one line with the instance,
//! the outcome and the duration.
//!
//! Pictures are not kept in memory between planning and sending (a fleet shares many
//! megabytes of them); re-reading and re-checking the digest here also means a picture
//! rewritten mid-pass is never uploaded under the wrong digest.

use crate::clock::Clock;
use crate::gateway::{CallOutcome, Gateway, Upload};
use crate::manifest::{ApiToken, InstanceId, Manifest};
use crate::picture::{self, Digest, PictureError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// A call the plan decided on.
pub struct Call {
    /// The manifest the plan was made from.
    pub manifest: Arc<Manifest>,
    /// Which of its instances.
    pub index: usize,
    /// The picture's file.
    pub path: PathBuf,
    /// The picture the plan decided to send.
    pub digest: Digest,
    /// The fingerprint of the apiUrl and token used (recorded with a failure).
    pub credentials: String,
    /// The instance's token.
    pub token: ApiToken,
}

/// What came back from a call.
#[derive(Debug)]
pub enum Landed {
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
    },
    /// The picture changed (or broke) since it was planned; nothing was sent.
    PictureChanged {
        /// Which instance.
        id: InstanceId,
        /// The picture as it is now.
        now: Result<Digest, PictureError>,
    },
}

/// Makes the call and reports how it landed.
pub async fn run(call: Call, gateway: Gateway, clock: Clock) -> Landed {
    let instance = &call.manifest.instances[call.index];
    let path = call.path;
    let read_path = path.clone();
    let read = tokio::task::spawn_blocking(move || picture::read(&read_path))
        .await
        .unwrap_or_else(|e| {
            Err(PictureError::Unreadable {
                path: path.clone(),
                reason: format!("reading was interrupted: {e}"),
            })
        });
    let bytes = match read {
        Ok(picture) if picture.digest == call.digest => picture.bytes,
        other => {
            return Landed::PictureChanged {
                id: instance.id.clone(),
                now: other.map(|p| p.digest),
            };
        }
    };
    let started = Instant::now();
    let outcome = gateway
        .set_profile_picture(Upload {
            api_url: &instance.api_url,
            id: &instance.id,
            token: &call.token,
            filename: upload_filename(&path),
            bytes,
        })
        .await;
    let finished_at = clock.now();
    let duration_ms = started.elapsed().as_millis() as u64;
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
    Landed::Called {
        id: instance.id.clone(),
        digest: call.digest,
        credentials: call.credentials,
        outcome,
        finished_at,
    }
}

/// The multipart filename: the picture's file stem with `.jpg`.
pub fn upload_filename(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "picture".to_owned());
    format!("{stem}.jpg")
}
