//! The daemon's `replace` file ([`REPLACE_FILE`] in the state directory): the ids of
//! instances to upload again though their records say applied, as `--replace` does at
//! start. An operator writes it and sends SIGHUP (`systemctl reload`); the daemon reads it,
//! removes it, and takes each id it holds. One id a line; blank lines and `#` comments are
//! skipped; a line that is no id, or names an instance the daemon does not act on, is
//! logged with its line number and the other lines are still taken.

use crate::layout::REPLACE_FILE;
use crate::manifest::InstanceId;
use std::path::Path;

/// The largest `replace` file read: room for every id of a fleet of 100,000, and more.
const CAP: u64 = 8 << 20;

/// An id the file names, with its line number (from 1).
pub(crate) type Named = (usize, InstanceId);

/// Reads and removes the `replace` file of the state directory `dir`; the ids it names,
/// each with its line. No file is no id; a file that cannot be read is logged, and left
/// in place for the next SIGHUP.
pub(crate) fn take(dir: &Path) -> Vec<Named> {
    let path = dir.join(REPLACE_FILE);
    let bytes = match crate::fsio::read_regular(&path, CAP) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot read the replace file: {e}");
            return Vec::new();
        }
    };
    // Removed before its ids are acted on: each is replaced once, whatever follows.
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(
            path = %path.display(),
            "cannot remove the replace file (its ids are taken; remove it, or the next \
             reload takes them again): {e}"
        );
    }
    let text = String::from_utf8_lossy(&bytes);
    let (ids, bad) = parse(&text);
    for (line, why) in bad {
        tracing::warn!(path = %path.display(), line, "replace file, line {line}: {why}; skipped");
    }
    ids
}

/// The ids in a `replace` file's `text`, each with its line number, and the lines that are
/// not ids with why.
fn parse(text: &str) -> (Vec<Named>, Vec<(usize, String)>) {
    let mut ids = Vec::new();
    let mut bad = Vec::new();
    for (number, line) in (1..).zip(text.lines()) {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        match InstanceId::parse_written(line) {
            Ok(id) => ids.push((number, id)),
            Err(why) => bad.push((number, why)),
        }
    }
    (ids, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_one_a_line_comments_and_blanks_skipped_bad_lines_named() {
        let text = "# after the new logo\n1101000001\n\n  1101000002  # sales\n0123\nabc\n7\n";
        let (ids, bad) = parse(text);
        let ids: Vec<(usize, &str)> = ids.iter().map(|(n, id)| (*n, id.as_str())).collect();
        assert_eq!(ids, [(2, "1101000001"), (4, "1101000002"), (7, "7")]);
        let lines: Vec<usize> = bad.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [5, 6]);
        assert!(bad[0].1.contains("0123"), "{bad:?}");
    }

    #[test]
    fn the_file_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(take(dir.path()).is_empty(), "no file, no id");
        std::fs::write(dir.path().join(REPLACE_FILE), "1101000001\n").unwrap();
        assert_eq!(take(dir.path()).len(), 1);
        assert!(!dir.path().join(REPLACE_FILE).exists());
        assert!(take(dir.path()).is_empty());
    }
}
