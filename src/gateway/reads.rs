//! GREEN-API's reads of what is live: `getWaSettings` (the avatar's URL and the instance's
//! `stateInstance`) and the avatar file itself. The rules of the upload hold: the token
//! only in the URL path, no redirects, a capped body, every failure classified by the
//! contract's table and scrubbed of the token. An avatar file is fetched only over
//! `https://` (or `http://` to loopback), to at most [`MAX_AVATAR_BYTES`].

use super::classify::classify_read;
use super::scrub::Scrubber;
use super::{HttpGateway, MAX_BODY_BYTES, capped_body, transport_failure};
use crate::manifest::{ApiToken, ApiUrl, InstanceId, is_loopback};
use crate::outcome::{CallFailure, FailureKind};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The largest avatar file fetched (WhatsApp's are tens of kilobytes).
pub(crate) const MAX_AVATAR_BYTES: usize = 5 * 1024 * 1024;

/// Whose live state to read.
#[derive(Clone, Debug)]
pub(crate) struct Reader {
    /// The instance's API host.
    pub api_url: ApiUrl,
    /// The instance.
    pub id: InstanceId,
    /// Its token.
    pub token: ApiToken,
}

/// An instance's `stateInstance`: an open set (`authorized`, `notAuthorized`, `blocked`,
/// `sleepMode`, `starting`, `yellowCard`, and whatever GREEN-API adds); `None` when it
/// answered `null` (an instance being created).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InstanceState(pub Option<String>);

impl InstanceState {
    /// Whether pictures can be set.
    pub(crate) fn is_authorized(&self) -> bool {
        self.0.as_deref() == Some("authorized")
    }

    /// As GREEN-API spelled it, or `null`.
    pub(crate) fn label(&self) -> &str {
        self.0.as_deref().unwrap_or("null")
    }
}

/// What `getWaSettings` says about the live picture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WaSettings {
    /// The URL of the picture shown; `None` when none is (or the instance is not
    /// authorised).
    pub avatar: Option<String>,
    /// The instance's state.
    pub state: InstanceState,
}

impl HttpGateway {
    /// `GET {apiUrl}/waInstance{id}/getWaSettings/{token}`.
    pub(crate) async fn read_wa_settings(
        &self,
        reader: &Reader,
    ) -> Result<WaSettings, CallFailure> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Answer {
            avatar: Option<String>,
            state_instance: Option<String>,
        }
        let answer: Answer = self.read(reader, "getWaSettings").await?;
        let avatar = answer.avatar.filter(|url| !url.is_empty());
        if avatar
            .as_deref()
            .is_some_and(|url| Scrubber::new(reader.token.expose()).shows_token(url))
        {
            return Err(failure(
                "getWaSettings answered an avatar URL that contains the token",
            ));
        }
        Ok(WaSettings {
            avatar,
            state: InstanceState(answer.state_instance),
        })
    }

    /// `GET {apiUrl}/waInstance{id}/getStateInstance/{token}`: `{"stateInstance": …}`, or
    /// `null` while the instance is being created.
    pub(crate) async fn read_state_instance(
        &self,
        reader: &Reader,
    ) -> Result<InstanceState, CallFailure> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Answer {
            state_instance: Option<String>,
        }
        let answer: Option<Answer> = self.read(reader, "getStateInstance").await?;
        Ok(InstanceState(answer.and_then(|a| a.state_instance)))
    }

    /// `GET {apiUrl}/waInstance{id}/{method}/{token}`, classified by the contract's table,
    /// its JSON read as `T`; every failure scrubbed of the token.
    async fn read<T: DeserializeOwned>(
        &self,
        reader: &Reader,
        method: &str,
    ) -> Result<T, CallFailure> {
        let read = async {
            let url = format!(
                "{}/waInstance{}/{method}/{}",
                reader.api_url.as_str(),
                reader.id,
                reader.token.expose()
            );
            let mut response = self
                .client
                .get(url)
                .send()
                .await
                .map_err(transport_failure)?;
            let (status, body) = capped_body(&mut response, MAX_BODY_BYTES).await?;
            classify_read(status, &body)?;
            serde_json::from_slice(&body).map_err(|e| CallFailure {
                kind: FailureKind::UnexpectedAnswer,
                detail: format!("{method} answered JSON of another shape ({e})"),
            })
        };
        let scrubber = Scrubber::new(reader.token.expose());
        read.await.map_err(|failure| failure.scrubbed(&scrubber))
    }

    /// The avatar file at `url`: `https://`, or `http://` to a loopback host.
    pub(crate) async fn read_avatar_file(&self, url: &str) -> Result<Vec<u8>, CallFailure> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| failure(&format!("the avatar URL is not a URL ({e})")))?;
        let host = parsed.host_str().unwrap_or_default();
        match parsed.scheme() {
            "https" => {}
            "http" if is_loopback(host) => {}
            other => {
                return Err(failure(&format!(
                    "the avatar URL is {other}://, not https://; it is not fetched"
                )));
            }
        }
        let mut response = self
            .client
            .get(parsed)
            .send()
            .await
            .map_err(transport_failure)?;
        let (status, body) = capped_body(&mut response, MAX_AVATAR_BYTES).await?;
        if status != 200 {
            return Err(CallFailure {
                kind: FailureKind::ServerError,
                detail: format!("the avatar file answered HTTP {status}"),
            });
        }
        Ok(body)
    }
}

fn failure(detail: &str) -> CallFailure {
    CallFailure {
        kind: FailureKind::UnexpectedAnswer,
        detail: detail.to_owned(),
    }
}
