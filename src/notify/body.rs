//! A message's body, as each format writes it. The JSON body is versioned (`version: 1`;
//! a field is only ever added, and a change of meaning is a new version) and documented in
//! `docs/notifications.md`; Slack's is an incoming webhook's `{"text": ...}`.
//!
//! Nothing secret goes in: no token (the gateway's details are scrubbed of it, and are
//! scrubbed again here), no URL of GREEN-API, and no file path outside the manifest's
//! folder (a word that looks like an absolute path is replaced by `[path]`).

use super::event::{Event, EventKind};
use crate::manifest::NotifyFormat;
use serde_json::{Value, json};

/// The JSON body's version.
pub(crate) const BODY_VERSION: u32 = 1;
/// The most of a detail a message carries, in characters.
const MAX_DETAIL: usize = 300;

/// The body of the message `id` telling `event` in `format`, with the revision (a commit
/// id) the daemon acts on, when known.
pub(crate) fn render(
    format: NotifyFormat,
    id: &str,
    event: &Event,
    revision: Option<&str>,
) -> String {
    match format {
        NotifyFormat::Json => json_body(id, event, revision).to_string(),
        NotifyFormat::Slack => json!({ "text": text(event) }).to_string(),
    }
}

/// The versioned JSON body.
pub(crate) fn json_body(id: &str, event: &Event, revision: Option<&str>) -> Value {
    let subject = event.kind.subject();
    let (outcome, detail, consecutive) = match &event.kind {
        EventKind::Applied(_) => ("applied", None, None),
        EventKind::Failed {
            outcome,
            detail,
            consecutive,
            ..
        } => (*outcome, Some(scrub(detail)), Some(*consecutive)),
        EventKind::Recovered { failures, .. } => ("applied", None, Some(*failures)),
        EventKind::Drifted { why, .. } => ("drifted", Some(scrub(why)), None),
        EventKind::Halted(_) => ("halted", None, None),
        EventKind::Wave(_) => ("landed", None, None),
    };
    let rollout = event.kind.rollout().map(|news| {
        json!({
            "revision": news.revision,
            "wave": news.wave,
            "waves": news.waves,
            "instances": news.instances,
            "failed": news.failed,
            "failures": (news.failures.iter())
                .map(|(id, why)| json!({ "instance": id.to_string(), "reason": scrub(why) }))
                .collect::<Vec<_>>(),
            "nextWaveAt": news.next_wave_at.map(crate::clock::rfc3339),
        })
    });
    let mut body = json!({
        "version": BODY_VERSION,
        "id": id,
        "event": event.kind.label(),
        "instance": subject.map(|s| s.id.to_string()),
        "revision": revision,
        "picture": subject.and_then(|s| s.picture.clone()),
        "desiredSha256": subject.map(|s| s.desired.to_string()),
        "appliedSha256": subject.and_then(|s| s.applied.map(|d| d.to_string())),
        "outcome": outcome,
        "consecutive": consecutive,
        "detail": detail,
        "time": crate::clock::rfc3339(event.at),
        "text": text(event),
    });
    // Only in a rollout's messages: an instance's body is as it was.
    if let Some(rollout) = rollout {
        body["rollout"] = rollout;
    }
    body
}

/// One line for people (Slack's message, and the JSON body's `text`).
pub(crate) fn text(event: &Event) -> String {
    let short = |d: &crate::picture::Digest| d.to_string()[..12].to_owned();
    match &event.kind {
        EventKind::Applied(s) => format!(
            "avatar-sync: instance {} shows picture {} now",
            s.id,
            short(&s.desired)
        ),
        EventKind::Failed {
            subject,
            outcome,
            detail,
            consecutive,
        } => format!(
            "avatar-sync: instance {} failed {consecutive} time(s) in a row to set picture {} \
             ({outcome}: {})",
            subject.id,
            short(&subject.desired),
            scrub(detail)
        ),
        EventKind::Recovered { subject, failures } => format!(
            "avatar-sync: instance {} recovered: picture {} set after {failures} failure(s)",
            subject.id,
            short(&subject.desired)
        ),
        EventKind::Drifted { subject, why } => format!(
            "avatar-sync: instance {} drifted: {} (it should show picture {})",
            subject.id,
            scrub(why),
            short(&subject.desired)
        ),
        EventKind::Halted(news) => {
            let names: Vec<String> = (news.failures.iter().take(5))
                .map(|(id, why)| format!("{id} ({})", scrub(why)))
                .collect();
            format!(
                "avatar-sync: the rollout of revision {} HALTED at wave {} of {}: {} of its {} \
                 instances failed: {}{}; nothing more is uploaded until it is resumed or a \
                 new revision comes",
                &news.revision[..12.min(news.revision.len())],
                news.wave,
                news.waves,
                news.failed,
                news.instances,
                names.join(", "),
                if news.failed > names.len() {
                    ", …"
                } else {
                    ""
                }
            )
        }
        EventKind::Wave(news) => {
            let next = match news.next_wave_at {
                Some(at) => format!(
                    "; wave {} starts at {}",
                    news.wave + 1,
                    crate::clock::rfc3339(at)
                ),
                None => "; the rollout is done".to_owned(),
            };
            format!(
                "avatar-sync: the rollout of revision {}: wave {} of {} landed ({} instances, \
                 {} failed){next}",
                &news.revision[..12.min(news.revision.len())],
                news.wave,
                news.waves,
                news.instances,
                news.failed
            )
        }
    }
}

/// `text` with every word that looks like an absolute file path replaced by `[path]`,
/// whatever looks like a token already redacted kept so, and cut to [`MAX_DETAIL`].
pub(crate) fn scrub(text: &str) -> String {
    let words: Vec<String> = text
        .split(' ')
        .map(|word| {
            let bare = word.trim_start_matches(['(', '"', '\'', '`']);
            if bare.starts_with('/') || bare.starts_with("~/") {
                "[path]".to_owned()
            } else {
                word.to_owned()
            }
        })
        .collect();
    let joined = words.join(" ");
    match joined.char_indices().nth(MAX_DETAIL) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_manifest_folder_never_reach_a_message() {
        assert_eq!(
            scrub("cannot read /etc/avatar-sync/secret.token (\"/root/x\") here"),
            "cannot read [path] [path] here"
        );
        assert_eq!(scrub(&"x".repeat(400)).chars().count(), MAX_DETAIL + 1);
    }
}
