//! Where an instance's token comes from, and reading it (a file or a variable may change
//! while the daemon runs, so it is read when a call may follow, not at load).

use super::expand::ExpandError;
use super::sealed;
use super::values::ApiToken;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Where an instance's token comes from.
#[derive(Clone, Debug)]
pub enum TokenSource {
    /// `apiTokenFile`: the file's content, whitespace trimmed. `Err` when `${NAME}`
    /// expansion failed.
    File(Result<PathBuf, ExpandError>),
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

/// Whether an `apiTokenEnv` value is more likely a token pasted by mistake than a variable's
/// name: long, letters and digits mixed, no `_` (GREEN-API tokens are 50 hex digits).
fn looks_like_a_token(name: &str) -> bool {
    name.len() >= 16
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
        && name.bytes().any(|b| b.is_ascii_digit())
        && name.bytes().any(|b| b.is_ascii_alphabetic())
}

impl TokenError {
    /// What kind of problem it is for its instance.
    pub fn kind(&self) -> crate::outcome::LocalKind {
        match self {
            Self::Unavailable(_) => crate::outcome::LocalKind::TokenUnavailable,
            Self::Invalid(_) => crate::outcome::LocalKind::TokenInvalid,
        }
    }

    /// A stable machine label.
    pub fn label(&self) -> &'static str {
        self.kind().label()
    }
}

impl TokenSource {
    /// Reads the token now (files and variables may change while the daemon runs).
    pub fn resolve(&self) -> Result<ApiToken, TokenError> {
        match self {
            Self::Inline(token) => Ok(token.clone()),
            Self::Env(name) => {
                let value = std::env::var(name).map_err(|_| {
                    TokenError::Unavailable(if looks_like_a_token(name) {
                        format!(
                            "apiTokenEnv names an environment variable that is not set, and \
                             its {}-character name looks like a token itself (not shown): \
                             apiTokenEnv takes the name of the variable that holds the token",
                            name.len()
                        )
                    } else {
                        format!("apiTokenEnv: environment variable {name} is not set")
                    })
                })?;
                let source = format!("apiTokenEnv: variable {name}");
                let value = Zeroizing::new(value.into_bytes());
                let clear = if sealed::is_sealed(&value) {
                    sealed::unseal(&value, &source)?
                } else {
                    value
                };
                parse(&clear).map_err(|e| TokenError::Invalid(format!("{source}: {e}")))
            }
            Self::File(Err(why)) => Err(TokenError::Unavailable(format!("apiTokenFile: {why}"))),
            Self::File(Ok(path)) => {
                let cannot = |e: &dyn std::fmt::Display| {
                    TokenError::Unavailable(format!(
                        "apiTokenFile: cannot read {}: {e}",
                        path.display()
                    ))
                };
                let bytes = crate::fsio::read_regular(path, sealed::MAX_SEALED_BYTES)
                    .map_err(|e| cannot(&e))?;
                let bytes = Zeroizing::new(bytes);
                let source = format!("apiTokenFile {}", path.display());
                let clear = if sealed::is_sealed(&bytes) {
                    sealed::unseal(&bytes, &source)?
                } else {
                    bytes
                };
                parse(&clear).map_err(|e| TokenError::Invalid(format!("{source}: {e}")))
            }
        }
    }

    /// For an `apiTokenFile` its group or others may read (`mode & 0o077` set, the file
    /// a symlink points at): the path and its permission bits. A file sealed with age may
    /// be read by anyone (it is meant for git): only its first bytes are looked at, in
    /// memory, to tell.
    pub fn open_file(&self) -> Option<(&std::path::Path, u32)> {
        use std::io::Read as _;
        use std::os::unix::fs::PermissionsExt as _;
        let Self::File(Ok(path)) = self else {
            return None;
        };
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
        if mode & 0o077 == 0 {
            return None;
        }
        let mut start = Zeroizing::new([0u8; 64]);
        let file = crate::fsio::open_regular(path).ok()?;
        let read = (&file).read(&mut start[..]).ok()?;
        (!sealed::is_sealed(&start[..read])).then_some((path.as_path(), mode))
    }
}

/// A token from the bytes of its source (a file, a variable, an opened age file).
fn parse(bytes: &[u8]) -> Result<ApiToken, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the token is not text".to_owned())?;
    ApiToken::parse(text)
}
