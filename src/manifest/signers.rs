//! The keys allowed to sign the revisions avatar-sync applies (`--verify-signers`): git's
//! `allowed_signers` format (`gpg.ssh.allowedSignersFile`), or an ASCII-armoured OpenPGP
//! keyring ([`super::openpgp`]). A commit's SSH signature is checked as `git verify-commit`
//! does with `gpg.format=ssh`: an `sshsig` of namespace `git` over the commit without its
//! `gpgsig` header, made by a key the file lists, for namespace `git`, valid at the
//! commit's time. Pure Rust (the `ssh-key` crate): no `ssh-keygen` or `gpg` at run time.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// One line of the file: who, which key, and its limits.
#[derive(Clone, Debug)]
struct Entry {
    line: usize,
    /// As written: names or patterns (`*@example.com`), comma-separated.
    principals: String,
    key: ssh_key::PublicKey,
    /// `namespaces="…"`; `None` means every namespace.
    namespaces: Option<Vec<String>>,
    valid_after: Option<SystemTime>,
    valid_before: Option<SystemTime>,
}

/// The keys of one `--verify-signers` file.
#[derive(Clone, Debug)]
pub struct AllowedSigners {
    file: PathBuf,
    keys: Keys,
}

/// SSH keys or an OpenPGP keyring, as the file holds.
#[derive(Clone, Debug)]
enum Keys {
    Ssh(Vec<Entry>),
    OpenPgp(super::openpgp::Keyring),
}

/// Who signed a verified commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signer {
    /// The principals of the allowed-signers line that holds the key.
    pub principals: String,
    /// The key's SHA-256 fingerprint, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.principals, self.fingerprint)
    }
}

/// Why a commit is not verified, in an operator's words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    /// The commit carries no signature.
    #[error("the commit is not signed")]
    Unsigned,
    /// Signed in the other format than the allowed signers' keys (OpenPGP or SSH).
    #[error("the commit is signed with {0}, and the allowed signers are not {0} keys")]
    OtherFormat(&'static str),
    /// Signed by a key the file does not list.
    #[error("signed by {0}, a key not in the allowed signers")]
    UnknownKey(String),
    /// The key is listed, but not for namespace `git`, or not at the commit's time.
    #[error("signed by {0}")]
    NotAllowed(String),
    /// The signature does not match the commit (another commit's, or altered).
    #[error("the signature does not match the commit ({0})")]
    BadSignature(String),
}

/// The key types a line may name (OpenSSH's, certificates aside).
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// The most of the file that is read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

impl AllowedSigners {
    /// Reads `file`. An error names the file and the line.
    pub fn load(file: &Path) -> Result<Self, String> {
        let bytes = crate::fsio::read_regular(file, MAX_FILE_BYTES)
            .map_err(|e| format!("--verify-signers {}: cannot read it: {e}", file.display()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("--verify-signers {}: not text", file.display()))?;
        Self::parse(&text, file)
    }

    /// The allowed signers in `text`, read from `file`.
    pub fn parse(text: &str, file: &Path) -> Result<Self, String> {
        if text.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----")
            || text.contains("-----BEGIN PGP PRIVATE KEY BLOCK-----")
        {
            let keyring = super::openpgp::Keyring::parse(text)
                .map_err(|why| format!("--verify-signers {}: {why}", file.display()))?;
            return Ok(Self {
                file: file.to_owned(),
                keys: Keys::OpenPgp(keyring),
            });
        }
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |why: String| format!("--verify-signers {}:{}: {why}", file.display(), n + 1);
            entries.push(entry(line, n + 1).map_err(at)?);
        }
        if entries.is_empty() {
            return Err(format!(
                "--verify-signers {}: no key in it (lines like `alice@example.com ssh-ed25519 AAAA…`)",
                file.display()
            ));
        }
        Ok(Self {
            file: file.to_owned(),
            keys: Keys::Ssh(entries),
        })
    }

    /// The file it was read from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Checks the SSH signature `armoured` over `payload` of a commit made at `time`.
    pub fn verify(
        &self,
        armoured: &str,
        payload: &[u8],
        time: SystemTime,
    ) -> Result<Signer, Unverified> {
        let openpgp = armoured
            .trim_start()
            .starts_with("-----BEGIN PGP SIGNATURE-----");
        let entries = match (&self.keys, openpgp) {
            (Keys::OpenPgp(keyring), true) => return keyring.verify(armoured, payload, time),
            (Keys::OpenPgp(_), false) => return Err(Unverified::OtherFormat("SSH")),
            (Keys::Ssh(_), true) => return Err(Unverified::OtherFormat("OpenPGP")),
            (Keys::Ssh(entries), false) => entries,
        };
        let signature = ssh_key::SshSig::from_pem(armoured.trim())
            .map_err(|e| Unverified::BadSignature(format!("not an SSH signature: {e}")))?;
        let fingerprint = signature
            .public_key()
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string();
        let listed: Vec<&Entry> = (entries.iter())
            .filter(|e| e.key.key_data() == signature.public_key())
            .collect();
        if listed.is_empty() {
            return Err(Unverified::UnknownKey(fingerprint));
        }
        let mut refusals = Vec::new();
        for entry in listed {
            let signer = Signer {
                principals: entry.principals.clone(),
                fingerprint: fingerprint.clone(),
            };
            if let Some(namespaces) = &entry.namespaces
                && !namespaces.iter().any(|n| n == "git")
            {
                refusals.push(format!(
                    "{signer}, allowed (line {}) for namespaces {} only, not git",
                    entry.line,
                    namespaces.join(",")
                ));
                continue;
            }
            if entry.valid_after.is_some_and(|after| time < after) {
                refusals.push(format!(
                    "{signer} before the key is valid (line {}: valid-after)",
                    entry.line
                ));
                continue;
            }
            if entry.valid_before.is_some_and(|before| time >= before) {
                refusals.push(format!(
                    "{signer} after the key expired (line {}: valid-before)",
                    entry.line
                ));
                continue;
            }
            return match entry.key.verify("git", payload, &signature) {
                Ok(()) => Ok(signer),
                Err(e) => Err(Unverified::BadSignature(e.to_string())),
            };
        }
        Err(Unverified::NotAllowed(refusals.join("; ")))
    }
}

/// One line: `principals [options] keytype base64 [comment]`.
fn entry(line: &str, number: usize) -> Result<Entry, String> {
    let (principals, rest) = line
        .split_once(char::is_whitespace)
        .ok_or("a line is `principals [options] keytype key`")?;
    let rest = rest.trim_start();
    let starts_with_key = KEY_TYPES.iter().any(|t| rest.starts_with(&format!("{t} ")));
    let (options, key) = if starts_with_key {
        ("", rest)
    } else {
        split_options(rest)?
    };
    let key = ssh_key::PublicKey::from_openssh(key.trim())
        .map_err(|e| format!("not an SSH public key ({e})"))?;
    let mut entry = Entry {
        line: number,
        principals: principals.to_owned(),
        key,
        namespaces: None,
        valid_after: None,
        valid_before: None,
    };
    for option in options_of(options) {
        let (name, value) = option.split_once('=').unwrap_or((option.as_str(), ""));
        let value = value.trim_matches('"');
        match name.to_ascii_lowercase().as_str() {
            "namespaces" => {
                entry.namespaces = Some(value.split(',').map(str::to_owned).collect());
            }
            "valid-after" => entry.valid_after = Some(time(value)?),
            "valid-before" => entry.valid_before = Some(time(value)?),
            "cert-authority" => {
                return Err("cert-authority: certificates are not supported; list the \
                            signers' own keys"
                    .to_owned());
            }
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(entry)
}

/// The options (up to the first space outside quotes) and the rest.
fn split_options(text: &str) -> Result<(&str, &str), String> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return Ok((&text[..i], &text[i..])),
            _ => {}
        }
    }
    Err("no key after the options".to_owned())
}

/// `a,b="x,y",c` → `a`, `b="x,y"`, `c`.
fn options_of(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `YYYYMMDD[HHMM[SS]]Z`: ssh-keygen's times. One without `Z` is local time, which differs
/// between hosts: refused.
fn time(text: &str) -> Result<SystemTime, String> {
    let Some(digits) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) else {
        return Err(format!(
            "`{text}`: write the time in UTC with a Z (`{text}Z`): local time differs between hosts"
        ));
    };
    let bad = || format!("`{text}` is not a time like 20261206Z or 202612061530Z");
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(bad());
    }
    let part = |range: std::ops::Range<usize>| digits.get(range).unwrap_or("00");
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        part(0..4),
        part(4..6),
        part(6..8),
        part(8..10),
        part(10..12),
        part(12..14)
    );
    humantime::parse_rfc3339(&rfc3339).map_err(|_| bad())
}

/// The commit time of a commit, as the signature is checked against.
pub fn commit_time(seconds: i64) -> SystemTime {
    match u64::try_from(seconds) {
        Ok(s) => SystemTime::UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => SystemTime::UNIX_EPOCH,
    }
}

#[cfg(test)]
#[path = "signers_tests.rs"]
mod tests;
