//! One message to one receiver: an HTTP POST of the body, signed when the receiver has a
//! secret. The receiver is the outer boundary, so it is a trait ([`Post`]): the daemon
//! posts over HTTP ([`HttpPost`]); engine tests on tokio's paused clock post to a receiver
//! in memory, where a real socket's timeouts would fire on the paused clock.
//!
//! As for GREEN-API: rustls, no redirect followed (a redirect could carry the body, and a
//! Slack URL's secret path, elsewhere), a connect and a total timeout, at most
//! [`MAX_ANSWER_BYTES`] of the answer read, and errors printed without the URL.

use crate::manifest::WebhookUrl;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::future::Future;
use std::time::Duration;

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub(crate) const SIGNATURE_HEADER: &str = "X-Avatar-Sync-Signature";
/// The header carrying the message's id (the same in every attempt).
pub(crate) const ID_HEADER: &str = "X-Avatar-Sync-Id";
/// The most of a receiver's answer that is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// How long a receiver has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends one message; the answer's status, or why there is none (no URL in it).
pub(crate) trait Post: Clone + Send + Sync + 'static {
    /// POSTs `body` to `url` with `headers`.
    fn post(
        &self,
        url: &WebhookUrl,
        headers: Vec<(&'static str, String)>,
        body: String,
    ) -> impl Future<Output = Result<u16, String>> + Send;
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`.
pub(crate) fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Posts over HTTP with reqwest.
#[derive(Clone, Debug)]
pub(crate) struct HttpPost {
    client: reqwest::Client,
}

impl HttpPost {
    /// The client: rustls, timeouts, no redirects, no proxy from the environment.
    pub(crate) fn new() -> Result<Self, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .user_agent(crate::USER_AGENT)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(2)
            .build()
            .map_err(|e| e.without_url().to_string())?;
        Ok(Self { client })
    }
}

impl Post for HttpPost {
    async fn post(
        &self,
        url: &WebhookUrl,
        headers: Vec<(&'static str, String)>,
        body: String,
    ) -> Result<u16, String> {
        let mut request = self
            .client
            .post(url.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut response = (request.body(body).send().await)
            .map_err(|e| crate::gateway::error_chain(&e.without_url()))?;
        let status = response.status().as_u16();
        // Read (and drop) at most a bounded part of the answer: enough to let the
        // connection be reused, never a flood into memory.
        let mut read = 0;
        while read < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        Ok(status)
    }
}
