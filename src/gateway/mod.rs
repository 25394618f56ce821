//! The GREEN-API client: one request in, one typed [`CallOutcome`] out.
//!
//! [`Gateway`] is the seam to the outside world: [`HttpGateway`] speaks HTTP to GREEN-API;
//! the daemon loop's tests put a scripted one in its place. Token redaction lives here:
//! the token travels in the URL path, and HTTP client errors print URLs, so every error is
//! stripped of its URL, and every outcome is scrubbed of the token (`scrub.rs`) before it
//! leaves this module.

mod classify;
mod reads;
mod scrub;

pub(crate) use reads::{InstanceState, Reader, WaSettings};

use classify::classify;
use scrub::Scrubber;

use crate::manifest::{ApiToken, ApiUrl, InstanceId, is_loopback};
use crate::outcome::{CallFailure, CallOutcome, FailureKind};
use std::future::Future;
use std::time::Duration;

/// How long to wait for a TCP + TLS connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one whole request may take, upload and answer included.
pub(crate) const REQUEST_TIMEOUT: Duration = crate::outcome::ANSWER_DEADLINE;

/// The most of an answer's body that is read, in bytes. GREEN-API's answers are under a
/// kilobyte; a longer one is not GREEN-API's and is an `unexpected-answer` failure, so a
/// huge or endless body costs at most this much memory.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// One upload: who, where, with which token, which bytes.
#[derive(Debug)]
pub(crate) struct Upload {
    /// The instance's API host.
    pub api_url: ApiUrl,
    /// The instance.
    pub id: InstanceId,
    /// Its token.
    pub token: ApiToken,
    /// The multipart filename, `<stem>.jpg`.
    pub filename: String,
    /// The JPEG bytes.
    pub bytes: Vec<u8>,
}

/// What avatar-sync asks of GREEN-API. Cheap to clone; one value serves every call.
pub(crate) trait Gateway: Clone + Send + Sync + 'static {
    /// Sends one `setProfilePicture` request and classifies the answer.
    fn set_profile_picture(&self, upload: Upload) -> impl Future<Output = CallOutcome> + Send;

    /// Reads `getWaSettings`: the live picture's URL and the instance's state. A gateway
    /// that cannot read (the daemon loop's scripted one) answers that it cannot, and
    /// callers go on as if nothing were known.
    fn wa_settings(
        &self,
        reader: &Reader,
    ) -> impl Future<Output = Result<WaSettings, CallFailure>> + Send {
        let _ = reader;
        std::future::ready(Err(cannot_read()))
    }

    /// Reads `getStateInstance`.
    fn state_instance(
        &self,
        reader: &Reader,
    ) -> impl Future<Output = Result<InstanceState, CallFailure>> + Send {
        let _ = reader;
        std::future::ready(Err(cannot_read()))
    }

    /// Fetches a live picture's file, which `getWaSettings` for `reader` answered.
    fn avatar_file(
        &self,
        reader: &Reader,
        url: &str,
    ) -> impl Future<Output = Result<Vec<u8>, CallFailure>> + Send {
        let _ = (reader, url);
        std::future::ready(Err(cannot_read()))
    }
}

fn cannot_read() -> CallFailure {
    CallFailure {
        kind: FailureKind::UnexpectedAnswer,
        detail: "this gateway does not read live pictures".to_owned(),
    }
}

/// The GREEN-API HTTP client. Connections are pooled and reused per host.
#[derive(Clone)]
pub(crate) struct HttpGateway {
    client: reqwest::Client,
}

/// The client could not be built (TLS roots unavailable, for example).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTP client: {0}")]
pub struct GatewayInitError(String);

impl GatewayInitError {
    /// Building the client panicked (on the thread that built it).
    pub(crate) fn panicked() -> Self {
        Self("building the client failed unexpectedly".to_owned())
    }

    /// A stable machine label.
    pub fn label(&self) -> &'static str {
        "http-client"
    }
}

impl HttpGateway {
    /// Builds the client: rustls, connect and total timeouts, no redirects (a redirect
    /// would carry the token to another URL), `User-Agent: avatar-sync/<version>`.
    pub(crate) fn new() -> Result<Self, GatewayInitError> {
        // Another part of the process may have installed a provider already; that one wins.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            // The proxy environment is not read by the client: a plain `http://` proxy
            // would see the whole URL, token included. See `proxy_from_env`.
            .no_proxy();
        if let Some(proxy) = proxy_from_env(|name| std::env::var(name).ok()) {
            let proxy = reqwest::Proxy::custom(move |url| {
                (!url.host_str().is_some_and(is_loopback)).then(|| proxy.clone())
            });
            builder = builder.proxy(proxy);
        }
        let client = builder
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

    async fn send(&self, upload: Upload) -> Result<(u16, Vec<u8>), CallFailure> {
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
        let mut response = self
            .client
            .post(url)
            .multipart(form)
            .send()
            .await
            .map_err(transport_failure)?;
        capped_body(&mut response, MAX_BODY_BYTES).await
    }
}

/// The answer's status and body, reading no more than `cap` bytes of it: a longer one is
/// an `unexpected-answer` failure, so a huge or endless body costs at most `cap`.
async fn capped_body(
    response: &mut reqwest::Response,
    cap: usize,
) -> Result<(u16, Vec<u8>), CallFailure> {
    let status = response.status().as_u16();
    let too_long = || CallFailure {
        kind: FailureKind::UnexpectedAnswer,
        detail: format!("HTTP {status} with a body over {cap} bytes"),
    };
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Err(too_long());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_failure)? {
        if body.len() + chunk.len() > cap {
            return Err(too_long());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

impl Gateway for HttpGateway {
    async fn wa_settings(&self, reader: &Reader) -> Result<WaSettings, CallFailure> {
        self.read_wa_settings(reader).await
    }

    async fn avatar_file(&self, reader: &Reader, url: &str) -> Result<Vec<u8>, CallFailure> {
        self.read_avatar_file(&reader.api_url, url).await
    }

    async fn state_instance(&self, reader: &Reader) -> Result<InstanceState, CallFailure> {
        self.read_state_instance(reader).await
    }

    async fn set_profile_picture(&self, upload: Upload) -> CallOutcome {
        let scrubber = Scrubber::new(upload.token.expose());
        match self.send(upload).await {
            Ok((status, body)) => classify(status, &body),
            Err(failure) => CallOutcome::Failed(failure),
        }
        .scrubbed(&scrubber)
    }
}

/// The proxy to use for GREEN-API, from `HTTPS_PROXY`, else `ALL_PROXY` (either case): only
/// an `https://` one, since the token is in the URL and the proxy must not see it in clear.
/// Another one is ignored, with a warning, and no proxy is used. `HTTP_PROXY` is never
/// used, and loopback URLs never go through a proxy.
pub(crate) fn proxy_from_env(var: impl Fn(&str) -> Option<String>) -> Option<reqwest::Url> {
    let (name, value) = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .into_iter()
        .find_map(|name| Some((name, var(name).filter(|v| !v.trim().is_empty())?)))?;
    match reqwest::Url::parse(value.trim()) {
        Ok(url) if url.scheme() == "https" && url.host_str().is_some() => Some(url),
        // The value may carry a password: say which variable, not what it holds.
        _ => {
            tracing::warn!(
                "{name} is not an https:// URL; it is ignored and GREEN-API is called without \
                 a proxy (the token travels in the URL: only an https:// proxy may carry it)"
            );
            None
        }
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
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
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

#[cfg(test)]
mod tests;
