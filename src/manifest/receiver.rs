//! A receiver of `notify:` as validated: where messages go (a URL under the same rules as
//! `apiUrl`, kept exactly as written since a webhook's path is its address), in which
//! format, signed with which secret, told which events, and after how many failures in a
//! row. Its `Debug` names only the host: a Slack webhook's URL is itself a secret.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::path::PathBuf;

/// How a message's body is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyFormat {
    /// The documented, versioned JSON body (`docs/notifications.md`).
    Json,
    /// A Slack incoming webhook's `{"text": ...}`.
    Slack,
}

/// The events a receiver can be told, as `events:` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventName {
    /// A picture was set.
    Applied,
    /// Uploads failed `after` times in a row (and, later, once, that they work again).
    Failed,
    /// The live picture is not the one applied.
    Drifted,
    /// A rollout halted (issue 22).
    Halted,
    /// A rollout's wave, one digest message each (issue 22).
    Rollout,
}

impl EventName {
    /// Every event, in `events:` order.
    pub const ALL: [EventName; 5] = [
        Self::Applied,
        Self::Failed,
        Self::Drifted,
        Self::Halted,
        Self::Rollout,
    ];

    /// The name as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Failed => "failed",
            Self::Drifted => "drifted",
            Self::Halted => "halted",
            Self::Rollout => "rollout",
        }
    }

    /// The event `name` names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

/// One receiver of `notify:`.
#[derive(Clone, PartialEq, Eq)]
pub struct Receiver {
    /// Where messages are POSTed (never logged: it may carry a secret).
    pub url: WebhookUrl,
    /// How bodies are written.
    pub format: NotifyFormat,
    /// The file holding the HMAC secret, read at each send (so a rotated one is used at
    /// once), relative paths resolved against the manifest's folder.
    pub secret_file: Option<PathBuf>,
    /// The events told.
    pub events: Vec<EventName>,
    /// A failure is told once this many have happened in a row (1: the first).
    pub after: u32,
    /// The manifest line the receiver starts on.
    pub line: u64,
}

impl Receiver {
    /// A stable, one-way name for the receiver (16 hex digits of its URL's SHA-256): the
    /// outbox and the record of what was told key on it, and logs name it, so neither
    /// keeps nor shows the URL.
    pub fn key(&self) -> String {
        self.url.key()
    }

    /// Whether `event` is told to this receiver.
    pub fn tells(&self, event: EventName) -> bool {
        self.events.contains(&event)
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("url", &self.url)
            .field("format", &self.format)
            .field("signed", &self.secret_file.is_some())
            .field("events", &self.events)
            .field("after", &self.after)
            .finish()
    }
}

/// A receiver's URL: `https://`, or `http://` to a loopback host, as `apiUrl`; no user
/// name, password or fragment. Its `Debug` and `Display` show only the scheme and host.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// Validates `text` as a receiver's URL.
    pub fn parse(text: &str) -> Result<Self, String> {
        // Named by its host only: a receiver's URL is itself a secret (Slack's).
        let host = (reqwest::Url::parse(text.trim()).ok())
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_default();
        let who = match host.is_empty() {
            true => "notify url".to_owned(),
            false => format!("notify url to {host}"),
        };
        let url = super::values::secure_url(text, &who, "")?;
        if url.fragment().is_some() {
            return Err(format!("{who} must not have a fragment"));
        }
        Ok(Self(url.as_str().to_owned()))
    }

    /// The whole URL, to send to (never to show).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// See [`Receiver::key`].
    pub fn key(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `https://host` (with the port when one is written): what logs may show.
    pub fn shown(&self) -> String {
        match reqwest::Url::parse(&self.0) {
            Ok(url) => {
                let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                format!("{}://{}{port}", url.scheme(), url.host_str().unwrap_or(""))
            }
            Err(_) => "?".to_owned(),
        }
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/[redacted]", self.shown())
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.shown(), self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_url_follows_the_api_url_rules_and_never_shows_its_path() {
        let url = WebhookUrl::parse("https://hooks.slack.com/services/T0/B0/secret").unwrap();
        assert_eq!(format!("{url:?}"), "https://hooks.slack.com/[redacted]");
        assert!(!format!("{url}").contains("secret"));
        assert_eq!(url.key().len(), 16);
        assert!(WebhookUrl::parse("http://127.0.0.1:8080/hook?x=1").is_ok());
        assert!(WebhookUrl::parse("http://hooks.example.com/x").is_err());
        assert!(WebhookUrl::parse("ftp://hooks.example.com/x").is_err());
        assert!(WebhookUrl::parse("https://user:pw@hooks.example.com/x").is_err());
    }
}
