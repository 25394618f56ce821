//! Where an instance's token comes from, and reading it (a file or a variable may change
//! while the daemon runs, so it is read when a call may follow, not at load).

use super::expand::ExpandError;
use super::values::ApiToken;
use std::path::PathBuf;

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
                ApiToken::parse(&value)
                    .map_err(|e| TokenError::Invalid(format!("apiTokenEnv: variable {name}: {e}")))
            }
            Self::File(Err(why)) => Err(TokenError::Unavailable(format!("apiTokenFile: {why}"))),
            Self::File(Ok(path)) => {
                let cannot = |e: &dyn std::fmt::Display| {
                    TokenError::Unavailable(format!(
                        "apiTokenFile: cannot read {}: {e}",
                        path.display()
                    ))
                };
                let bytes = crate::fsio::read_regular(path, MAX_TOKEN_FILE_BYTES)
                    .map_err(|e| cannot(&e))?;
                let text = String::from_utf8(bytes).map_err(|e| cannot(&e))?;
                ApiToken::parse(&text).map_err(|e| {
                    TokenError::Invalid(format!("apiTokenFile {}: {e}", path.display()))
                })
            }
        }
    }

    /// For an `apiTokenFile` its group or others may read (`mode & 0o077` set, the file
    /// a symlink points at): the path and its permission bits. Never reads the token.
    pub fn open_file(&self) -> Option<(&std::path::Path, u32)> {
        use std::os::unix::fs::PermissionsExt as _;
        let Self::File(Ok(path)) = self else {
            return None;
        };
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
        (mode & 0o077 != 0).then_some((path.as_path(), mode))
    }
}

/// The most of a token file that is read, in bytes: a token is a few dozen characters.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;
