//! The parsed manifest → a validated [`Manifest`]: every value checked and typed, every problem
//! collected (with its kind, line and instance) so one run shows everything to fix.

use super::drift::DriftMode;
use super::expand::{ExpandError, expand_vars, is_env_name};
use super::parsed::{
    At, ParsedInstance, ParsedManifest, ParsedProcessing, ParsedReceiver, ParsedTop,
};
use super::problem::{ManifestError, PictureRef, Problem, ProblemKind};
use super::processing::{Fit, Processing, parse_background};
use super::receiver::{EventName, NotifyFormat, Receiver, WebhookUrl};
use super::token::TokenSource;
use super::values::{ApiToken, ApiUrl, IdMap, InstanceId};
use super::{
    DEFAULT_API_URL, DEFAULT_MIN_INTERVAL, DEFAULT_RESYNC_INTERVAL, Instance, Manifest,
    PictureSource, SIZE_RANGE,
};
use crate::clock::{human_duration, parse_duration};

/// `apiTokenFile`, `apiTokenEnv`, `apiTokenInstance` as written.
type TokenSources = (Option<At<String>>, Option<At<String>>, Option<At<String>>);
use std::path::{Path, PathBuf};
use std::time::Duration;

#[path = "validate_policy.rs"]
mod policy;

pub(super) struct Validator<'a> {
    path: &'a Path,
    base: PathBuf,
    env: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

/// A manifest being validated: its top-level keys done, its instances added one by one.
pub(super) struct Building<'a> {
    validator: Validator<'a>,
    default_url: ApiUrl,
    defaults: Processing,
    default_drift: DriftMode,
    min_interval: Duration,
    resync_interval: Duration,
    drift_interval: Duration,
    adopt: bool,
    rollout: Option<super::RolloutPolicy>,
    windows: super::Windows,
    /// The line each `idInstance` was first defined at, to name it in a duplicate's problem.
    first_line: IdMap<u64>,
    instances: Vec<Instance>,
    /// How many instances the manifest writes, in every shard.
    written: usize,
    notify: Vec<Receiver>,
}

impl Building<'_> {
    /// Validates the next instance, keeping it if it has no problem.
    pub(super) fn add(&mut self, raw: At<ParsedInstance>) {
        let line = raw.line();
        let id = match InstanceId::parse_written(&raw.0.id_instance.0) {
            Ok(id) => id,
            Err(e) => {
                let id_line = raw.0.id_instance.line();
                self.validator
                    .problem(ProblemKind::InvalidId, id_line, None, e);
                return;
            }
        };
        // A duplicate id is named whatever else is wrong with either instance (whose own
        // problems are listed too).
        let first = self.first_line.get(&id).copied();
        match first {
            Some(first) => {
                let message = format!("duplicate idInstance (first defined at line {first})");
                let who = Some(id.as_str());
                self.validator
                    .problem(ProblemKind::DuplicateId, line, who, message);
            }
            None => {
                self.first_line.insert(id.clone(), line);
            }
        }
        let Some(instance) = self.validator.instance(
            raw.0,
            id,
            line,
            &self.default_url,
            self.defaults,
            self.default_drift,
        ) else {
            return;
        };
        if first.is_none() {
            self.instances.push(instance);
        }
    }

    /// The manifest, or every problem found in it (by line).
    pub(super) fn finish(self) -> Result<Manifest, ManifestError> {
        let mut validator = self.validator;
        if validator.problems.is_empty() {
            Ok(Manifest {
                path: validator.path.to_owned(),
                min_interval: self.min_interval,
                resync_interval: self.resync_interval,
                adopt: self.adopt,
                drift_interval: self.drift_interval,
                rollout: self.rollout,
                windows: self.windows,
                instances: self.instances,
                written: self.written,
                warnings: validator.warnings,
                notify: self.notify,
            })
        } else {
            validator.problems.sort_by_key(|p| p.line.unwrap_or(0));
            let pictures = (self.instances.iter())
                .filter_map(|instance| {
                    Some(PictureRef {
                        line: instance.line,
                        instance: instance.id.to_string(),
                        path: instance.picture.path.as_ref().ok()?.clone(),
                    })
                })
                .collect();
            Err(ManifestError {
                problems: validator.problems,
                pictures,
            })
        }
    }
}

impl<'a> Validator<'a> {
    pub(super) fn new(path: &'a Path, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        let base = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        Self {
            path,
            base,
            env,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn problem(
        &mut self,
        kind: ProblemKind,
        line: u64,
        instance: Option<&str>,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            kind,
            path: self.path.to_owned(),
            line: Some(line).filter(|&l| l > 0),
            instance: instance.map(str::to_owned),
            message: super::problem::visible(&message.into()),
        });
    }

    /// A warning: allowed, but worth saying (`--check --strict` makes it an error).
    fn warning(
        &mut self,
        kind: ProblemKind,
        line: u64,
        instance: Option<&str>,
        message: impl Into<String>,
    ) {
        self.warnings.push(Problem {
            kind,
            path: self.path.to_owned(),
            line: Some(line).filter(|&l| l > 0),
            instance: instance.map(str::to_owned),
            message: message.into(),
        });
    }

    /// The validator, with the problems of shape the YAML reader found already listed.
    pub(super) fn with_problems(mut self, problems: Vec<Problem>) -> Self {
        self.problems.extend(problems);
        self
    }

    fn duration(&mut self, raw: Option<At<String>>, key: &str, default: Duration) -> Duration {
        let Some(raw) = raw else { return default };
        match parse_duration(&raw.0) {
            Ok(d) if d.is_zero() => {
                self.problem(
                    ProblemKind::InvalidDuration,
                    raw.line(),
                    None,
                    format!("{key} must be more than 0"),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.problem(
                    ProblemKind::InvalidDuration,
                    raw.line(),
                    None,
                    format!("{key}: {e}"),
                );
                default
            }
        }
    }

    /// `base` with the options written at one level laid over it.
    fn processing(
        &mut self,
        raw: ParsedProcessing,
        base: Processing,
        who: Option<&str>,
    ) -> Processing {
        let mut options = base;
        if let Some(fit) = raw.fit {
            match fit.0.parse::<Fit>() {
                Ok(value) => options.fit = value,
                Err(e) => self.problem(
                    ProblemKind::InvalidOption,
                    fit.line(),
                    who,
                    format!("fit: {e}"),
                ),
            }
        }
        if let Some(size) = raw.size {
            if SIZE_RANGE.contains(&size.0) {
                options.size = size.0;
            } else {
                let message = format!(
                    "size {} is out of range: the longest edge in pixels, {} to {}",
                    size.0,
                    SIZE_RANGE.start(),
                    SIZE_RANGE.end()
                );
                self.problem(ProblemKind::InvalidOption, size.line(), who, message);
            }
        }
        if let Some(background) = raw.background {
            match parse_background(&background.0) {
                Ok(value) => options.background = value,
                Err(e) => self.problem(
                    ProblemKind::InvalidOption,
                    background.line(),
                    who,
                    format!("background: {e}"),
                ),
            }
        }
        if let Some(quality) = raw.quality {
            if (1..=100).contains(&quality.0) {
                options.quality = quality.0;
            } else {
                let message = format!("quality {} is out of range: 1 to 100", quality.0);
                self.problem(ProblemKind::InvalidOption, quality.line(), who, message);
            }
        }
        options
    }

    /// One receiver of `notify:`, or `None` (and its problems).
    fn receiver(&mut self, raw: At<ParsedReceiver>) -> Option<Receiver> {
        let At(raw, line) = raw;
        let url = match raw.url.map(|url| (WebhookUrl::parse(&url.0), url.line())) {
            Some((Ok(url), _)) => Some(url),
            Some((Err(e), at)) => {
                self.problem(ProblemKind::InvalidUrl, at, None, e);
                None
            }
            None => None, // the reader named the missing key
        };
        let format = match raw.format.as_ref().map(|f| f.0.as_str()) {
            None | Some("json") => NotifyFormat::Json,
            Some("slack") => NotifyFormat::Slack,
            Some(other) => {
                let at = raw.format.as_ref().map_or(line, At::line);
                let message = format!("format `{other}`: one of json, slack");
                self.problem(ProblemKind::InvalidOption, at, None, message);
                NotifyFormat::Json
            }
        };
        let secret_file = match raw.secret_file {
            Some(file) => match self.expand(&file.0) {
                Ok(path) => Some(self.base.join(path)),
                Err(e) => {
                    self.problem(
                        ProblemKind::InvalidOption,
                        file.line(),
                        None,
                        format!("secretFile: {e}"),
                    );
                    None
                }
            },
            None => None,
        };
        let events = match raw.events {
            Some(At(names, _)) => names.iter().filter_map(|n| EventName::parse(n)).collect(),
            // Every event but `applied`, which is one message per upload.
            None => (EventName::ALL.into_iter())
                .filter(|&e| e != EventName::Applied)
                .collect(),
        };
        Some(Receiver {
            url: url?,
            format,
            secret_file,
            events,
            after: raw.after.map_or(1, |a| a.0),
            line,
        })
    }

    /// Validates a whole parsed manifest.
    pub(super) fn manifest(self, parsed: ParsedManifest) -> Result<Manifest, ManifestError> {
        let mut building = self.start(parsed.top, parsed.instances.len(), parsed.written);
        for instance in parsed.instances {
            building.add(instance);
        }
        building.finish()
    }

    /// Validates the manifest's top-level keys, ready for its `instances` (about `expected`
    /// of them, of `written` in every shard) one at a time: a cached parse is validated as
    /// it is read, never held whole.
    pub(super) fn start(mut self, top: ParsedTop, expected: usize, written: usize) -> Building<'a> {
        let default_url = match top.api_url {
            Some(url) => ApiUrl::parse(&url.0).unwrap_or_else(|e| {
                self.problem(ProblemKind::InvalidUrl, url.line(), None, e);
                ApiUrl(DEFAULT_API_URL.to_owned())
            }),
            None => ApiUrl(DEFAULT_API_URL.to_owned()),
        };
        let min_line = top.min_interval.as_ref().map_or(0, |m| m.line());
        let min_interval = self.duration(top.min_interval, "minInterval", DEFAULT_MIN_INTERVAL);
        if min_interval < DEFAULT_MIN_INTERVAL {
            let message = format!(
                "minInterval {} is under WhatsApp's 10s: changes that close together are \
                 answered rate-overlimit, each a real GREEN-API call",
                human_duration(min_interval)
            );
            self.warning(ProblemKind::MinIntervalShort, min_line, None, message);
        }
        let resync_line = top.resync_interval.as_ref().map_or(0, |r| r.line());
        let resync_interval = self.duration(
            top.resync_interval,
            "resyncInterval",
            DEFAULT_RESYNC_INTERVAL,
        );
        if resync_interval < Duration::from_secs(1) {
            self.problem(
                ProblemKind::InvalidDuration,
                resync_line,
                None,
                format!(
                    "resyncInterval {} is too short; use at least 1s",
                    human_duration(resync_interval)
                ),
            );
        }

        let drift_interval = self.duration(
            top.drift_interval,
            "driftInterval",
            super::DEFAULT_DRIFT_INTERVAL,
        );
        let default_drift = self.drift_mode(top.drift, DriftMode::default(), None);
        let defaults = self.processing(top.processing, Processing::default(), None);
        let rollout = self.rollout(top.rollout);
        let windows = self.windows(top.windows);
        let notify = (top.notify.into_iter())
            .filter_map(|raw| self.receiver(raw))
            .collect();
        Building {
            notify,
            validator: self,
            default_url,
            defaults,
            default_drift,
            min_interval,
            resync_interval,
            drift_interval,
            adopt: top.adopt.unwrap_or(true),
            rollout,
            windows,
            first_line: IdMap::with_capacity_and_hasher(expected, Default::default()),
            instances: Vec::with_capacity(expected),
            written,
        }
    }

    fn instance(
        &mut self,
        raw: ParsedInstance,
        id: InstanceId,
        line: u64,
        default_url: &ApiUrl,
        defaults: Processing,
        default_drift: DriftMode,
    ) -> Option<Instance> {
        let who = Some(id.as_str());
        let before = self.problems.len();

        let api_url = match raw.api_url {
            Some(url) => ApiUrl::parse(&url.0).unwrap_or_else(|e| {
                self.problem(ProblemKind::InvalidUrl, url.line(), who, e);
                default_url.clone()
            }),
            None => default_url.clone(),
        };

        let tokens = (
            raw.api_token_file,
            raw.api_token_env,
            raw.api_token_instance,
        );
        let token = self.token_source(tokens, line, &id)?;

        let processing = self.processing(raw.processing, defaults, who);
        let drift = self.drift_mode(raw.drift, default_drift, who);
        let picture = if raw.picture.0.trim().is_empty() {
            self.problem(
                ProblemKind::EmptyPicture,
                raw.picture.line(),
                who,
                "picture is empty",
            );
            return None;
        } else {
            PictureSource {
                written: raw.picture.0.clone(),
                path: self.expand(&raw.picture.0).map(|p| self.base.join(p)),
            }
        };

        (self.problems.len() == before).then_some(Instance {
            id,
            api_url,
            token,
            picture,
            processing,
            suspend: raw.suspend,
            canary: raw.canary,
            drift,
            line,
        })
    }

    /// `drift` as written at one level, else `default`.
    fn drift_mode(
        &mut self,
        raw: Option<At<String>>,
        default: DriftMode,
        instance: Option<&str>,
    ) -> DriftMode {
        let Some(raw) = raw else { return default };
        raw.0.parse().unwrap_or_else(|e| {
            let line = raw.line();
            self.problem(
                ProblemKind::InvalidOption,
                line,
                instance,
                format!("drift: {e}"),
            );
            default
        })
    }

    /// The instance's one token source (`apiTokenFile`, `apiTokenEnv` or
    /// `apiTokenInstance`); `None` (and a problem) when there is none, several, or a bad one.
    fn token_source(
        &mut self,
        sources: TokenSources,
        line: u64,
        id: &InstanceId,
    ) -> Option<TokenSource> {
        let (file, env, inline) = sources;
        let who = Some(id.as_str());
        let lines = [&file, &env, &inline].map(|s| s.as_ref().map(|s| s.line()));
        let token = match (file, env, inline) {
            (Some(file), None, None) => {
                TokenSource::File(self.expand(&file.0).map(|p| self.base.join(p)))
            }
            (None, Some(env), None) => {
                let name = env.0.trim().to_owned();
                if !is_env_name(&name) {
                    let message =
                        format!("apiTokenEnv `{name}` is not an environment variable name");
                    self.problem(ProblemKind::InvalidToken, env.line(), who, message);
                }
                TokenSource::Env(name)
            }
            (None, None, Some(inline)) => {
                let line = inline.line();
                match ApiToken::parse(&inline.0) {
                    Ok(token) => {
                        let message = "apiTokenInstance puts a secret in the manifest (and so in \
                                       git); prefer apiTokenFile or apiTokenEnv";
                        self.warning(ProblemKind::SecretInManifest, line, who, message);
                        TokenSource::Inline(token)
                    }
                    Err(e) => {
                        self.problem(
                            ProblemKind::InvalidToken,
                            line,
                            who,
                            format!("apiTokenInstance: {e}"),
                        );
                        return None;
                    }
                }
            }
            (None, None, None) => {
                self.problem(
                    ProblemKind::TokenSource,
                    line,
                    who,
                    "no token: give exactly one of apiTokenFile, apiTokenEnv, apiTokenInstance",
                );
                return None;
            }
            _ => {
                let at = lines.iter().flatten().copied().max().unwrap_or(line);
                self.problem(
                    ProblemKind::TokenSource,
                    at,
                    who,
                    "more than one token source: give exactly one of apiTokenFile, apiTokenEnv, \
                     apiTokenInstance",
                );
                return None;
            }
        };
        Some(token)
    }

    /// Expands `${NAME}` from the environment. An unset name is an error of the instance.
    /// Each value used is noted, so that output shows it as the `${NAME}` it came from.
    fn expand(&self, text: &str) -> Result<PathBuf, ExpandError> {
        let env = |name: &str| {
            let value = (self.env)(name);
            if let Some(value) = &value {
                crate::redact::expanded(name, value);
            }
            value
        };
        expand_vars(text.trim(), &env).map(PathBuf::from)
    }
}
