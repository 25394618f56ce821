//! What the daemon counts, for Prometheus: instances per status, GREEN-API requests by
//! method and outcome with their durations, passes, and the manifest in force. No label
//! names an instance, so 10,000 instances are a handful of series, not 10,000.
//!
//! Built on `prometheus-client` (the Prometheus project's own Rust client): typed metric
//! families, and a text encoder that writes the OpenMetrics format Prometheus scrapes.

use crate::report::{Calls, Summary, short_sha};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// The GREEN-API method a request called.
pub(crate) const SET_PROFILE_PICTURE: &str = "setProfilePicture";
/// The `method` label of a `getWaSettings` read.
pub(crate) const GET_WA_SETTINGS: &str = "getWaSettings";
/// The `method` label of a `getStateInstance` read.
pub(crate) const GET_STATE_INSTANCE: &str = "getStateInstance";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The `outcome`s of `avatar_sync_notifications_total`, all shown from the start.
pub(crate) const NOTIFICATION_OUTCOMES: [&str; 3] = ["sent", "failed", "dropped"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Sha256Label {
    sha256: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommitLabel {
    commit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// The daemon's metrics and the registry that prints them.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    instances: Family<StatusLabel, Gauge>,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<MethodLabel, Histogram>,
    pass_duration: Histogram,
    last_pass: Gauge<f64, AtomicU64>,
    manifest_ok: Gauge,
    manifest_info: Family<Sha256Label, Gauge>,
    revision_info: Family<CommitLabel, Gauge>,
    revision_verified: Family<CommitLabel, Gauge>,
    rollout_wave: Gauge,
    rollout_halted: Gauge,
    notifications: Family<OutcomeLabel, Counter>,
    outbox: Gauge,
    /// Requests so far, per method (for `--json` and the logs).
    calls: [AtomicU64; 3],
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric registered, at zero.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("avatar_sync");
        let instances = Family::<StatusLabel, Gauge>::default();
        registry.register(
            "instances",
            "Instances of the manifest in each status",
            instances.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "GREEN-API requests, by method and outcome (applied, or the failure's label)",
            requests.clone(),
        );
        let request_duration = Family::<MethodLabel, Histogram>::new_with_constructor(|| {
            // 10 ms to about 41 s: a call answers in well under a second, or times out at 30 s.
            Histogram::new(exponential_buckets(0.01, 2.0, 13))
        });
        registry.register(
            "request_duration_seconds",
            "How long GREEN-API requests took, by method",
            request_duration.clone(),
        );
        // 1 ms to about 16 s: a no-op pass over 10,000 instances takes about 10 ms.
        let pass_duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "pass_duration_seconds",
            "How long planning a pass took (reading pictures and tokens, planning every instance)",
            pass_duration.clone(),
        );
        let last_pass = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_pass_timestamp_seconds",
            "When the last pass was planned, in seconds since the Unix epoch",
            last_pass.clone(),
        );
        let manifest_ok = Gauge::default();
        registry.register(
            "manifest_last_load_success",
            "1 when the last manifest read was valid, 0 when it was ignored as invalid",
            manifest_ok.clone(),
        );
        let manifest_info = Family::<Sha256Label, Gauge>::default();
        registry.register(
            "manifest_info",
            "The manifest in force, by the SHA-256 of its bytes (always 1)",
            manifest_info.clone(),
        );
        let revision_info = Family::<CommitLabel, Gauge>::default();
        registry.register(
            "revision_info",
            "--verify-signers: the verified revision in force, by its short commit id (always 1)",
            revision_info.clone(),
        );
        let revision_verified = Family::<CommitLabel, Gauge>::default();
        registry.register(
            "revision_verified",
            "--verify-signers: 1 when the revision at HEAD is verified and in force, 0 when it \
             is not verified (the last verified one stays in force)",
            revision_verified.clone(),
        );
        let rollout_wave = Gauge::default();
        registry.register(
            "rollout_wave",
            "rollout: the wave released of the revision's rollout (from 1); 0 when no rollout \
             is in progress",
            rollout_wave.clone(),
        );
        let rollout_halted = Gauge::default();
        registry.register(
            "rollout_halted",
            "rollout: 1 when the revision's rollout halted (nothing more is uploaded for it \
             until it is resumed or a new revision comes), else 0",
            rollout_halted.clone(),
        );
        let notifications = Family::<OutcomeLabel, Counter>::default();
        for outcome in NOTIFICATION_OUTCOMES {
            let _ = notifications.get_or_create(&OutcomeLabel { outcome });
        }
        registry.register(
            "notifications",
            "Messages to the receivers of notify: sent (a 2xx), failed (an attempt that will be \
             retried) or dropped (the outbox was full, or the receiver left the manifest)",
            notifications.clone(),
        );
        let outbox = Gauge::default();
        registry.register(
            "notification_outbox_messages",
            "Messages in the outbox, not yet delivered",
            outbox.clone(),
        );
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "build_info",
            "The avatar-sync version (always 1)",
            build_info,
        );
        let metrics = Self {
            registry,
            instances,
            requests,
            request_duration,
            pass_duration,
            last_pass,
            manifest_ok,
            manifest_info,
            revision_info,
            revision_verified,
            rollout_wave,
            rollout_halted,
            notifications,
            outbox,
            calls: Default::default(),
        };
        metrics.set_instances(&Summary::default());
        metrics
    }

    /// One request of `method` finished with `outcome` after `took`.
    pub(crate) fn request(&self, method: &'static str, outcome: &'static str, took: Duration) {
        let slot = [SET_PROFILE_PICTURE, GET_WA_SETTINGS, GET_STATE_INSTANCE]
            .iter()
            .position(|m| *m == method);
        if let Some(slot) = slot {
            self.calls[slot].fetch_add(1, Ordering::Relaxed);
        }
        self.requests
            .get_or_create(&RequestLabels { method, outcome })
            .inc();
        self.request_duration
            .get_or_create(&MethodLabel { method })
            .observe(took.as_secs_f64());
    }

    /// A message to a receiver was `outcome` (one of [`NOTIFICATION_OUTCOMES`]).
    pub(crate) fn notification(&self, outcome: &'static str) {
        self.notifications
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// How many messages wait in the outbox.
    pub(crate) fn set_outbox(&self, messages: usize) {
        self.outbox.set(i64::try_from(messages).unwrap_or(i64::MAX));
    }

    /// GREEN-API requests so far, per method.
    pub(crate) fn calls(&self) -> Calls {
        let [set, settings, state] = &self.calls;
        Calls {
            set_profile_picture: set.load(Ordering::Relaxed),
            get_wa_settings: settings.load(Ordering::Relaxed),
            get_state_instance: state.load(Ordering::Relaxed),
        }
    }

    /// How many instances are in each status now (applied ones count as in sync).
    pub(crate) fn set_instances(&self, s: &Summary) {
        for (status, count) in s.standings() {
            let status = status.label();
            let count = i64::try_from(count).unwrap_or(i64::MAX);
            self.instances
                .get_or_create(&StatusLabel { status })
                .set(count);
        }
    }

    /// A pass was planned at `at`, taking `took`.
    pub(crate) fn pass(&self, at: SystemTime, took: Duration) {
        self.pass_duration.observe(took.as_secs_f64());
        let since_epoch = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.last_pass.set(since_epoch.as_secs_f64());
    }

    /// The manifest was read: valid (`Some(sha256)` of the manifest now in force) or not.
    pub(crate) fn manifest_loaded(&self, in_force: Option<&str>) {
        self.manifest_ok.set(i64::from(in_force.is_some()));
        if let Some(sha256) = in_force {
            self.manifest_info.clear();
            self.manifest_info
                .get_or_create(&Sha256Label {
                    sha256: sha256.to_owned(),
                })
                .set(1);
        }
    }

    /// With signed revisions: the commit in force, and a newer one at `HEAD` that is not
    /// verified (else `HEAD` is the one in force).
    pub(crate) fn revision(&self, in_force: &str, unverified_head: Option<&str>) {
        let label = |commit: &str| CommitLabel {
            commit: short_sha(commit).to_owned(),
        };
        self.revision_info.clear();
        self.revision_info.get_or_create(&label(in_force)).set(1);
        self.revision_verified.clear();
        let (head, verified) = match unverified_head {
            Some(newer) => (newer, 0),
            None => (in_force, 1),
        };
        self.revision_verified
            .get_or_create(&label(head))
            .set(verified);
    }

    /// The rollout in progress: the wave released (from 1) and whether it halted; `None`
    /// when none is in progress.
    pub(crate) fn rollout(&self, rollout: Option<(usize, bool)>) {
        let (wave, halted) = rollout.unwrap_or((0, false));
        self.rollout_wave
            .set(i64::try_from(wave).unwrap_or(i64::MAX));
        self.rollout_halted.set(i64::from(halted));
    }

    /// The text Prometheus scrapes (OpenMetrics).
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The same in the classic Prometheus text format (0.0.4), for tools that read only
    /// that: a counter's `HELP` and `TYPE` name its `_total` series, and there is no `# EOF`.
    pub(crate) fn encode_classic(&self) -> String {
        classic(&self.encode())
    }
}

/// OpenMetrics text → the classic Prometheus text format.
fn classic(openmetrics: &str) -> String {
    let counters: Vec<&str> = (openmetrics.lines())
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_there_from_the_start_without_instance_labels() {
        let metrics = Metrics::new();
        metrics.set_instances(&Summary {
            in_sync: 2,
            applied: 1,
            failed: 1,
            ..Summary::default()
        });
        metrics.request(SET_PROFILE_PICTURE, "applied", Duration::from_millis(20));
        metrics.request(
            SET_PROFILE_PICTURE,
            "unauthorized",
            Duration::from_millis(30),
        );
        metrics.request(SET_PROFILE_PICTURE, "applied", Duration::from_millis(40));
        metrics.manifest_loaded(Some("abc123"));
        metrics.pass(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            Duration::from_millis(5),
        );
        let text = metrics.encode();
        for line in [
            "avatar_sync_instances{status=\"in-sync\"} 3",
            "avatar_sync_instances{status=\"failed\"} 1",
            "avatar_sync_instances{status=\"pending\"} 0",
            "avatar_sync_requests_total{method=\"setProfilePicture\",outcome=\"applied\"} 2",
            "avatar_sync_requests_total{method=\"setProfilePicture\",outcome=\"unauthorized\"} 1",
            "avatar_sync_request_duration_seconds_count{method=\"setProfilePicture\"} 3",
            "avatar_sync_pass_duration_seconds_count 1",
            "avatar_sync_last_pass_timestamp_seconds 1700000000.0",
            "avatar_sync_manifest_last_load_success 1",
            "avatar_sync_manifest_info{sha256=\"abc123\"} 1",
            "avatar_sync_build_info{version=\"0.1.0\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        let classic = metrics.encode_classic();
        assert!(
            classic.contains("# TYPE avatar_sync_requests_total counter\n"),
            "{classic}"
        );
        assert!(
            classic.contains("# HELP avatar_sync_requests_total GREEN-API"),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE avatar_sync_instances gauge\n"),
            "{classic}"
        );
        assert!(!classic.contains("# EOF"), "{classic}");
    }

    #[test]
    fn a_broken_manifest_keeps_the_info_of_the_one_in_force() {
        let metrics = Metrics::new();
        metrics.manifest_loaded(Some("first"));
        metrics.manifest_loaded(None);
        let text = metrics.encode();
        assert!(
            text.contains("avatar_sync_manifest_last_load_success 0\n"),
            "{text}"
        );
        assert!(
            text.contains("avatar_sync_manifest_info{sha256=\"first\"} 1\n"),
            "{text}"
        );
        metrics.manifest_loaded(Some("second"));
        let text = metrics.encode();
        assert!(!text.contains("first"), "{text}");
    }
}
