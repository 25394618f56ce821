//! YAML manifest text → a validated [`Manifest`] of typed values.
//!
//! The raw serde structs stay private to this file; everything else sees typed ids,
//! resolved paths, durations and secret tokens. Every problem names the file and the line
//! (and the instance, where one applies), and all problems of a manifest are reported
//! together, so one run shows the operator everything to fix.

use crate::clock::{human_duration, parse_duration};
use crate::process::{Fit, Options, parse_background};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where GREEN-API lives unless the manifest says otherwise.
pub const DEFAULT_API_URL: &str = "https://api.green-api.com";
/// Least time between two `setProfilePicture` calls of one instance (what GREEN-API documents).
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(10);
/// How often the daemon re-checks everything, events or not.
pub const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(600);

/// A validated manifest.
#[derive(Debug)]
pub struct Manifest {
    /// The manifest file, as given on the command line.
    pub path: PathBuf,
    /// Least time between two calls of one instance.
    pub min_interval: Duration,
    /// How often the daemon re-checks everything.
    pub resync_interval: Duration,
    /// The instances, in manifest order.
    pub instances: Vec<Instance>,
    /// Things that are allowed but worth saying (a token written in the manifest).
    pub warnings: Vec<Problem>,
}

/// One instance of the manifest.
#[derive(Debug)]
pub struct Instance {
    /// The `idInstance`.
    pub id: InstanceId,
    /// Where this instance's GREEN-API host is.
    pub api_url: ApiUrl,
    /// Where the `apiTokenInstance` comes from.
    pub token: TokenSource,
    /// The picture it should show.
    pub picture: PictureSource,
    /// How its picture is turned into the JPEG to upload (`fit`, `size`, `background`,
    /// `quality`: the instance's own, else the manifest's, else the defaults).
    pub processing: Options,
    /// `suspend: true`: leave this instance alone.
    pub suspend: bool,
    /// The line of the manifest where this instance starts.
    pub line: u64,
}

/// The picture an instance should show.
#[derive(Clone, Debug)]
pub struct PictureSource {
    /// As written in the manifest, for output.
    pub written: String,
    /// The path after `${NAME}` expansion, relative to the manifest's folder; or why it
    /// could not be expanded (an error of this instance only).
    pub path: Result<PathBuf, String>,
}

/// A GREEN-API `idInstance`: ASCII digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(String);

impl InstanceId {
    /// Validates `text` as an instance id.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.is_empty() && text.len() <= 32 && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "idInstance `{text}` must be digits, like \"1101000001\""
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for InstanceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for InstanceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A GREEN-API base URL: `https://…`, or `http://` to a loopback host; no trailing `/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ApiUrl(String);

impl ApiUrl {
    /// Validates `text` as an API URL.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(text.trim())
            .map_err(|e| format!("apiUrl `{text}` is not a URL ({e})"))?;
        let host = url.host_str().unwrap_or_default();
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(host) => {}
            "http" => {
                return Err(format!(
                    "apiUrl `{text}` uses http:// to a host that is not loopback; the token \
                     travels in the URL, so use https:// (http:// is allowed only for \
                     127.0.0.1, ::1 and localhost)"
                ));
            }
            other => return Err(format!("apiUrl `{text}` must be https:// (not {other}://)")),
        }
        if host.is_empty() {
            return Err(format!("apiUrl `{text}` has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "apiUrl `{text}` must not carry a user name or password"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("apiUrl `{text}` must not have a query or fragment"));
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// The URL without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A GREEN-API `apiTokenInstance`. Its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct ApiToken(SecretString);

impl ApiToken {
    /// Validates a token: ASCII letters and digits only, since it becomes a URL path segment.
    /// The error never contains the token.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("the token is empty".to_owned());
        }
        if let Some(bad) = text.chars().find(|c| !c.is_ascii_alphanumeric()) {
            let shown = if bad.is_ascii_graphic() || bad == ' ' {
                format!("`{bad}`")
            } else {
                format!("U+{:04X}", u32::from(bad))
            };
            return Err(format!(
                "the token contains {shown}; a token is ASCII letters and digits only"
            ));
        }
        Ok(Self(SecretString::from(text)))
    }

    /// The token itself. Call only to build the request URL.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A short one-way fingerprint of an instance's apiUrl and token, stored with a failure so
/// that a changed token or host is retried at once. 64 bits of SHA-256: it tells two
/// credentials apart and cannot be turned back into the token.
pub fn credentials_fingerprint(api_url: &ApiUrl, token: &ApiToken) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"avatar-sync credentials v1\0");
    hasher.update(api_url.as_str().as_bytes());
    hasher.update(b"\0");
    hasher.update(token.expose().as_bytes());
    let digest = hasher.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where an instance's token comes from.
#[derive(Clone, Debug)]
pub enum TokenSource {
    /// `apiTokenFile`: the file's content, whitespace trimmed. `Err` when `${NAME}`
    /// expansion failed.
    File(Result<PathBuf, String>),
    /// `apiTokenEnv`: an environment variable's value.
    Env(String),
    /// `apiTokenInstance`: written in the manifest.
    Inline(ApiToken),
}

/// Why a token could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token's source is absent here (unset variable, missing file).
    #[error("{0}")]
    Unavailable(String),
    /// The token is there but is not a valid token.
    #[error("{0}")]
    Invalid(String),
}

impl TokenError {
    /// A stable machine label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "token-unavailable",
            Self::Invalid(_) => "token-invalid",
        }
    }
}

impl TokenSource {
    /// Reads the token now (files and variables may change while the daemon runs).
    pub fn resolve(&self) -> Result<ApiToken, TokenError> {
        match self {
            Self::Inline(token) => Ok(token.clone()),
            Self::Env(name) => {
                let value = std::env::var(name).map_err(|_| {
                    TokenError::Unavailable(format!(
                        "apiTokenEnv: environment variable {name} is not set"
                    ))
                })?;
                ApiToken::parse(&value)
                    .map_err(|e| TokenError::Invalid(format!("apiTokenEnv: variable {name}: {e}")))
            }
            Self::File(Err(why)) => Err(TokenError::Unavailable(format!("apiTokenFile: {why}"))),
            Self::File(Ok(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    TokenError::Unavailable(format!(
                        "apiTokenFile: cannot read {}: {e}",
                        path.display()
                    ))
                })?;
                ApiToken::parse(&text).map_err(|e| {
                    TokenError::Invalid(format!("apiTokenFile {}: {e}", path.display()))
                })
            }
        }
    }
}

/// One problem in a manifest, at a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The manifest file.
    pub path: PathBuf,
    /// 1-based line; `None` when the parser could not tell.
    pub line: Option<u64>,
    /// The instance it concerns, if any.
    pub instance: Option<String>,
    /// What is wrong, in one line.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if let Some(id) = &self.instance {
            write!(f, "instance {id}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A manifest that cannot be used: every problem found, each naming file and line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

impl ManifestError {
    fn one(path: &Path, line: Option<u64>, message: impl Into<String>) -> Self {
        Self {
            problems: vec![Problem {
                path: path.to_owned(),
                line,
                instance: None,
                message: message.into(),
            }],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawManifest {
    api_url: Option<Spanned<String>>,
    min_interval: Option<Spanned<String>>,
    resync_interval: Option<Spanned<String>>,
    fit: Option<Spanned<String>>,
    size: Option<Spanned<u32>>,
    background: Option<Spanned<String>>,
    quality: Option<Spanned<u8>>,
    instances: Vec<Spanned<RawInstance>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawInstance {
    id_instance: Spanned<RawId>,
    api_token_file: Option<Spanned<String>>,
    api_token_env: Option<Spanned<String>>,
    api_token_instance: Option<Spanned<String>>,
    picture: Spanned<String>,
    api_url: Option<Spanned<String>>,
    fit: Option<Spanned<String>>,
    size: Option<Spanned<u32>>,
    background: Option<Spanned<String>>,
    quality: Option<Spanned<u8>>,
    #[serde(default)]
    suspend: bool,
}

/// `fit`, `size`, `background`, `quality` as written at one level (top or instance).
struct RawProcessing {
    fit: Option<Spanned<String>>,
    size: Option<Spanned<u32>>,
    background: Option<Spanned<String>>,
    quality: Option<Spanned<u8>>,
}

/// The smallest and largest `size`, in pixels.
pub const SIZE_RANGE: std::ops::RangeInclusive<u32> = 16..=4096;

/// `idInstance` as written: a string, or a YAML integer.
struct RawId(String);

impl<'de> Deserialize<'de> for RawId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an idInstance (digits)")
            }
            fn visit_str<E>(self, v: &str) -> Result<RawId, E> {
                Ok(RawId(v.to_owned()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawId, E> {
                Ok(RawId(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawId, E> {
                Ok(RawId(v.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Reads and validates the manifest at `path`, expanding `${NAME}` from the process environment.
pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ManifestError::one(path, None, format!("cannot read the manifest: {e}")))?;
    parse(&text, path, &|name| std::env::var(name).ok())
}

/// Validates manifest `text` that was read from `path`. `env` looks up `${NAME}`.
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Manifest, ManifestError> {
    let raw: RawManifest = serde_saphyr::from_str(text).map_err(|e| yaml_error(path, &e))?;
    Validator::new(path, env).manifest(raw)
}

fn yaml_error(path: &Path, err: &serde_saphyr::Error) -> ManifestError {
    let line = err.location().map(|l| l.line()).filter(|&l| l > 0);
    // The library's own text may span several lines and repeat the position; keep one line.
    let plain = err.without_snippet().to_string();
    let message = plain
        .lines()
        .next()
        .unwrap_or("not valid YAML")
        .trim()
        .to_owned();
    let message = strip_position_suffix(&message);
    // Advice aimed at programs that embed the YAML library, not at operators.
    let message = match message.find(", set DuplicateKeyPolicy") {
        Some(at) => message[..at].to_owned(),
        None => message,
    };
    ManifestError::one(path, line, message)
}

/// Drops a trailing " at line N column M" that the YAML library appends.
fn strip_position_suffix(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) if message[at..].contains("column") => message[..at].to_owned(),
        _ => message.to_owned(),
    }
}

struct Validator<'a> {
    path: &'a Path,
    base: PathBuf,
    env: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl<'a> Validator<'a> {
    fn new(path: &'a Path, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
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

    fn problem(&mut self, line: u64, instance: Option<&str>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: self.path.to_owned(),
            line: Some(line).filter(|&l| l > 0),
            instance: instance.map(str::to_owned),
            message: message.into(),
        });
    }

    fn duration(&mut self, raw: Option<Spanned<String>>, key: &str, default: Duration) -> Duration {
        let Some(raw) = raw else { return default };
        match parse_duration(&raw.value) {
            Ok(d) if d.is_zero() => {
                self.problem(
                    raw.referenced.line(),
                    None,
                    format!("{key} must be more than 0"),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.problem(raw.referenced.line(), None, format!("{key}: {e}"));
                default
            }
        }
    }

    /// `base` with the options written at one level laid over it.
    fn processing(&mut self, raw: RawProcessing, base: Options, who: Option<&str>) -> Options {
        let mut options = base;
        if let Some(fit) = raw.fit {
            match fit.value.parse::<Fit>() {
                Ok(value) => options.fit = value,
                Err(e) => self.problem(fit.referenced.line(), who, format!("fit: {e}")),
            }
        }
        if let Some(size) = raw.size {
            if SIZE_RANGE.contains(&size.value) {
                options.size = size.value;
            } else {
                let message = format!(
                    "size {} is out of range: the longest edge in pixels, {} to {}",
                    size.value,
                    SIZE_RANGE.start(),
                    SIZE_RANGE.end()
                );
                self.problem(size.referenced.line(), who, message);
            }
        }
        if let Some(background) = raw.background {
            match parse_background(&background.value) {
                Ok(value) => options.background = value,
                Err(e) => self.problem(
                    background.referenced.line(),
                    who,
                    format!("background: {e}"),
                ),
            }
        }
        if let Some(quality) = raw.quality {
            if (1..=100).contains(&quality.value) {
                options.quality = quality.value;
            } else {
                let message = format!("quality {} is out of range: 1 to 100", quality.value);
                self.problem(quality.referenced.line(), who, message);
            }
        }
        options
    }

    fn manifest(mut self, raw: RawManifest) -> Result<Manifest, ManifestError> {
        let default_url = match raw.api_url {
            Some(url) => ApiUrl::parse(&url.value).unwrap_or_else(|e| {
                self.problem(url.referenced.line(), None, e);
                ApiUrl(DEFAULT_API_URL.to_owned())
            }),
            None => ApiUrl(DEFAULT_API_URL.to_owned()),
        };
        let min_interval = self.duration(raw.min_interval, "minInterval", DEFAULT_MIN_INTERVAL);
        let resync_line = raw
            .resync_interval
            .as_ref()
            .map_or(0, |r| r.referenced.line());
        let resync_interval = self.duration(
            raw.resync_interval,
            "resyncInterval",
            DEFAULT_RESYNC_INTERVAL,
        );
        if resync_interval < Duration::from_secs(1) {
            self.problem(
                resync_line,
                None,
                format!(
                    "resyncInterval {} is too short; use at least 1s",
                    human_duration(resync_interval)
                ),
            );
        }

        let defaults = RawProcessing {
            fit: raw.fit,
            size: raw.size,
            background: raw.background,
            quality: raw.quality,
        };
        let defaults = self.processing(defaults, Options::default(), None);
        let mut first_line: HashMap<String, u64> = HashMap::new();
        let mut instances = Vec::with_capacity(raw.instances.len());
        for raw_instance in raw.instances {
            let line = raw_instance.referenced.line();
            if let Some(instance) = self.instance(raw_instance.value, line, &default_url, defaults)
            {
                if let Some(first) = first_line.get(instance.id.as_str()) {
                    let message = format!("duplicate idInstance (first defined at line {first})");
                    self.problem(line, Some(instance.id.as_str()), message);
                    continue;
                }
                first_line.insert(instance.id.0.clone(), line);
                instances.push(instance);
            }
        }

        if self.problems.is_empty() {
            Ok(Manifest {
                path: self.path.to_owned(),
                min_interval,
                resync_interval,
                instances,
                warnings: self.warnings,
            })
        } else {
            self.problems.sort_by_key(|p| p.line.unwrap_or(0));
            Err(ManifestError {
                problems: self.problems,
            })
        }
    }

    fn instance(
        &mut self,
        raw: RawInstance,
        line: u64,
        default_url: &ApiUrl,
        defaults: Options,
    ) -> Option<Instance> {
        let id_line = raw.id_instance.referenced.line();
        let id = match InstanceId::parse(&raw.id_instance.value.0) {
            Ok(id) => id,
            Err(e) => {
                self.problem(id_line, None, e);
                return None;
            }
        };
        let who = Some(id.as_str());
        let before = self.problems.len();

        let api_url = match raw.api_url {
            Some(url) => ApiUrl::parse(&url.value).unwrap_or_else(|e| {
                self.problem(url.referenced.line(), who, e);
                default_url.clone()
            }),
            None => default_url.clone(),
        };

        let sources = [
            raw.api_token_file.as_ref().map(|s| s.referenced.line()),
            raw.api_token_env.as_ref().map(|s| s.referenced.line()),
            raw.api_token_instance.as_ref().map(|s| s.referenced.line()),
        ];
        let token = match (
            raw.api_token_file,
            raw.api_token_env,
            raw.api_token_instance,
        ) {
            (Some(file), None, None) => {
                TokenSource::File(self.expand(&file.value).map(|p| self.base.join(p)))
            }
            (None, Some(env), None) => {
                let name = env.value.trim().to_owned();
                if !is_env_name(&name) {
                    let message =
                        format!("apiTokenEnv `{name}` is not an environment variable name");
                    self.problem(env.referenced.line(), who, message);
                }
                TokenSource::Env(name)
            }
            (None, None, Some(inline)) => {
                let line = inline.referenced.line();
                match ApiToken::parse(&inline.value) {
                    Ok(token) => {
                        self.warnings.push(Problem {
                            path: self.path.to_owned(),
                            line: Some(line),
                            instance: Some(id.to_string()),
                            message: "apiTokenInstance puts a secret in the manifest (and so in \
                                      git); prefer apiTokenFile or apiTokenEnv"
                                .to_owned(),
                        });
                        TokenSource::Inline(token)
                    }
                    Err(e) => {
                        self.problem(line, who, format!("apiTokenInstance: {e}"));
                        return None;
                    }
                }
            }
            (None, None, None) => {
                self.problem(
                    line,
                    who,
                    "no token: give exactly one of apiTokenFile, apiTokenEnv, apiTokenInstance",
                );
                return None;
            }
            _ => {
                let at = sources.iter().flatten().copied().max().unwrap_or(line);
                self.problem(
                    at,
                    who,
                    "more than one token source: give exactly one of apiTokenFile, apiTokenEnv, \
                     apiTokenInstance",
                );
                return None;
            }
        };

        let processing = RawProcessing {
            fit: raw.fit,
            size: raw.size,
            background: raw.background,
            quality: raw.quality,
        };
        let processing = self.processing(processing, defaults, who);
        let picture = if raw.picture.value.trim().is_empty() {
            self.problem(raw.picture.referenced.line(), who, "picture is empty");
            return None;
        } else {
            PictureSource {
                written: raw.picture.value.clone(),
                path: self.expand(&raw.picture.value).map(|p| self.base.join(p)),
            }
        };

        (self.problems.len() == before).then_some(Instance {
            id,
            api_url,
            token,
            picture,
            processing,
            suspend: raw.suspend,
            line,
        })
    }

    /// Expands `${NAME}` from the environment. An unset name is an error of the instance.
    fn expand(&self, text: &str) -> Result<PathBuf, String> {
        expand_vars(text.trim(), self.env).map(PathBuf::from)
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces each `${NAME}` in `text` with the variable's value; `$` alone stays as it is.
pub fn expand_vars(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`{text}` has `${{` without a closing `}}`"))?;
        let name = &after[..end];
        if !is_env_name(name) {
            return Err(format!("`${{{name}}}` in `{text}` is not a variable name"));
        }
        let value =
            env(name).ok_or_else(|| format!("`{text}` uses ${{{name}}}, which is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests;
