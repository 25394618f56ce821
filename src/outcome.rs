//! What can happen to one instance, as labelled kinds shared by the gateway (which
//! classifies answers), the planner (which decides how each kind is retried) and the state
//! (which records them): the outcome of a call, and a problem found without calling.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The longest one call may take, from its start to its answer: the gateway's request
/// timeout. A call whose answer was never recorded (the process was killed meanwhile) may
/// have been answered this long after it started, and the throttle counts from there.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(30);

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
    /// Every kind, in the contract table's order (for tests that go through them all).
    #[cfg(test)]
    pub const ALL: [Self; 13] = [
        Self::RateOverlimit,
        Self::NotApplied,
        Self::Unauthorized,
        Self::Forbidden,
        Self::RefusedBytes,
        Self::InstanceStarting,
        Self::InstanceNotUsable,
        Self::TooManyRequests,
        Self::QuotaExceeded,
        Self::ServerError,
        Self::Timeout,
        Self::Connection,
        Self::UnexpectedAnswer,
    ];

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

/// A problem of one instance found without calling the API (its picture or token is
/// unusable): never sent, reported with a stable label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalProblem {
    /// What kind of problem: its stable label is [`LocalKind::label`].
    pub kind: LocalKind,
    /// One line for people.
    pub message: String,
}

/// The kinds of [`LocalProblem`], each with the stable label `--json`, logs and metrics use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LocalKind {
    /// The picture file does not exist.
    PictureMissing,
    /// The picture file cannot be read (or was not read in this pass).
    PictureUnreadable,
    /// The picture file, or its decoded image, is larger than allowed.
    PictureTooLarge,
    /// The picture file is still being written: looked at again once still.
    PictureChanging,
    /// The picture file is empty.
    PictureEmpty,
    /// Not a JPEG, PNG or WebP.
    PictureUnsupportedFormat,
    /// The picture's data ends early.
    PictureTruncated,
    /// The picture cannot be decoded.
    PictureUndecodable,
    /// The prepared picture cannot be encoded.
    PictureUnencodable,
    /// The `picture:` path cannot be had (`${NAME}` unset, say).
    PicturePath,
    /// The token cannot be read here.
    TokenUnavailable,
    /// The token is not letters and digits.
    TokenInvalid,
    /// The state directory cannot keep what the run needs (a prepared picture).
    StateWrite,
}

impl LocalKind {
    /// The stable machine label.
    pub fn label(self) -> &'static str {
        match self {
            Self::PictureMissing => "picture-missing",
            Self::PictureUnreadable => "picture-unreadable",
            Self::PictureTooLarge => "picture-too-large",
            Self::PictureChanging => "picture-changing",
            Self::PictureEmpty => "picture-empty",
            Self::PictureUnsupportedFormat => "picture-unsupported-format",
            Self::PictureTruncated => "picture-truncated",
            Self::PictureUndecodable => "picture-undecodable",
            Self::PictureUnencodable => "picture-unencodable",
            Self::PicturePath => "picture-path",
            Self::TokenUnavailable => "token-unavailable",
            Self::TokenInvalid => "token-invalid",
            Self::StateWrite => "state-write",
        }
    }
}

impl LocalProblem {
    /// A problem of `kind`, said as `message`.
    pub fn new(kind: LocalKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}
