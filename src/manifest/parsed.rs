//! The manifest as parsed, before validation: what [`super::yaml`] read, each value with
//! its line. This is the form [`super::validate`] reads and the
//! form [`super::cache`] keeps, so a cached parse validates exactly as a fresh one.

use serde::{Deserialize, Serialize};

/// A value and the manifest line it was written on (written `[value, line]` in the cache).
#[derive(Serialize, Deserialize)]
pub(super) struct At<T>(pub(super) T, pub(super) u64);

impl<T> At<T> {
    pub(super) fn line(&self) -> u64 {
        self.1
    }
}

/// The whole manifest as written.
pub(super) struct ParsedManifest {
    /// Its top-level keys.
    pub(super) top: ParsedTop,
    /// Its instances, in order (a shard's: only its own).
    pub(super) instances: Vec<At<ParsedInstance>>,
    /// How many instances the manifest writes, in every shard.
    pub(super) written: usize,
}

/// The manifest's top-level keys as written, all but `instances`.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ParsedTop {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) api_url: Option<At<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) min_interval: Option<At<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) resync_interval: Option<At<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) adopt: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) drift: Option<At<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) drift_interval: Option<At<String>>,
    #[serde(default, skip_serializing_if = "ParsedProcessing::is_empty")]
    pub(super) processing: ParsedProcessing,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rollout: Option<At<ParsedRollout>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) windows: Vec<At<ParsedWindow>>,
    /// `notify:`, each receiver as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) notify: Vec<At<ParsedReceiver>>,
}

/// `rollout:` as written.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ParsedRollout {
    /// Each wave's amount, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) waves: Option<At<Vec<At<String>>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) verify: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) max_failures: Option<At<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) pause: Option<At<String>>,
}

/// One item of `windows:` as written.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ParsedWindow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) allow: Option<At<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) deny: Option<At<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) duration: Option<At<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) timezone: Option<At<String>>,
}

/// One receiver of `notify:` as written.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ParsedReceiver {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) url: Option<At<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) format: Option<At<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) secret_file: Option<At<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) events: Option<At<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) after: Option<At<u32>>,
}

/// One instance as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ParsedInstance {
    /// `idInstance` exactly as written (quoted or not).
    pub(super) id_instance: At<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) api_token_file: Option<At<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) api_token_env: Option<At<String>>,
    /// A secret: a manifest that has one is never cached, and it is never written out.
    #[serde(default, skip_serializing)]
    pub(super) api_token_instance: Option<At<String>>,
    pub(super) picture: At<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) api_url: Option<At<String>>,
    #[serde(default, skip_serializing_if = "ParsedProcessing::is_empty")]
    pub(super) processing: ParsedProcessing,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) drift: Option<At<String>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) suspend: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) canary: bool,
}

/// `fit`, `size`, `background`, `quality` as written at one level (top or instance).
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ParsedProcessing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) fit: Option<At<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) size: Option<At<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) background: Option<At<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) quality: Option<At<u8>>,
}

impl ParsedProcessing {
    fn is_empty(&self) -> bool {
        self.fit.is_none()
            && self.size.is_none()
            && self.background.is_none()
            && self.quality.is_none()
    }
}

impl ParsedManifest {
    /// Whether a token is written in the manifest (`apiTokenInstance`).
    pub(super) fn has_inline_token(&self) -> bool {
        self.instances
            .iter()
            .any(|instance| instance.0.api_token_instance.is_some())
    }
}
