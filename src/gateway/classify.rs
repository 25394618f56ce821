//! GREEN-API answers → typed outcomes, by the contract's table (section 5). Pure: status
//! and body in, [`CallOutcome`] out. The outcome still holds server text; the gateway
//! scrubs it of the token (`scrub.rs`) before handing it out.

use crate::outcome::{CallFailure, CallOutcome, FailureKind};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    set_profile_picture: Option<bool>,
    url_avatar: Option<String>,
    reason: Option<String>,
    code: Option<u16>,
    description: Option<String>,
}

/// Classifies the answer to a GREEN-API read: a 200 without an error `code` is the read's
/// answer; anything else fails as the contract's table says. Pure.
pub fn classify_read(status: u16, body: &[u8]) -> Result<(), CallFailure> {
    #[derive(Deserialize)]
    struct Coded {
        code: Option<u16>,
        description: Option<String>,
    }
    if status != 200 {
        return match classify(status, body) {
            CallOutcome::Failed(failure) => Err(failure),
            CallOutcome::Applied { .. } => Ok(()),
        };
    }
    match serde_json::from_slice::<Coded>(body) {
        Ok(Coded {
            code: Some(code @ (401 | 403 | 404)),
            description,
        }) => Err(CallFailure {
            kind: if code == 401 {
                FailureKind::Unauthorized
            } else {
                FailureKind::Forbidden
            },
            detail: format!(
                "GREEN-API answered 200 with code {code} {}",
                excerpt(description.unwrap_or_default().as_bytes())
            ),
        }),
        _ => Ok(()),
    }
}

/// Classifies a GREEN-API answer (status and body) by the contract's table. Pure.
pub fn classify(status: u16, body: &[u8]) -> CallOutcome {
    let text = excerpt(body);
    let fail = |kind, detail: String| CallOutcome::Failed(CallFailure { kind, detail });
    match status {
        200 => classify_200(body, &text),
        400 => {
            let lower = text.to_ascii_lowercase();
            let kind =
                if lower.contains("file is empty") || lower.contains("unsupported media type") {
                    FailureKind::RefusedBytes
                } else if lower.contains("starting process") {
                    FailureKind::InstanceStarting
                } else if ["not authorized", "expired", "deleted"]
                    .iter()
                    .any(|w| lower.contains(w))
                {
                    FailureKind::InstanceNotUsable
                } else {
                    FailureKind::UnexpectedAnswer
                };
            fail(kind, format!("GREEN-API answered 400: {text}"))
        }
        401 => fail(
            FailureKind::Unauthorized,
            "GREEN-API answered 401 Unauthorized: the apiTokenInstance is wrong".to_owned(),
        ),
        403 | 404 => fail(
            FailureKind::Forbidden,
            format!(
                "GREEN-API answered {status}: the idInstance or apiUrl is wrong for this token{}",
                suffix(&text)
            ),
        ),
        429 => fail(
            FailureKind::TooManyRequests,
            "GREEN-API answered 429 Too Many Requests".to_owned(),
        ),
        466 => fail(
            FailureKind::QuotaExceeded,
            "GREEN-API answered 466: the account's quota is used up".to_owned(),
        ),
        _ => fail(
            FailureKind::ServerError,
            format!("GREEN-API answered {status}{}", suffix(&text)),
        ),
    }
}

fn classify_200(body: &[u8], text: &str) -> CallOutcome {
    let fail = |kind, detail: String| CallOutcome::Failed(CallFailure { kind, detail });
    let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
        return fail(
            FailureKind::UnexpectedAnswer,
            format!(
                "GREEN-API answered 200 with a body that is not the expected JSON{}",
                suffix(text)
            ),
        );
    };
    if let Some(code) = answer.code.filter(|&c| c != 200) {
        let description = excerpt(answer.description.unwrap_or_default().as_bytes());
        return match code {
            401 => fail(
                FailureKind::Unauthorized,
                format!(
                    "GREEN-API answered 200 with code 401 {description}: the apiTokenInstance is wrong"
                ),
            ),
            403 | 404 => fail(
                FailureKind::Forbidden,
                format!("GREEN-API answered 200 with code {code} {description}"),
            ),
            _ => fail(
                FailureKind::UnexpectedAnswer,
                format!("GREEN-API answered 200 with code {code} {description}"),
            ),
        };
    }
    match (answer.set_profile_picture, answer.reason.as_deref()) {
        (Some(true), _) => CallOutcome::Applied {
            url_avatar: answer.url_avatar.filter(|u| !u.is_empty()),
        },
        (Some(false), Some(reason)) if reason.eq_ignore_ascii_case("rate-overlimit") => fail(
            FailureKind::RateOverlimit,
            "WhatsApp's rate limit (rate-overlimit): at most one picture change per 10 s"
                .to_owned(),
        ),
        (Some(false), reason) => fail(
            FailureKind::NotApplied,
            format!(
                "GREEN-API did not apply the picture (reason: {})",
                excerpt(reason.unwrap_or("none").as_bytes())
            ),
        ),
        (None, _) => fail(
            FailureKind::UnexpectedAnswer,
            format!(
                "GREEN-API answered 200 without setProfilePicture{}",
                suffix(text)
            ),
        ),
    }
}

fn suffix(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// At most 160 characters of a body, on one line, without control characters.
fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 160;
    let text = String::from_utf8_lossy(body);
    let one_line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if one_line.chars().count() > MAX {
        let cut: String = one_line.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}
