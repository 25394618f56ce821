//! Reads a picture file (at most 10 MiB, and not while someone is still writing it) and
//! hashes it.
//!
//! This is the only code that reads picture files; [`process`] turns their bytes into the
//! JPEG to upload, [`hashes`] and [`prepared`] cache both steps in the state directory. A picture is identified by the SHA-256 of its bytes
//! ([`Digest`]): of the source file for the hash cache, of the prepared JPEG for what the
//! state records as applied and what the planner compares.

pub mod caches;
pub mod hashes;
// `--drift` compares live pictures with it (adoption and the daemon's checks will too).
pub(crate) mod pass;
pub(crate) mod phash;
pub(crate) mod prepared;
pub mod process;

use crate::outcome::LocalKind;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Pictures larger than this (10 MiB) are refused before reading them whole.
pub const MAX_PICTURE_BYTES: u64 = 10 * 1024 * 1024;

/// The SHA-256 of a picture's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The 32 bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Hashes `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The first 12 hex digits, for tables and logs.
    pub fn short(&self) -> String {
        self.to_string()[..12].to_owned()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Reports print tens of thousands of digests: one write, not 32 formatted bytes.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 64];
        for (pair, byte) in text.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xF)];
        }
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

impl FromStr for Digest {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        // A state file holds one or two digests per instance: a table, not a match per digit.
        const NOT_HEX: u8 = 0xff;
        const NIBBLE: [u8; 256] = {
            let mut table = [NOT_HEX; 256];
            let mut i = 0;
            while i < 10 {
                table[b'0' as usize + i] = i as u8;
                i += 1;
            }
            let mut i = 0;
            while i < 6 {
                table[b'a' as usize + i] = 10 + i as u8;
                i += 1;
            }
            table
        };
        let bad = || format!("`{text}` is not a SHA-256 (64 lowercase hex digits)");
        if text.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        let mut any_bad = 0;
        for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let (high, low) = (NIBBLE[usize::from(pair[0])], NIBBLE[usize::from(pair[1])]);
            any_bad |= (high | low) & 0xf0;
            *byte = (high << 4) | (low & 0x0f);
        }
        if any_bad != 0 {
            return Err(bad());
        }
        Ok(Self(out))
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Read in place: a state file holds one or two digests per instance.
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = Digest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a SHA-256 (64 lowercase hex digits)")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Digest, E> {
                text.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Hex)
    }
}

/// A picture that passed every check: its bytes, their digest, and the identity of the
/// file they were read from.
#[derive(Clone)]
pub struct Picture {
    /// Exactly the bytes that will be uploaded.
    pub bytes: Vec<u8>,
    /// The SHA-256 of `bytes`.
    pub digest: Digest,
    /// The file as it was while it was read.
    pub identity: Identity,
}

/// What identifies a file's content without reading it: where it is on disk and when it
/// last changed. Any write, rename over or `chmod` changes at least one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Last status change, nanoseconds since the epoch.
    pub ctime_ns: i64,
}

impl Identity {
    /// The identity in `meta`.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        let ns = |secs: i64, nanos: i64| secs.saturating_mul(1_000_000_000).saturating_add(nanos);
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// Why a picture cannot be used. Each is an error of the instances that name it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PictureError {
    /// The file does not exist.
    #[error("picture {path} does not exist")]
    Missing {
        /// The path that was read.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("picture {path} cannot be read: {reason}")]
    Unreadable {
        /// The path that was read.
        path: PathBuf,
        /// The I/O error, as text.
        reason: String,
    },
    /// The file is larger than [`MAX_PICTURE_BYTES`].
    #[error("picture {path} is {size} bytes; the limit is {MAX_PICTURE_BYTES} bytes (10 MiB)")]
    TooLarge {
        /// The path that was read.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// The file changed while it was being read (someone is still writing it).
    #[error(
        "picture {path} changed while it was being read; it is looked at again once it is quiet"
    )]
    Changing {
        /// The path that was read.
        path: PathBuf,
    },
}

impl PictureError {
    /// What kind of problem it is for the instance that shows the picture.
    pub fn kind(&self) -> LocalKind {
        match self {
            Self::Missing { .. } => LocalKind::PictureMissing,
            Self::Unreadable { .. } => LocalKind::PictureUnreadable,
            Self::TooLarge { .. } => LocalKind::PictureTooLarge,
            Self::Changing { .. } => LocalKind::PictureChanging,
        }
    }

    /// A stable machine label for `--json` and logs.
    pub fn label(&self) -> &'static str {
        self.kind().label()
    }
}

/// How long a picture file must have been still (its last change, `ctime`, at least this
/// old) before it is uploaded: the daemon's quiet window. A writer that rewrites a picture
/// in place in several writes leaves a torn file between them, often a valid JPEG; any
/// pause shorter than this is waited out, in every mode (a resync or a one-shot run reads
/// pictures without any file event). `cp`, editors and `git checkout` finish in far less.
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(300);

/// Reads the picture at `path`: at most 10 MiB, and not while it is being written.
pub fn read(path: &Path) -> Result<Picture, PictureError> {
    let unreadable = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => PictureError::Missing {
            path: path.to_owned(),
        },
        _ => PictureError::Unreadable {
            path: path.to_owned(),
            reason: e.to_string(),
        },
    };
    let file = crate::fsio::open_regular(path).map_err(unreadable)?;
    let before = file.metadata().map_err(unreadable)?;
    let size = before.len();
    if size > MAX_PICTURE_BYTES {
        return Err(PictureError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    // The file may grow between the stat and the read: never read past the limit.
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    (&file)
        .take(MAX_PICTURE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    // A writer still at work shows as a size or mtime that moved under us.
    let after = file.metadata().map_err(unreadable)?;
    if after.len() != size || after.modified().ok() != before.modified().ok() {
        return Err(PictureError::Changing {
            path: path.to_owned(),
        });
    }
    if bytes.len() as u64 > MAX_PICTURE_BYTES {
        return Err(PictureError::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
        });
    }
    let digest = Digest::of(&bytes);
    Ok(Picture {
        bytes,
        digest,
        identity: Identity::of(&after),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn a_complete_jpeg_is_read_and_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "a.jpg",
            &[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 0xFF, 0xD9],
        );
        let picture = read(&path).unwrap();
        assert_eq!(picture.bytes.len(), 8);
        assert_eq!(picture.digest, Digest::of(&picture.bytes));
    }

    #[test]
    fn a_missing_picture_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read(&dir.path().join("nope.jpg")).err().unwrap();
        assert_eq!(missing.label(), "picture-missing");
        assert!(missing.to_string().contains("nope.jpg"), "{missing}");
    }

    #[test]
    fn a_picture_over_the_limit_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jpg");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_PICTURE_BYTES + 1).unwrap();
        assert_eq!(read(&path).err().unwrap().label(), "picture-too-large");
    }

    #[test]
    fn digests_print_and_parse_as_lowercase_hex() {
        let digest = Digest::of(b"abc");
        let text = digest.to_string();
        assert_eq!(
            text,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(text.parse::<Digest>(), Ok(digest));
        assert!("BA78".parse::<Digest>().is_err());
        // 64 characters, one of them not a lowercase hex digit, wherever it is.
        for at in [0, 1, 31, 62, 63] {
            for wrong in ['A', 'g', ' ', '/', ':', '`', 'G'] {
                let mut bad = text.clone().into_bytes();
                bad[at] = wrong as u8;
                let bad = String::from_utf8(bad).unwrap();
                assert!(bad.parse::<Digest>().is_err(), "{bad}");
            }
        }
        let upper = text.to_uppercase();
        assert!(upper.parse::<Digest>().is_err());
        // Bytes across the range round-trip.
        let all: String = (0..32u8).map(|b| format!("{:02x}", b * 8 + 7)).collect();
        assert_eq!(all.parse::<Digest>().unwrap().to_string(), all);
    }
}
