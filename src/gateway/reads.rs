//! GREEN-API's reads of what is live: `getWaSettings` (the avatar's URL and the instance's
//! `stateInstance`) and the avatar file itself. The rules of the upload hold: the token
//! only in the URL path, no redirects, a capped body, every failure classified by the
//! contract's table and scrubbed of the token. An avatar file is fetched only from
//! WhatsApp's avatar hosts over `https://` (or from loopback when `apiUrl` is loopback: a
//! local fake), to at most [`MAX_AVATAR_BYTES`]: a server's answer never makes us fetch
//! another address.

use super::classify::classify_read;
use super::scrub::Scrubber;
use super::{HttpGateway, MAX_BODY_BYTES, capped_body, transport_failure};
use crate::manifest::{ApiToken, ApiUrl, InstanceId, is_loopback};
use crate::outcome::{CallFailure, FailureKind};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// How long one read (of GREEN-API's state, or of an avatar file) may take: shorter than an
/// upload's, since a read is only worth having soon and another comes later.
pub(crate) const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
                .timeout(READ_TIMEOUT)
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

    /// The avatar file at `url`, which `getWaSettings` at `api_url` answered, when
    /// [`avatar_url`] allows it.
    pub(crate) async fn read_avatar_file(
        &self,
        api_url: &ApiUrl,
        url: &str,
    ) -> Result<Vec<u8>, CallFailure> {
        let parsed = avatar_url(api_url, url).map_err(|why| failure(&why))?;
        let mut response = self
            .client
            .get(parsed)
            .timeout(READ_TIMEOUT)
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

/// WhatsApp's avatar hosts: `pps.whatsapp.net` and its siblings.
const AVATAR_DOMAIN: &str = "whatsapp.net";

/// `url` when an avatar may be fetched from it: `https://` on the default port to
/// [`AVATAR_DOMAIN`] or a host under it; or, only when `api_url` is loopback (a local fake),
/// `http://` or `https://` to loopback. Anything else is refused with the reason.
pub(crate) fn avatar_url(api_url: &ApiUrl, url: &str) -> Result<reqwest::Url, String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("the avatar URL is not a URL ({e})"))?;
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let api_host = reqwest::Url::parse(api_url.as_str())
        .ok()
        .and_then(|api| api.host_str().map(str::to_owned));
    let local = api_host.as_deref().is_some_and(is_loopback);
    let whatsapp = host == AVATAR_DOMAIN || host.ends_with(&format!(".{AVATAR_DOMAIN}"));
    let allowed = match parsed.scheme() {
        "https" if whatsapp => parsed.port().is_none(),
        "https" | "http" if local => is_loopback(&host),
        _ => false,
    };
    if allowed && parsed.username().is_empty() && parsed.password().is_none() {
        Ok(parsed)
    } else {
        let origin = parsed.origin().ascii_serialization();
        Err(format!(
            "the avatar URL is at {origin}, not https:// on WhatsApp's avatar hosts \
             (*.{AVATAR_DOMAIN}); it is not fetched"
        ))
    }
}

fn failure(detail: &str) -> CallFailure {
    CallFailure {
        kind: FailureKind::UnexpectedAnswer,
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(url: &str) -> ApiUrl {
        ApiUrl::parse(url).unwrap()
    }

    #[test]
    fn n5_avatars_come_only_from_whatsapp_or_from_loopback_beside_a_loopback_api() {
        let green = api("https://api.green-api.com");
        let local = api("http://127.0.0.1:8080");
        for (api_url, url) in [
            (&green, "https://pps.whatsapp.net/v/t61/1_n.jpg?oh=1&oe=2"),
            (&green, "https://PPS.WhatsApp.net/v/x.jpg"),
            (&local, "http://127.0.0.1:9000/avatar/1.jpg"),
            (&local, "http://localhost:8080/avatar/1.jpg"),
        ] {
            assert!(avatar_url(api_url, url).is_ok(), "{url} refused");
        }
        for (api_url, url) in [
            (&green, "http://127.0.0.1:8080/admin"),
            (&green, "https://localhost/x"),
            (&green, "http://pps.whatsapp.net/x.jpg"),
            (&green, "https://pps.whatsapp.net:8443/x.jpg"),
            (&green, "https://evilwhatsapp.net/x.jpg"),
            (&green, "https://whatsapp.net.evil.example/x.jpg"),
            (&green, "https://user:pw@pps.whatsapp.net/x.jpg"),
            (&green, "https://169.254.169.254/latest/meta-data"),
            (&green, "file:///etc/passwd"),
            (&local, "http://10.0.0.1/x.jpg"),
            (&local, "ftp://127.0.0.1/x.jpg"),
        ] {
            let refused = avatar_url(api_url, url).expect_err(url);
            assert!(refused.contains("it is not fetched"), "{refused}");
        }
    }
}
