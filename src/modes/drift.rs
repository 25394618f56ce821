//! `--drift`: is what WhatsApp shows what the manifest wants? Read-only, like
//! `terraform plan -refresh-only`: one `getWaSettings` per instance, and the live picture's
//! file only when its URL's path is not the one GREEN-API answered when the desired picture
//! was applied (the signed query string changes without the picture changing). Pictures are
//! compared perceptually, since WhatsApp re-encodes and resizes what it was sent. No upload,
//! and nothing is written: it runs beside the daemon without its lock.

use crate::Error;
use crate::gateway::{HttpGateway, Reader};
use crate::manifest::Manifest;
use crate::metrics::Metrics;
use crate::picture::process;
use crate::plan::Desired;
use crate::reconcile::desired::{self, Pictures, Tokens};
use crate::reconcile::live::{self, Look, Wanted};
use crate::report::{Report, ReportKind, Row, Status};
use crate::state::StateDir;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Reads every instance's live picture and compares it with its desired one.
pub(crate) async fn drift(
    manifest: &Manifest,
    dir: &StateDir,
    concurrency: usize,
) -> Result<Report, Error> {
    let state = dir.load()?.take(dir);
    let (sources, mut prepared) = desired::prepare_in_memory(manifest, true);
    let targets: Vec<_> = {
        let mut pictures = Pictures::new(&sources, &mut prepared);
        (manifest.instances.iter())
            .map(|instance| desired::target(instance, &mut pictures, Tokens::Required, &state))
            .collect()
    };
    let gateway = HttpGateway::new()?;
    let metrics = Arc::new(Metrics::default());
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut reads = JoinSet::new();
    let mut rows: Vec<Row> = Vec::with_capacity(targets.len());
    // Many instances often share a picture: hash each once.
    let mut hashes = std::collections::HashMap::new();
    for (index, (instance, target)) in manifest.instances.iter().zip(&targets).enumerate() {
        let record = state.instances.get(&instance.id);
        let applied = record.and_then(|r| r.applied.as_ref());
        let mut row = Row {
            id_instance: instance.id.to_string(),
            picture: instance.picture.written.clone(),
            status: Status::InSync,
            desired_sha256: None,
            applied_sha256: applied.map(|a| a.sha256.to_string()),
            next_attempt_at: None,
            error: None,
            error_kind: None,
            state_instance: None,
            applied_at: applied.map(|a| a.at),
        };
        match &target.desired {
            Desired::Suspended => row.status = Status::Suspended,
            Desired::Unusable(problem) => {
                row.status = Status::Failed;
                row.error_kind = Some(problem.label.to_owned());
                row.error = Some(problem.message.clone());
            }
            Desired::Picture { digest, .. } => {
                row.desired_sha256 = Some(digest.to_string());
                let wanted = hashes
                    .entry(*digest)
                    .or_insert_with(|| prepared.bytes(*digest).map(process::perceptual_hash))
                    .clone();
                // Read whatever the planner says: an instance in sync needs its token here.
                match (instance.token.resolve(), wanted) {
                    (Ok(token), Some(Ok(wanted))) => {
                        let reader = Reader {
                            api_url: instance.api_url.clone(),
                            id: instance.id.clone(),
                            token,
                        };
                        // The URL GREEN-API answered when this very picture was applied.
                        let recorded = (applied.filter(|a| a.sha256 == *digest))
                            .and_then(|a| a.url_avatar.clone());
                        let (gateway, slots) = (gateway.clone(), Arc::clone(&slots));
                        let metrics = Arc::clone(&metrics);
                        reads.spawn(async move {
                            let _slot = slots.acquire_owned().await;
                            let wanted = Wanted::Hash(wanted);
                            let recorded = recorded.as_deref();
                            let found =
                                live::look(&gateway, &reader, &wanted, recorded, &metrics).await;
                            (index, found)
                        });
                    }
                    (Err(e), _) => {
                        row.status = Status::Failed;
                        row.error_kind = Some(e.label().to_owned());
                        row.error = Some(e.to_string());
                    }
                    (_, Some(Err(e))) => {
                        row.status = Status::Failed;
                        row.error_kind = Some(e.label().to_owned());
                        row.error = Some(format!("the desired picture: {e}"));
                    }
                    (_, None) => {
                        row.status = Status::Failed;
                        row.error_kind = Some("picture-unreadable".to_owned());
                        row.error = Some("the desired picture could not be prepared".to_owned());
                    }
                }
            }
        }
        rows.push(row);
    }
    while let Some(joined) = reads.join_next().await {
        let Ok((index, found)) = joined else {
            continue;
        };
        let row = &mut rows[index];
        match found {
            Look::Matches(_) => {}
            Look::Differs(why) => {
                row.status = Status::Drifted;
                row.error_kind = Some("drifted".to_owned());
                row.error = Some(why);
            }
            Look::Unknown { kind, why } => {
                row.status = Status::Failed;
                row.error_kind = Some(kind.to_owned());
                row.error = Some(why);
            }
        }
    }
    let mut report = Report::new(rows, ReportKind::Drift);
    report.calls = Some(metrics.calls());
    let s = &report.summary;
    tracing::info!(
        in_sync = s.in_sync,
        drifted = s.drifted,
        failed = s.failed,
        suspended = s.suspended,
        "drift checked"
    );
    Ok(report)
}
