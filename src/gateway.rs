//! The GREEN-API client: one `setProfilePicture` request in, one typed [`CallOutcome`] out.
//!
//! Every answer of the contract's table is classified into a [`FailureKind`] with a stable
//! label. Token redaction lives here: the token travels in the URL path, and HTTP client
//! errors print URLs, so every error is stripped of its URL and scrubbed of the token
//! before it leaves this file.

use crate::manifest::{ApiToken, ApiUrl, InstanceId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// How long to wait for a TCP + TLS connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one whole request may take, upload and answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong with a call, one kind per row of the contract's GREEN-API table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// 200 with `"reason": "rate-overlimit"`: WhatsApp's one call per 10 s.
    RateOverlimit,
    /// 200 with `setProfilePicture: false` and another reason.
    NotApplied,
    /// 401, or 200 with `{"code": 401}`: wrong token.
    Unauthorized,
    /// 403 or 404: wrong idInstance or host.
    Forbidden,
    /// 400 `File is empty` / `Unsupported media type`: these bytes are refused.
    RefusedBytes,
    /// 400 `instance in starting process try later`.
    InstanceStarting,
    /// 400 `not authorized`, `expired`, `deleted`: the instance is not usable.
    InstanceNotUsable,
    /// 429: GREEN-API's own rate limiter.
    TooManyRequests,
    /// 466: the account's quota is used up.
    QuotaExceeded,
    /// 499, 5xx or another status the contract does not name.
    ServerError,
    /// No answer within the request timeout.
    Timeout,
    /// Connection refused, reset or closed early; DNS or TLS failure.
    Connection,
    /// An answer whose body could not be understood.
    UnexpectedAnswer,
}

impl FailureKind {
    /// The stable machine label used in `--json`, logs and the state file.
    pub fn label(self) -> &'static str {
        match self {
            Self::RateOverlimit => "rate-overlimit",
            Self::NotApplied => "not-applied",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::RefusedBytes => "refused-bytes",
            Self::InstanceStarting => "instance-starting",
            Self::InstanceNotUsable => "instance-not-usable",
            Self::TooManyRequests => "too-many-requests",
            Self::QuotaExceeded => "quota-exceeded",
            Self::ServerError => "server-error",
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::UnexpectedAnswer => "unexpected-answer",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A failed call: its kind and a one-line explanation that never contains the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallFailure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// One line for people.
    pub detail: String,
}

/// The typed result of one `setProfilePicture` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// GREEN-API confirmed `"setProfilePicture": true`.
    Applied {
        /// The `urlAvatar` it answered, if any.
        url_avatar: Option<String>,
    },
    /// Anything else.
    Failed(CallFailure),
}

/// One upload: who, where, with which token, which bytes.
pub struct Upload<'a> {
    /// The instance's API host.
    pub api_url: &'a ApiUrl,
    /// The instance.
    pub id: &'a InstanceId,
    /// Its token.
    pub token: &'a ApiToken,
    /// The multipart filename, `<stem>.jpg`.
    pub filename: String,
    /// The JPEG bytes.
    pub bytes: Vec<u8>,
}

/// The GREEN-API HTTP client. Cheap to clone; connections are pooled and reused per host.
#[derive(Clone)]
pub struct Gateway {
    client: reqwest::Client,
}

/// The client could not be built (TLS roots unavailable, for example).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTP client: {0}")]
pub struct GatewayInitError(String);

impl Gateway {
    /// Builds the client: rustls, connect and total timeouts, no redirects (a redirect
    /// would carry the token to another URL), `User-Agent: avatar-sync/<version>`.
    pub fn new() -> Result<Self, GatewayInitError> {
        // Another part of the process may have installed a provider already; that one wins.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(crate::USER_AGENT)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // Reuse connections per host, but do not hoard them: a converge at high
            // --concurrency would otherwise leave dozens of idle buffers behind.
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(16)
            .build()
            .map_err(|e| GatewayInitError(error_chain(&e.without_url())))?;
        Ok(Self { client })
    }

    /// Sends one `setProfilePicture` request and classifies the answer.
    pub async fn set_profile_picture(&self, upload: Upload<'_>) -> CallOutcome {
        let token = upload.token.expose();
        match self.send(upload).await {
            Ok((status, body)) => classify_scrubbed(status, &body, token),
            Err(failure) => CallOutcome::Failed(failure).scrubbed(token),
        }
    }

    async fn send(&self, upload: Upload<'_>) -> Result<(u16, Vec<u8>), CallFailure> {
        let url = format!(
            "{}/waInstance{}/setProfilePicture/{}",
            upload.api_url,
            upload.id,
            upload.token.expose()
        );
        let part = reqwest::multipart::Part::bytes(upload.bytes)
            .file_name(upload.filename)
            .mime_str("image/jpeg")
            .map_err(transport_failure)?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let response = self
            .client
            .post(url)
            .multipart(form)
            .send()
            .await
            .map_err(transport_failure)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport_failure)?;
        Ok((status, body.to_vec()))
    }
}

impl CallOutcome {
    /// Removes the token from any text, in case a server or library echoed the URL.
    fn scrubbed(self, token: &str) -> Self {
        match self {
            Self::Failed(CallFailure { kind, detail }) => Self::Failed(CallFailure {
                kind,
                detail: redact(&detail, token),
            }),
            applied => applied,
        }
    }
}

/// Replaces every occurrence of `token` in `text` with `[redacted]`.
pub fn redact(text: &str, token: &str) -> String {
    if token.is_empty() {
        text.to_owned()
    } else {
        text.replace(token, "[redacted]")
    }
}

fn transport_failure(err: reqwest::Error) -> CallFailure {
    let kind = if err.is_timeout() {
        FailureKind::Timeout
    } else {
        FailureKind::Connection
    };
    CallFailure {
        kind,
        detail: error_chain(&err.without_url()),
    }
}

/// An error and its sources on one line: `a: b: c`, with repeats dropped.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    set_profile_picture: Option<bool>,
    url_avatar: Option<String>,
    reason: Option<String>,
    code: Option<u16>,
    description: Option<String>,
}

/// Removes `token` from the whole body, then classifies it. Scrubbing comes first: the
/// detail keeps only an excerpt of the body, and a cut could leave a prefix of the token
/// that no longer matches it.
pub fn classify_scrubbed(status: u16, body: &[u8], token: &str) -> CallOutcome {
    let body = redact(&String::from_utf8_lossy(body), token);
    classify(status, body.as_bytes())
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

#[cfg(test)]
mod tests;
