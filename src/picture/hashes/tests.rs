//! The picture hash cache: one `stat` for unchanged files, a fresh hash for anything else.

use super::*;
use std::time::Duration;

const JPEG_A: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, b'a', 0xFF, 0xD9];
const JPEG_B: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, b'b', 0xFF, 0xD9];

/// Writes `bytes` and dates the file's mtime `age` into the past.
fn write_aged(path: &Path, bytes: &[u8], age: Duration) {
    std::fs::write(path, bytes).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

#[test]
fn an_unchanged_file_is_not_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jpg");
    write_aged(&path, JPEG_A, Duration::from_secs(60));
    let mut hashes = Hashes::default();
    assert_eq!(hashes.digest(&path), Ok(Digest::of(JPEG_A)));
    assert_eq!(hashes.digest(&path), Ok(Digest::of(JPEG_A)));
    assert_eq!(hashes.take_stats(), HashStats { hits: 1, misses: 1 });
}

#[test]
fn a_changed_file_is_hashed_again_even_with_the_same_size_and_mtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jpg");
    write_aged(&path, JPEG_A, Duration::from_secs(60));
    let mut hashes = Hashes::default();
    hashes.digest(&path).unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    // Same size, same mtime: only ctime tells.
    std::fs::write(&path, JPEG_B).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(hashes.digest(&path), Ok(Digest::of(JPEG_B)));
    assert_eq!(hashes.take_stats().misses, 2);
}

#[test]
fn a_file_replaced_by_rename_is_hashed_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jpg");
    write_aged(&path, JPEG_A, Duration::from_secs(60));
    let mut hashes = Hashes::default();
    hashes.digest(&path).unwrap();
    let tmp = dir.path().join("a.jpg.tmp");
    write_aged(&tmp, JPEG_B, Duration::from_secs(60));
    std::fs::rename(&tmp, &path).unwrap();
    assert_eq!(hashes.digest(&path), Ok(Digest::of(JPEG_B)));
}

#[test]
fn a_racily_clean_file_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jpg");
    // Modified "now": within the timestamp granularity of when it is hashed.
    std::fs::write(&path, JPEG_A).unwrap();
    let mut hashes = Hashes::default();
    for _ in 0..3 {
        assert_eq!(hashes.digest(&path), Ok(Digest::of(JPEG_A)));
    }
    assert_eq!(hashes.take_stats(), HashStats { hits: 0, misses: 3 });
}

#[test]
fn an_unreadable_picture_is_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jpg");
    write_aged(&path, JPEG_A, Duration::from_secs(60));
    let mut hashes = Hashes::default();
    assert_eq!(hashes.digest(&path), Ok(Digest::of(JPEG_A)));
    // The file goes away: the entry goes with it, and it is looked for every time.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(hashes.digest(&path).unwrap_err().label(), "picture-missing");
    assert_eq!(hashes.digest(&path).unwrap_err().label(), "picture-missing");
    assert!(hashes.entries.is_empty());
    assert_eq!(hashes.take_stats(), HashStats { hits: 0, misses: 3 });
}

#[test]
fn the_cache_survives_a_restart_and_a_broken_one_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let a = dir.path().join("a.jpg");
    let b = dir.path().join("b.jpg");
    write_aged(&a, JPEG_A, Duration::from_secs(60));
    write_aged(&b, JPEG_B, Duration::from_secs(60));

    let mut hashes = Hashes::load(&state_dir);
    hashes.digest_all([a.as_path(), b.as_path(), a.as_path()]);
    assert_eq!(hashes.take_stats().misses, 2, "each distinct file once");
    hashes.retain(&HashSet::from([a.as_path()]));
    hashes.save(&state_dir).unwrap();

    let mut again = Hashes::load(&state_dir);
    assert_eq!(again.digest(&a), Ok(Digest::of(JPEG_A)));
    assert_eq!(again.digest(&b), Ok(Digest::of(JPEG_B)));
    assert_eq!(
        again.take_stats(),
        HashStats { hits: 1, misses: 1 },
        "b was forgotten by retain"
    );

    std::fs::write(
        state_dir.join(HASHES_FILE),
        b"{\"version\": 1, \"files\": [",
    )
    .unwrap();
    let mut broken = Hashes::load(&state_dir);
    assert_eq!(broken.digest(&a), Ok(Digest::of(JPEG_A)));
    assert_eq!(broken.take_stats().misses, 1);
}
