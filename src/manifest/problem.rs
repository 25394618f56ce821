//! What can be wrong with a manifest: each problem has a kind with a stable label, the file,
//! the line and the instance it concerns; a [`ManifestError`] lists them all.

use std::fmt;
use std::path::{Path, PathBuf};

/// What kind of problem, each with a stable machine label (for `--json`, logs and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// The manifest file could not be read.
    Unreadable,
    /// Not valid YAML, or a value of the wrong type.
    Yaml,
    /// A YAML safety limit was hit (an alias bomb, deep nesting).
    YamlLimit,
    /// A key the manifest does not know.
    UnknownKey,
    /// A key written twice in one mapping.
    DuplicateKey,
    /// A required key is missing.
    MissingKey,
    /// An `idInstance` that is not digits.
    InvalidId,
    /// An `idInstance` given twice.
    DuplicateId,
    /// An `apiUrl` that is not a URL, or not `https://` (or `http://` to loopback).
    InvalidUrl,
    /// A duration that does not parse, is zero or too short.
    InvalidDuration,
    /// A processing option (`fit`, `size`, `background`, `quality`) out of its range.
    InvalidOption,
    /// No token source, or more than one.
    TokenSource,
    /// A token (or token variable name) that is malformed.
    InvalidToken,
    /// `picture` is empty.
    EmptyPicture,
    /// A warning: a token is written in the manifest (and so in git).
    SecretInManifest,
    /// A warning of `--check`: a token source is absent here.
    TokenUnavailable,
    /// A warning: `minInterval` under WhatsApp's 10 s, so calls come back `rate-overlimit`
    /// (each one a real GREEN-API call).
    MinIntervalShort,
    /// A warning of `--check`: an `apiTokenFile` that its group or others may read.
    TokenFileOpen,
}

impl ProblemKind {
    /// The stable machine label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unreadable => "manifest-unreadable",
            Self::Yaml => "yaml",
            Self::YamlLimit => "yaml-limit",
            Self::UnknownKey => "unknown-key",
            Self::DuplicateKey => "duplicate-key",
            Self::MissingKey => "missing-key",
            Self::InvalidId => "invalid-id",
            Self::DuplicateId => "duplicate-id",
            Self::InvalidUrl => "invalid-url",
            Self::InvalidDuration => "invalid-duration",
            Self::InvalidOption => "invalid-option",
            Self::TokenSource => "token-source",
            Self::InvalidToken => "token-invalid",
            Self::EmptyPicture => "empty-picture",
            Self::SecretInManifest => "secret-in-manifest",
            Self::TokenUnavailable => "token-unavailable",
            Self::MinIntervalShort => "min-interval-short",
            Self::TokenFileOpen => "token-file-open",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One problem in a manifest, at a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What kind of problem.
    pub kind: ProblemKind,
    /// The manifest file.
    pub path: PathBuf,
    /// 1-based line; `None` when the parser could not tell.
    pub line: Option<u64>,
    /// The instance it concerns, if any.
    pub instance: Option<String>,
    /// What is wrong, in one line.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if let Some(id) = &self.instance {
            write!(f, "instance {id}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A manifest that cannot be used: every problem found, each naming file and line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// The problems, in file order.
    pub problems: Vec<Problem>,
    /// The pictures the instances without problems name, so that `--check` lists a missing
    /// picture file in the same pass as the manifest's problems.
    pub pictures: Vec<PictureRef>,
}

/// A picture an instance names, at its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PictureRef {
    /// The instance's line.
    pub line: u64,
    /// The instance.
    pub instance: String,
    /// The picture's path (expanded, joined to the manifest's folder).
    pub path: PathBuf,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

impl ManifestError {
    /// A stable machine label: the kind of the first problem.
    pub fn label(&self) -> &'static str {
        self.problems
            .first()
            .map_or("manifest-invalid", |p| p.kind.label())
    }

    /// Whether some problem is of `kind`.
    pub fn has(&self, kind: ProblemKind) -> bool {
        self.problems.iter().any(|p| p.kind == kind)
    }

    /// A manifest error of one problem, concerning no instance.
    pub(super) fn one(
        kind: ProblemKind,
        path: &Path,
        line: Option<u64>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            problems: vec![Problem {
                kind,
                path: path.to_owned(),
                line,
                instance: None,
                message: message.into(),
            }],
            pictures: Vec::new(),
        }
    }
}

/// `text` with every character that does not show (controls, zero-width and bidi marks,
/// soft hyphens, byte-order marks) written as `<U+XXXX>`: `id<U+200B>Instance` must not
/// look like the key it imitates.
pub fn visible(text: &str) -> String {
    let hidden = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{00AD}'
                    | '\u{034F}'
                    | '\u{061C}'
                    | '\u{115F}'
                    | '\u{1160}'
                    | '\u{17B4}'
                    | '\u{17B5}'
                    | '\u{180B}'..='\u{180F}'
                    | '\u{200B}'..='\u{200F}'
                    | '\u{202A}'..='\u{202E}'
                    | '\u{2060}'..='\u{206F}'
                    | '\u{3164}'
                    | '\u{FE00}'..='\u{FE0F}'
                    | '\u{FEFF}'
                    | '\u{FFA0}'
                    | '\u{FFF0}'..='\u{FFFB}'
            )
    };
    if !text.chars().any(hidden) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if hidden(c) {
                format!("<U+{:04X}>", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}
