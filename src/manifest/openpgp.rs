//! OpenPGP signers: an ASCII-armoured keyring (`gpg --export --armor`) as the allowed
//! signers, and a commit's OpenPGP signature (`gpg.format=openpgp`, git's default) checked
//! against it in pure Rust (rPGP): the key (or its signing subkey) must be in the keyring,
//! not revoked, and not expired at the commit's time. No `gpg` at run time.

use super::signers::{Signer, Unverified};
use pgp::composed::{Deserializable as _, DetachedSignature, PublicOrSecret, SignedPublicKey};
use pgp::types::KeyDetails as _;
use std::time::{Duration, SystemTime};

/// The keys of an armoured keyring.
#[derive(Clone, Debug)]
pub(super) struct Keyring {
    keys: Vec<SignedPublicKey>,
}

impl Keyring {
    /// The public keys in `text`, each with valid self-signatures.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let (parsed, _) = PublicOrSecret::from_armor_many(text.as_bytes())
            .map_err(|e| format!("not an OpenPGP keyring ({e})"))?;
        let mut keys = Vec::new();
        for key in parsed {
            match key.map_err(|e| format!("a key cannot be read ({e})"))? {
                PublicOrSecret::Public(key) => {
                    key.verify_bindings().map_err(|e| {
                        format!(
                            "key {:X}: its self-signatures do not verify ({e})",
                            key.fingerprint()
                        )
                    })?;
                    keys.push(key);
                }
                PublicOrSecret::Secret(_) => {
                    return Err("it holds a secret key: give public keys only \
                                (gpg --export --armor)"
                        .to_owned());
                }
            }
        }
        if keys.is_empty() {
            return Err("no key in the keyring".to_owned());
        }
        Ok(Self { keys })
    }

    /// Checks the OpenPGP signature `armoured` over `payload` of a commit made at `time`.
    pub(super) fn verify(
        &self,
        armoured: &str,
        payload: &[u8],
        time: SystemTime,
    ) -> Result<Signer, Unverified> {
        let (signature, _) = DetachedSignature::from_armor_single(armoured.as_bytes())
            .map_err(|e| Unverified::BadSignature(format!("not an OpenPGP signature: {e}")))?;
        let key_ids = signature.signature.issuer_key_id();
        let fingerprints = signature.signature.issuer_fingerprint();
        let issuer = (fingerprints.first().map(|f| format!("{f:X}")))
            .or_else(|| key_ids.first().map(|k| hex(k.as_ref())))
            .unwrap_or_else(|| "an unnamed key".to_owned());
        for key in &self.keys {
            let names = |id: pgp::types::KeyId, fp: pgp::types::Fingerprint| {
                key_ids.contains(&&id) || fingerprints.contains(&&fp)
            };
            let primary = &key.primary_key;
            let verifying = if names(primary.legacy_key_id(), primary.fingerprint()) {
                Some(Verifying::Primary(primary))
            } else {
                (key.public_subkeys.iter())
                    .find(|sub| names(sub.key.legacy_key_id(), sub.key.fingerprint()))
                    .map(|sub| Verifying::Subkey(&sub.key))
            };
            let Some(verifying) = verifying else {
                continue;
            };
            let signer = Signer {
                principals: user(key),
                fingerprint: format!("{:X}", key.primary_key.fingerprint()),
            };
            if !key.details.revocation_signatures.is_empty() {
                return Err(Unverified::NotAllowed(format!("{signer}, a revoked key")));
            }
            if let Some(expiry) = expires_at(key)
                && time >= expiry
            {
                return Err(Unverified::NotAllowed(format!(
                    "{signer} after the key expired ({})",
                    humantime::format_rfc3339_seconds(expiry)
                )));
            }
            let checked = match verifying {
                Verifying::Primary(k) => signature.verify(k, payload),
                Verifying::Subkey(k) => signature.verify(k, payload),
            };
            return match checked {
                Ok(()) => Ok(signer),
                Err(e) => Err(Unverified::BadSignature(e.to_string())),
            };
        }
        Err(Unverified::UnknownKey(issuer))
    }
}

/// The key a signature names: the primary key or one of its subkeys.
enum Verifying<'a> {
    Primary(&'a pgp::packet::PublicKey),
    Subkey(&'a pgp::packet::PublicSubkey),
}

/// Bytes as upper-case hex, as gpg prints key ids.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The key's first user id, as text.
fn user(key: &SignedPublicKey) -> String {
    (key.details.users.first())
        .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
        .unwrap_or_else(|| "a key with no user id".to_owned())
}

/// When the key expires, by its latest self-signature that says so.
fn expires_at(key: &SignedPublicKey) -> Option<SystemTime> {
    let created = u64::from(key.primary_key.created_at().as_secs());
    let valid_for = (key.details.users.iter())
        .flat_map(|u| &u.signatures)
        .chain(&key.details.direct_signatures)
        .filter_map(|s| Some((s.created()?.as_secs(), s.key_expiration_time()?)))
        .max_by_key(|(at, _)| *at)
        .map(|(_, valid)| valid)?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(created) + valid_for.into())
}
