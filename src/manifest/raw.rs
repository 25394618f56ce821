//! The manifest as YAML writes it: serde structs with line spans, private to this folder.
//! They become [`super::parsed`]'s structs, which [`super::validate`] turns into typed values.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::fmt;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawManifest {
    pub(super) api_url: Option<Spanned<String>>,
    pub(super) min_interval: Option<Spanned<String>>,
    pub(super) resync_interval: Option<Spanned<String>>,
    pub(super) adopt: Option<bool>,
    pub(super) drift: Option<Spanned<String>>,
    pub(super) drift_interval: Option<Spanned<String>>,
    pub(super) fit: Option<Spanned<String>>,
    pub(super) size: Option<Spanned<u32>>,
    pub(super) background: Option<Spanned<String>>,
    pub(super) quality: Option<Spanned<u8>>,
    pub(super) instances: Vec<Spanned<RawInstance>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawInstance {
    pub(super) id_instance: Spanned<RawId>,
    pub(super) api_token_file: Option<Spanned<String>>,
    pub(super) api_token_env: Option<Spanned<String>>,
    pub(super) api_token_instance: Option<Spanned<String>>,
    pub(super) picture: Spanned<String>,
    pub(super) api_url: Option<Spanned<String>>,
    pub(super) fit: Option<Spanned<String>>,
    pub(super) size: Option<Spanned<u32>>,
    pub(super) background: Option<Spanned<String>>,
    pub(super) quality: Option<Spanned<u8>>,
    pub(super) drift: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) suspend: bool,
}

/// `idInstance` exactly as written: the scalar's text, quoted or not. YAML would read
/// `0x10` as 16 and `1_000` as 1000, silently naming another instance; asking for a string
/// keeps the text, so only digits as written pass validation.
pub(super) struct RawId(pub(super) String);

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
        }
        d.deserialize_str(Visitor)
    }
}
