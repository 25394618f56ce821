//! Tokens sealed with age: a token file (or variable) whose content is an age file, binary
//! or armoured (`age -r RECIPIENT`, `age -a`), is opened in memory with the identities of
//! `--age-identity`, so the sealed file can live in git beside the manifest. The clear
//! token is never written anywhere; the buffers that held it are wiped.
//!
//! The identities are the process's, as its environment is (`apiTokenEnv` reads that):
//! loaded once at start, read wherever a token is resolved.

use super::token::TokenError;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

/// The identities of one `--age-identity` file.
pub struct AgeIdentities {
    file: PathBuf,
    keys: Vec<age::x25519::Identity>,
}

impl std::fmt::Debug for AgeIdentities {
    /// Never the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AgeIdentities({}, {} keys)",
            self.file.display(),
            self.keys.len()
        )
    }
}

/// The most of an identity file that is read: a key is a line of 74 characters.
const MAX_IDENTITY_FILE_BYTES: u64 = 64 * 1024;
/// The most of a sealed token that is read or opened.
pub(super) const MAX_SEALED_BYTES: u64 = 64 * 1024;

impl AgeIdentities {
    /// Reads the identities in `file`: `AGE-SECRET-KEY-1…` lines, `#` comments and blank
    /// lines skipped, as `age-keygen` writes them. An error names the file and the line,
    /// never the line's content.
    pub fn load(file: &Path) -> Result<Self, String> {
        let bytes = crate::fsio::read_regular(file, MAX_IDENTITY_FILE_BYTES)
            .map_err(|e| format!("--age-identity {}: cannot read it: {e}", file.display()))?;
        let bytes = Zeroizing::new(bytes);
        if is_sealed(&bytes) {
            return Err(format!(
                "--age-identity {}: the file is itself an age file (a passphrase-protected \
                 identity?); give the identity in clear, as a systemd credential keeps it",
                file.display()
            ));
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| format!("--age-identity {}: not text", file.display()))?;
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = age::x25519::Identity::from_str(line).map_err(|_| {
                format!(
                    "--age-identity {}:{}: not an age identity (a line like \
                     AGE-SECRET-KEY-1…, as age-keygen writes; not shown)",
                    file.display(),
                    n + 1
                )
            })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(format!(
                "--age-identity {}: no identity in it (AGE-SECRET-KEY-1… lines)",
                file.display()
            ));
        }
        Ok(Self {
            file: file.to_owned(),
            keys,
        })
    }

    /// The public keys (`age1…`), for a message.
    pub fn recipients(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.to_public().to_string())
            .collect()
    }
}

static IDENTITIES: RwLock<Option<Arc<AgeIdentities>>> = RwLock::new(None);

/// Makes `identities` the process's (or none).
pub fn use_identities(identities: Option<AgeIdentities>) {
    let mut slot = IDENTITIES.write().unwrap_or_else(|e| e.into_inner());
    *slot = identities.map(Arc::new);
}

fn identities() -> Option<Arc<AgeIdentities>> {
    IDENTITIES.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Whether `bytes` are an age file: binary (`age-encryption.org/v1`) or armoured.
pub(super) fn is_sealed(bytes: &[u8]) -> bool {
    let start = bytes.trim_ascii_start();
    start.starts_with(b"age-encryption.org/v1\n")
        || start.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
}

/// Opens the age file `bytes` (the token of `source`, as an error names it) with the
/// process's identities.
pub(super) fn unseal(bytes: &[u8], source: &str) -> Result<Zeroizing<Vec<u8>>, TokenError> {
    let Some(identities) = identities() else {
        return Err(TokenError::Unavailable(format!(
            "{source} is sealed with age and no --age-identity is given to open it"
        )));
    };
    open(bytes, &identities).map_err(|why| TokenError::Invalid(format!("{source}: {why}")))
}

/// Opens `bytes` with `identities`, or says why not (never showing what it holds).
fn open(bytes: &[u8], identities: &AgeIdentities) -> Result<Zeroizing<Vec<u8>>, String> {
    let armoured = age::armor::ArmoredReader::new(bytes.trim_ascii_start());
    let decryptor = age::Decryptor::new_buffered(std::io::BufReader::new(armoured))
        .map_err(|e| format!("not a valid age file ({e})"))?;
    let keys = identities.keys.iter().map(|k| k as &dyn age::Identity);
    let reader = decryptor.decrypt(keys).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys => format!(
            "sealed with age for another recipient: none of the {} in --age-identity {} \
             ({}) opens it",
            match identities.keys.len() {
                1 => "1 identity".to_owned(),
                n => format!("{n} identities"),
            },
            identities.file.display(),
            identities.recipients().join(", ")
        ),
        other => format!("the age file cannot be opened ({other})"),
    })?;
    let mut clear = Zeroizing::new(Vec::new());
    reader
        .take(MAX_SEALED_BYTES)
        .read_to_end(&mut clear)
        .map_err(|e| format!("the age file cannot be opened ({e})"))?;
    Ok(clear)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn seal(token: &str, to: &age::x25519::Identity, armour: bool) -> Vec<u8> {
        let recipient = to.to_public();
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .unwrap();
        let mut out = Vec::new();
        let format = if armour {
            age::armor::Format::AsciiArmor
        } else {
            age::armor::Format::Binary
        };
        let armoured = age::armor::ArmoredWriter::wrap_output(&mut out, format).unwrap();
        let mut writer = encryptor.wrap_output(armoured).unwrap();
        writer.write_all(token.as_bytes()).unwrap();
        writer.finish().unwrap().finish().unwrap();
        out
    }

    fn identities(keys: Vec<age::x25519::Identity>) -> AgeIdentities {
        AgeIdentities {
            file: PathBuf::from("/run/credentials/avatar-sync.service/age-identity"),
            keys,
        }
    }

    #[test]
    fn a_binary_or_armoured_age_file_opens_with_a_matching_identity() {
        let key = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        for armour in [false, true] {
            let sealed = seal("tokenABC123", &key, armour);
            assert!(is_sealed(&sealed));
            let clear = open(&sealed, &identities(vec![other.clone(), key.clone()])).unwrap();
            assert_eq!(clear.as_slice(), b"tokenABC123");
        }
        assert!(!is_sealed(b"tokenABC123"));
    }

    #[test]
    fn another_recipients_file_names_the_identity_file_and_its_public_keys_only() {
        let key = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let sealed = seal("tokenABC123", &key, true);
        let why = open(&sealed, &identities(vec![other.clone()])).unwrap_err();
        assert!(why.contains("another recipient"), "{why}");
        assert!(
            why.contains("/run/credentials/avatar-sync.service/age-identity"),
            "{why}"
        );
        assert!(why.contains(&other.to_public().to_string()), "{why}");
        use age::secrecy::ExposeSecret as _;
        assert!(!why.contains(other.to_string().expose_secret()), "{why}");
        let garbled = b"age-encryption.org/v1\n-> X25519 nonsense\n";
        assert!(open(garbled, &identities(vec![other])).is_err());
    }

    #[test]
    fn an_identity_file_is_read_as_age_keygen_writes_it_and_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let key = age::x25519::Identity::generate();
        use age::secrecy::ExposeSecret as _;
        let secret = key.to_string().expose_secret().to_owned();
        let path = dir.path().join("identity");
        let text = format!(
            "# created: 2026-12-06T00:00:00Z\n# public key: {}\n{secret}\n",
            key.to_public()
        );
        std::fs::write(&path, text).unwrap();
        let loaded = AgeIdentities::load(&path).unwrap();
        assert_eq!(loaded.recipients(), [key.to_public().to_string()]);
        assert!(!format!("{loaded:?}").contains(&secret));

        std::fs::write(&path, format!("{secret}\nAGE-SECRET-KEY-1NOPE\n")).unwrap();
        let why = AgeIdentities::load(&path).unwrap_err();
        assert!(why.ends_with("identity:2: not an age identity (a line like AGE-SECRET-KEY-1…, as age-keygen writes; not shown)"), "{why}");
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(
            AgeIdentities::load(&path)
                .unwrap_err()
                .contains("no identity")
        );
        std::fs::write(&path, seal("x", &key, true)).unwrap();
        assert!(
            AgeIdentities::load(&path)
                .unwrap_err()
                .contains("itself an age file")
        );
    }
}
