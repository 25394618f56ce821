//! `${NAME}` in paths, expanded from the environment.

/// Why `${NAME}` could not be expanded: an error of the one instance that uses it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// `${NAME}` names a variable that is not set, or set to nothing (an empty
    /// `${CREDENTIALS_DIRECTORY}` would turn `${CREDENTIALS_DIRECTORY}/a.token` into
    /// `/a.token`).
    #[error("`{text}` uses ${{{name}}}, which is not set (or is empty)")]
    Unset {
        /// The text as written.
        text: String,
        /// The variable.
        name: String,
    },
    /// `${` without a closing `}`.
    #[error("`{text}` has `${{` without a closing `}}`")]
    Unclosed {
        /// The text as written.
        text: String,
    },
    /// `${...}` holds something that is not a variable name.
    #[error("`${{{name}}}` in `{text}` is not a variable name")]
    BadName {
        /// The text as written.
        text: String,
        /// What stood between the braces.
        name: String,
    },
}

impl ExpandError {
    /// A stable machine label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unset { .. } => "unset-variable",
            Self::Unclosed { .. } | Self::BadName { .. } => "bad-variable",
        }
    }
}

/// Whether `name` is an environment variable name (`[A-Za-z_][A-Za-z0-9_]*`).
pub(super) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces each `${NAME}` in `text` with the variable's value; `$` alone stays as it is.
/// A variable set to nothing is an error, as an unset one is.
pub(crate) fn expand_vars(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| ExpandError::Unclosed {
            text: text.to_owned(),
        })?;
        let name = &after[..end];
        if !is_env_name(name) {
            return Err(ExpandError::BadName {
                text: text.to_owned(),
                name: name.to_owned(),
            });
        }
        let value = env(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ExpandError::Unset {
                text: text.to_owned(),
                name: name.to_owned(),
            })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
