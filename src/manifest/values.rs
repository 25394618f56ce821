//! The manifest's typed values: an instance id, an API URL, a token that never prints, and
//! the one-way fingerprint of a token kept in the state.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;

/// A GREEN-API `idInstance`: ASCII digits. (Held inline up to 24 digits, as text: it
/// orders and hashes as its text does.)
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(pub(super) compact_str::CompactString);

/// A map keyed by [`InstanceId`], for the maps that hold a whole fleet ([`IdHasher`]).
pub type IdMap<V> =
    std::collections::HashMap<InstanceId, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Hashes instance ids for [`IdMap`]: they are short digit strings written by the operator,
/// not keys an attacker picks, so a multiply hash (as rustc's FxHash, with MurmurHash3's
/// finaliser) does the work of SipHash, whose protection against flooding they do not
/// need, in a fraction of its time.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher(u64);

impl IdHasher {
    fn add(&mut self, word: u64) {
        const SEED: u64 = 0xf135_7aea_2e62_a9c5;
        self.0 = (self.0 ^ word).wrapping_mul(SEED);
    }
}

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        // The multiplies leave their entropy in the high bits, and the table indexes by the
        // low ones: MurmurHash3's finaliser mixes every bit into every other.
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
}

impl InstanceId {
    /// Validates `text` as an instance id.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.is_empty() && text.len() <= 32 && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(text.into()))
        } else {
            Err(format!(
                "idInstance `{text}` must be digits, like \"1101000001\""
            ))
        }
    }

    /// [`Self::parse`], for an id a person wrote (the manifest, `--instance`): GREEN-API's
    /// ids never start with 0, and `5`, `05` and `005` would be three instances of one
    /// number. (Records already kept under such an id are still read.)
    pub fn parse_written(text: &str) -> Result<Self, String> {
        let id = Self::parse(text)?;
        let digits = text.trim_start_matches('0');
        match (text.starts_with('0'), digits.is_empty()) {
            (false, _) => Ok(id),
            (true, true) => Err(format!(
                "idInstance `{text}` starts with 0; GREEN-API's ids never do"
            )),
            (true, false) => Err(format!(
                "idInstance `{text}` starts with 0; GREEN-API's ids never do (write it \
                 without the leading zeros: `{digits}`)"
            )),
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
        d.deserialize_str(IdVisitor)
    }
}

/// Reads an id from the text as given (no `String` on the way).
struct IdVisitor;

impl serde::de::Visitor<'_> for IdVisitor {
    type Value = InstanceId;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an idInstance (digits)")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<InstanceId, E> {
        InstanceId::parse(text).map_err(E::custom)
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A GREEN-API base URL: `https://…`, or `http://` to a loopback host; no trailing `/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ApiUrl(pub(super) String);

impl ApiUrl {
    /// Validates `text` as an API URL.
    pub fn parse(text: &str) -> Result<Self, String> {
        let who = format!("apiUrl `{text}`");
        let url = secure_url(text, &who, "the token travels in the URL, so ")?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("{who} must not have a query or fragment"));
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

/// `text` as a URL that may carry a secret (`apiUrl`'s token in its path, a receiver's
/// whole URL): `https://`, or `http://` to a loopback host only; a host; no user name or
/// password. `who` names it in errors (`apiUrl \`…\``, `notify url`); `why` comes before
/// "use https://" when http:// goes elsewhere. The rule `apiUrl` and `notify:` share.
pub(crate) fn secure_url(text: &str, who: &str, why: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| format!("{who} is not a URL ({e})"))?;
    let host = url.host_str().unwrap_or_default();
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => {
            return Err(format!(
                "{who} uses http:// to a host that is not loopback; {why}use https:// \
                 (http:// is allowed only for 127.0.0.1, ::1 and localhost)"
            ));
        }
        other => return Err(format!("{who} must be https:// (not {other}://)")),
    }
    if host.is_empty() {
        return Err(format!("{who} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{who} must not carry a user name or password"));
    }
    Ok(url)
}

/// Whether `host` (a URL's host, IPv6 in brackets or not) is `localhost` or a loopback
/// address.
pub fn is_loopback(host: &str) -> bool {
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
