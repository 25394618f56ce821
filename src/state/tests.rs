//! The state directory on a real file system: round trips, modes, atomic saves, the lock,
//! unreadable and too-new files, and batched saves.

use super::dir::{LOCK_FILE, STATE_FILE};
use super::schema::MAX_REFUSED;
use super::store::{SAVE_INTERVAL, SAVE_RETRY};
use super::*;
use crate::manifest::InstanceId;
use crate::outcome::FailureKind;
use crate::picture::Digest;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

fn id(text: &str) -> InstanceId {
    InstanceId::parse(text).unwrap()
}

/// A wall-clock time with whole milliseconds, as the state file keeps them.
fn at_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

fn full_record() -> InstanceRecord {
    InstanceRecord {
        applied: Some(Applied {
            sha256: Digest::of(b"picture a"),
            at: at_ms(1_800_000_000_123),
            url_avatar: Some("https://pps.whatsapp.net/v/t61/a.jpg".to_owned()),
            perceptual_hash: Some("0a".repeat(65).into()),
        }),
        last_call_at: Some(at_ms(1_800_000_100_456)),
        call_started_at: Some(at_ms(1_800_000_150_000)),
        live_checked_at: Some(at_ms(1_800_000_160_000)),
        live_matched_at: Some(at_ms(1_800_000_160_000)),
        read_started_at: Some(at_ms(1_800_000_161_000)),
        state_instance: Some("authorized".to_owned()),
        drifted: Some("another picture is live".to_owned()),
        failure: Some(Box::new(Failure {
            kind: FailureKind::RateOverlimit,
            reason: "WhatsApp's rate limit (rate-overlimit)".to_owned(),
            consecutive: 3,
            next_attempt_at: at_ms(1_800_000_140_789),
            sha256: Digest::of(b"picture b"),
            credentials: "0123456789abcdef".to_owned(),
        })),
        refused_sha256: vec![Digest::of(b"refused 1"), Digest::of(b"refused 2")],
    }
}

fn sample_state() -> State {
    let mut state = State::default();
    state.instances.insert(id("1101000001"), full_record());
    state
        .instances
        .insert(id("1101000002"), InstanceRecord::default());
    state
}

/// A state directory that does not exist yet, inside a fresh temporary folder.
fn fresh() -> (tempfile::TempDir, StateDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::new(tmp.path().join("state"));
    (tmp, dir)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_saved_state_loads_back_equal() {
    let (_tmp, dir) = fresh();
    let lock = dir.lock("test").unwrap();
    let state = sample_state();
    dir.save(&lock, &state).unwrap();

    let loaded = dir.load().unwrap();
    assert!(loaded.unreadable.is_none());
    assert_eq!(loaded.state, state);

    let loaded = dir.load_for_write(&lock).unwrap();
    assert!(loaded.unreadable.is_none());
    assert_eq!(loaded.state, state);
}

#[test]
fn the_state_file_is_versioned_json_with_labels_and_rfc3339_times() {
    let (_tmp, dir) = fresh();
    let lock = dir.lock("test").unwrap();
    dir.save(&lock, &sample_state()).unwrap();
    let text = std::fs::read_to_string(dir.state_file()).unwrap();
    assert!(text.starts_with('{'), "{text}");
    assert!(text.ends_with("}\n"), "{text}");
    assert!(text.contains("\"version\":3"), "{text}");
    assert!(text.contains("\"1101000001\":{"), "{text}");
    assert!(text.contains("\"kind\":\"rate-overlimit\""), "{text}");
    assert!(
        text.contains("\"lastCallAt\":\"2027-01-15T08:01:40.456Z\""),
        "{text}"
    );
    assert!(
        text.contains(&format!("\"sha256\":\"{}\"", Digest::of(b"picture a"))),
        "{text}"
    );
    assert!(text.contains("\"urlAvatar\":\"https://pps.whatsapp.net/v/t61/a.jpg\""));
    assert!(text.contains("\"refusedSha256\":["), "{text}");
    assert!(
        text.contains("\"credentials\":\"0123456789abcdef\""),
        "{text}"
    );
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["version"], 3);
    // An empty record stays small: nothing but lastCallAt (null).
    assert_eq!(
        doc["instances"]["1101000002"],
        serde_json::json!({"lastCallAt": null})
    );
}

#[test]
fn the_state_file_is_0600_and_the_folder_0700() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::new(tmp.path().join("nested").join("state"));
    let lock = dir.lock("test").unwrap();
    assert_eq!(mode(dir.path()), 0o700);
    assert_eq!(mode(&tmp.path().join("nested")), 0o700);
    assert_eq!(mode(&dir.path().join(LOCK_FILE)), 0o600);
    dir.save(&lock, &sample_state()).unwrap();
    assert_eq!(mode(&dir.state_file()), 0o600);
}

#[test]
fn a_state_file_made_readable_by_others_is_0600_again_after_a_save() {
    let (_tmp, dir) = fresh();
    let lock = dir.lock("test").unwrap();
    std::fs::write(dir.state_file(), b"{\"version\": 1, \"instances\": {}}").unwrap();
    std::fs::set_permissions(dir.state_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    dir.save(&lock, &sample_state()).unwrap();
    assert_eq!(mode(&dir.state_file()), 0o600);
}

#[test]
fn a_leftover_temporary_file_does_not_change_the_mode() {
    let (_tmp, dir) = fresh();
    let lock = dir.lock("test").unwrap();
    let leftover = dir.path().join(format!(".{STATE_FILE}.tmp"));
    std::fs::write(&leftover, b"half a state").unwrap();
    std::fs::set_permissions(&leftover, std::fs::Permissions::from_mode(0o644)).unwrap();
    dir.save(&lock, &sample_state()).unwrap();
    assert_eq!(mode(&dir.state_file()), 0o600);
}

#[test]
fn a_save_leaves_no_temporary_file_behind() {
    let (_tmp, dir) = fresh();
    let lock = dir.lock("test").unwrap();
    dir.save(&lock, &sample_state()).unwrap();
    dir.save(&lock, &State::default()).unwrap();
    assert_eq!(names_in(dir.path()), [LOCK_FILE, STATE_FILE]);
    assert_eq!(dir.load().unwrap().state, State::default());
}

#[test]
fn a_second_writer_is_told_who_holds_the_lock() {
    let (_tmp, dir) = fresh();
    let _lock = dir.lock("daemon").unwrap();
    let holder_text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
    assert!(
        holder_text.starts_with(&format!("pid {}, daemon, since ", std::process::id())),
        "{holder_text}"
    );

    // Another handle on the same lock file: flock is per open file description.
    let err = StateDir::new(dir.path()).lock("reconcile").unwrap_err();
    assert_eq!(err.label(), "state-locked");
    match &err {
        StateError::Locked {
            dir: locked,
            holder,
        } => {
            assert_eq!(locked, dir.path());
            assert_eq!(holder, &holder_text);
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    assert!(message.contains("daemon"), "{message}");
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("stop it first"), "{message}");
    assert!(message.contains("--state-dir"), "{message}");
    // The loser did not overwrite the holder's note.
    assert_eq!(
        std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(),
        holder_text
    );
}

#[test]
fn the_lock_is_released_on_drop() {
    let (_tmp, dir) = fresh();
    let lock = dir.lock("first").unwrap();
    assert!(matches!(dir.lock("second"), Err(StateError::Locked { .. })));
    drop(lock);
    let _again = dir.lock("third").unwrap();
    let holder_text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
    assert!(holder_text.contains(", third, since "), "{holder_text}");
    assert!(!holder_text.contains("first"), "{holder_text}");
}

#[test]
fn a_state_directory_that_cannot_be_created_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let err = StateDir::new(file.join("state")).lock("test").unwrap_err();
    assert_eq!(err.label(), "state-dir");
    assert!(err.to_string().contains("a-file"), "{err}");
}

#[test]
fn a_missing_state_directory_loads_as_empty() {
    let (_tmp, dir) = fresh();
    let loaded = dir.load().unwrap();
    assert_eq!(loaded.state, State::default());
    assert!(loaded.unreadable.is_none());
    // Reading created nothing.
    assert!(!dir.path().exists());
}

const CORRUPT: [(&str, &[u8]); 7] = [
    ("garbage", b"\x00\xff\x13garbage\x80"),
    ("empty", b""),
    ("no version", b"{\"instances\": {}}"),
    ("version 0", b"{\"version\": 0, \"instances\": {}}"),
    (
        "bad digest",
        b"{\"version\": 1, \"instances\": {\"1101000001\": {\"refusedSha256\": [\"nothex\"]}}}",
    ),
    (
        "bad idInstance",
        b"{\"version\": 1, \"instances\": {\"abc\": {}}}",
    ),
    ("truncated", b"{\"version\": 1, \"instances\": {\"1101"),
];

#[test]
fn an_unreadable_state_file_is_left_alone_by_a_reader() {
    for (what, bytes) in CORRUPT {
        let (_tmp, dir) = fresh();
        std::fs::create_dir(dir.path()).unwrap();
        std::fs::write(dir.state_file(), bytes).unwrap();

        let loaded = dir.load().unwrap();
        assert_eq!(loaded.state, State::default(), "{what}");
        let unreadable = loaded
            .unreadable
            .unwrap_or_else(|| panic!("{what}: not flagged"));
        assert!(!unreadable.reason.is_empty(), "{what}");
        assert!(unreadable.moved_to.is_none(), "{what}");
        assert_eq!(std::fs::read(dir.state_file()).unwrap(), bytes, "{what}");
        assert_eq!(names_in(dir.path()), [STATE_FILE], "{what}");
    }
}

#[test]
fn an_unreadable_state_file_is_moved_aside_by_the_writer() {
    for (what, bytes) in CORRUPT {
        let (_tmp, dir) = fresh();
        let lock = dir.lock("test").unwrap();
        std::fs::write(dir.state_file(), bytes).unwrap();

        let loaded = dir.load_for_write(&lock).unwrap();
        assert_eq!(loaded.state, State::default(), "{what}");
        let unreadable = loaded
            .unreadable
            .unwrap_or_else(|| panic!("{what}: not flagged"));
        assert!(!unreadable.reason.is_empty(), "{what}");
        let aside = unreadable
            .moved_to
            .unwrap_or_else(|| panic!("{what}: not moved"));
        assert_eq!(aside.parent(), Some(dir.path()), "{what}");
        let name = aside.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("state.json.unreadable-"), "{what}: {name}");
        assert_eq!(std::fs::read(&aside).unwrap(), bytes, "{what}");
        assert!(!dir.state_file().exists(), "{what}");
        assert_eq!(names_in(dir.path()), [LOCK_FILE.to_owned(), name.clone()]);

        // Work goes on: the next save writes a fresh file, the moved one stays.
        dir.save(&lock, &sample_state()).unwrap();
        assert_eq!(dir.load().unwrap().state, sample_state(), "{what}");
        assert_eq!(std::fs::read(&aside).unwrap(), bytes, "{what}");
    }
}

#[test]
fn a_state_file_from_a_newer_version_is_refused_and_left_alone() {
    let (_tmp, dir) = fresh();
    let lock = dir.lock("test").unwrap();
    let bytes = b"{\"version\": 99, \"instances\": {}, \"somethingNew\": true}";
    std::fs::write(dir.state_file(), bytes).unwrap();

    for err in [
        dir.load().unwrap_err(),
        dir.load_for_write(&lock).unwrap_err(),
    ] {
        assert_eq!(err.label(), "state-too-new");
        match &err {
            StateError::TooNew { path, found } => {
                assert_eq!(path, &dir.state_file());
                assert_eq!(*found, 99);
            }
            other => panic!("expected TooNew, got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains("99"), "{message}");
        assert!(message.contains("upgrade"), "{message}");
    }
    assert_eq!(std::fs::read(dir.state_file()).unwrap(), bytes);
    assert_eq!(names_in(dir.path()), [LOCK_FILE, STATE_FILE]);
}

#[test]
fn unknown_fields_of_the_same_version_are_tolerated() {
    let (_tmp, dir) = fresh();
    std::fs::create_dir(dir.path()).unwrap();
    std::fs::write(
        dir.state_file(),
        b"{\"version\": 1, \"writtenBy\": \"x\", \"instances\": {\"1101000001\": {\"lastCallAt\": \"2027-01-15T08:01:40.456Z\"}}}",
    )
    .unwrap();
    let loaded = dir.load().unwrap();
    assert!(loaded.unreadable.is_none());
    let mut want = State::default();
    want.instances.insert(
        id("1101000001"),
        InstanceRecord {
            last_call_at: Some(at_ms(1_800_000_100_456)),
            ..InstanceRecord::default()
        },
    );
    assert_eq!(loaded.state, want);
}

// ---------------------------------------------------------------------------------------
// StateStore: batched saves.

fn store() -> (tempfile::TempDir, StateDir, StateStore) {
    let (tmp, dir) = fresh();
    let lock = dir.lock("test").unwrap();
    let loaded = dir.load_for_write(&lock).unwrap();
    let store = StateStore::new(dir.clone(), lock, loaded).unwrap();
    (tmp, dir, store)
}

fn on_disk(dir: &StateDir) -> State {
    dir.load().unwrap().state
}

fn with_last_call(ms: u64) -> InstanceRecord {
    InstanceRecord {
        last_call_at: Some(at_ms(ms)),
        ..InstanceRecord::default()
    }
}

#[test]
fn a_clean_store_has_nothing_to_save() {
    let (_tmp, dir, mut store) = store();
    assert_eq!(store.save_due_at(), None);
    store.save().unwrap();
    store.save_if_due().unwrap();
    assert!(!dir.state_file().exists());
}

#[test]
fn a_set_is_due_at_once_the_first_time_and_save_writes_it() {
    let (_tmp, dir, mut store) = store();
    let before = Instant::now();
    store.set(id("1"), full_record());
    let due = store.save_due_at().expect("a save is due");
    assert!(due >= before, "never saved: due now");
    assert!(due <= Instant::now());
    assert_eq!(store.state().instances[&id("1")], full_record());
    assert!(!dir.state_file().exists(), "set alone must not write");

    store.save().unwrap();
    assert_eq!(store.save_due_at(), None);
    assert_eq!(on_disk(&dir), store.state().clone());
}

#[test]
fn save_if_due_writes_when_nothing_was_saved_yet() {
    let (_tmp, dir, mut store) = store();
    store.set(id("1"), with_last_call(1_000));
    store.save_if_due().unwrap();
    assert_eq!(store.save_due_at(), None);
    assert_eq!(on_disk(&dir).instances[&id("1")], with_last_call(1_000));
}

#[test]
fn saves_are_batched_to_one_per_interval() {
    let (_tmp, dir, mut store) = store();
    store.set(id("1"), with_last_call(1_000));
    let before_save = Instant::now();
    store.save().unwrap();
    let after_save = Instant::now();

    store.set(id("1"), with_last_call(2_000));
    store.set(id("2"), with_last_call(3_000));
    let due = store.save_due_at().expect("a save is due");
    assert!(due >= before_save + SAVE_INTERVAL);
    assert!(due <= after_save + SAVE_INTERVAL);

    store.save_if_due().unwrap();
    // Only conclusive when this thread was not stalled for SAVE_INTERVAL; it never is
    // in practice, and the deterministic checks are above and below.
    if Instant::now() < before_save + SAVE_INTERVAL {
        let disk = on_disk(&dir);
        assert_eq!(disk.instances.len(), 1, "saved again too soon");
        assert_eq!(disk.instances[&id("1")], with_last_call(1_000));
        assert!(store.save_due_at().is_some());
    }

    std::thread::sleep(SAVE_INTERVAL);
    store.save_if_due().unwrap();
    assert_eq!(store.save_due_at(), None);
    let disk = on_disk(&dir);
    assert_eq!(disk.instances[&id("1")], with_last_call(2_000));
    assert_eq!(disk.instances[&id("2")], with_last_call(3_000));
    assert_eq!(&disk, store.state());
}

#[test]
fn save_writes_at_once_whatever_the_interval() {
    let (_tmp, dir, mut store) = store();
    store.set(id("1"), with_last_call(1_000));
    store.save().unwrap();
    store.set(id("1"), with_last_call(2_000));
    store.save().unwrap();
    assert_eq!(on_disk(&dir).instances[&id("1")], with_last_call(2_000));
}

#[test]
fn a_clean_save_does_not_write() {
    let (_tmp, dir, mut store) = store();
    store.set(id("1"), with_last_call(1_000));
    store.save().unwrap();
    std::fs::remove_file(dir.state_file()).unwrap();
    store.save().unwrap();
    std::thread::sleep(SAVE_INTERVAL);
    store.save_if_due().unwrap();
    assert!(!dir.state_file().exists());
}

#[test]
fn the_store_holds_the_lock() {
    let (_tmp, dir, store) = store();
    assert!(matches!(dir.lock("other"), Err(StateError::Locked { .. })));
    drop(store);
    assert!(dir.lock("other").is_ok());
}

// ---------------------------------------------------------------------------------------
// Refused pictures.

#[test]
fn remember_refused_keeps_the_eight_most_recent_without_duplicates() {
    let digests: Vec<Digest> = (0..10u8).map(|i| Digest::of(&[i])).collect();
    let mut record = InstanceRecord::default();

    record.remember_refused(digests[0]);
    record.remember_refused(digests[0]);
    assert_eq!(record.refused_sha256, [digests[0]]);

    for digest in &digests[1..8] {
        record.remember_refused(*digest);
    }
    assert_eq!(record.refused_sha256, digests[..8]);

    // A repeat neither grows the list nor pushes anything out.
    record.remember_refused(digests[3]);
    assert_eq!(record.refused_sha256, digests[..8]);

    record.remember_refused(digests[8]);
    assert_eq!(record.refused_sha256, digests[1..9]);
    record.remember_refused(digests[9]);
    assert_eq!(record.refused_sha256, digests[2..10]);
    assert_eq!(record.refused_sha256.len(), MAX_REFUSED);
}

#[test]
fn the_lock_file_is_never_opened_through_a_symlink() {
    let (tmp, dir) = fresh();
    std::fs::create_dir_all(dir.path()).unwrap();
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join(LOCK_FILE)).unwrap();
    let err = dir.lock("test").unwrap_err();
    assert_eq!(err.label(), "state-lock", "{err}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
}

#[test]
fn a_state_directory_others_may_write_is_refused() {
    let (_tmp, dir) = fresh();
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = dir.lock("test").unwrap_err();
    assert_eq!(err.label(), "state-dir-permissions");
    assert!(err.to_string().contains("chmod 700"), "{err}");
    assert!(err.to_string().contains("777"), "{err}");
    assert!(!dir.path().join(LOCK_FILE).exists());
    // Readable by others is fine (systemd's StateDirectory= defaults to 0755).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let _lock = dir.lock("test").unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failing_save_is_retried_slowly_and_says_so_until_it_succeeds() {
    let (_tmp, dir) = fresh();
    let lock = dir.lock("test").unwrap();
    let loaded = dir.load_for_write(&lock).unwrap();
    let mut store = StateStore::new(dir.clone(), lock, loaded).unwrap();
    // A folder where the state file goes: every save fails.
    std::fs::create_dir(dir.path().join(STATE_FILE)).unwrap();
    store.set(id("1101000001"), full_record());
    assert!(store.save_if_due().is_err());
    assert!(store.save_failing());
    // Not again at once (a loop would spin on it), but after SAVE_RETRY.
    assert_eq!(store.save_due_at(), Some(Instant::now() + SAVE_RETRY));
    assert!(store.save_if_due().is_ok(), "retried before SAVE_RETRY");

    std::fs::remove_dir(dir.path().join(STATE_FILE)).unwrap();
    tokio::time::advance(SAVE_RETRY).await;
    store.save_if_due().unwrap();
    assert!(!store.save_failing());
    assert_eq!(store.save_due_at(), None);
    assert_eq!(dir.load().unwrap().state.instances.len(), 1);
}

#[test]
fn saves_append_changed_records_and_a_reload_replays_them() {
    let (_tmp, dir, mut store) = store();
    store.set(id("1"), with_last_call(1_000));
    store.save().unwrap(); // the first save writes the state file
    let state_file = std::fs::read(dir.state_file()).unwrap();
    store.set(id("2"), with_last_call(2_000));
    store.save().unwrap();
    store.set(id("1"), with_last_call(3_000));
    store.save().unwrap();
    // The state file is untouched; the changes hold one line per changed record, 0600.
    assert_eq!(std::fs::read(dir.state_file()).unwrap(), state_file);
    let changes = dir.path().join("changes.jsonl");
    let text = std::fs::read_to_string(&changes).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.starts_with("{\"idInstance\":\"2\",\"record\":{"),
        "{text}"
    );
    assert_eq!(mode(&changes), 0o600);
    let loaded = on_disk(&dir);
    assert_eq!(loaded.instances[&id("1")], with_last_call(3_000));
    assert_eq!(loaded.instances[&id("2")], with_last_call(2_000));
}

#[test]
fn the_writer_folds_changes_into_the_state_file_and_drops_a_torn_last_line() {
    let (_tmp, dir, mut store) = store();
    store.set(id("1"), with_last_call(1_000));
    store.save().unwrap();
    store.set(id("2"), with_last_call(2_000));
    store.save().unwrap();
    drop(store);
    // A crash in the middle of the next append.
    let changes = dir.path().join("changes.jsonl");
    let mut text = std::fs::read_to_string(&changes).unwrap();
    text.push_str("{\"idInstance\":\"3\",\"rec");
    std::fs::write(&changes, text).unwrap();
    // Readers replay the complete lines and change nothing.
    let read = dir.load().unwrap();
    assert!(read.unreadable.is_none());
    assert_eq!(read.state.instances.len(), 2);
    assert!(changes.exists());
    // The next writer folds everything into the state file at once.
    let lock = dir.lock("test").unwrap();
    let loaded = dir.load_for_write(&lock).unwrap();
    let store = StateStore::new(dir.clone(), lock, loaded).unwrap();
    assert!(!changes.exists());
    assert_eq!(store.state().instances.len(), 2);
    let text = std::fs::read_to_string(dir.state_file()).unwrap();
    assert!(text.contains("\"2\":{\"lastCallAt\""), "{text}");
}

#[test]
fn changes_are_folded_once_they_outgrow_the_state_file() {
    let (_tmp, dir, mut store) = store();
    store.set(id("1"), with_last_call(1_000));
    store.save().unwrap();
    let changes = dir.path().join("changes.jsonl");
    let mut folded = false;
    for n in 0..80_000u64 {
        store.set(id("1"), with_last_call(n));
        store.save().unwrap();
        let len = std::fs::metadata(&changes).map_or(0, |m| m.len());
        assert!(len <= super::changes::FOLD_AT_LEAST + 200, "{len}");
        if len == 0 {
            folded = true;
            break;
        }
    }
    assert!(folded, "never folded");
    assert_eq!(
        on_disk(&dir).instances[&id("1")],
        store.state().instances[&id("1")]
    );
}

#[test]
fn a_damaged_changes_file_is_moved_aside_and_the_state_file_kept() {
    let (_tmp, dir, mut store) = store();
    store.set(id("1"), with_last_call(1_000));
    store.save().unwrap();
    drop(store);
    let changes = dir.path().join("changes.jsonl");
    std::fs::write(&changes, "not json\n{\"idInstance\":\"2\",\"record\":{}}\n").unwrap();
    let read = dir.load().unwrap();
    let unreadable = read.unreadable.unwrap();
    assert!(
        unreadable.reason.contains("changes.jsonl: line 1"),
        "{}",
        unreadable.reason
    );
    assert!(unreadable.moved_to.is_none());
    assert_eq!(read.state.instances.len(), 1, "the state file still counts");

    let lock = dir.lock("test").unwrap();
    let loaded = dir.load_for_write(&lock).unwrap();
    let moved = loaded
        .unreadable
        .as_ref()
        .unwrap()
        .moved_to
        .clone()
        .unwrap();
    assert!(
        moved
            .to_string_lossy()
            .contains("changes.jsonl.unreadable-")
    );
    assert!(moved.exists() && !changes.exists());
    let store = StateStore::new(dir.clone(), lock, loaded).unwrap();
    assert_eq!(store.state().instances[&id("1")], with_last_call(1_000));
}

#[test]
fn a_version_1_or_2_state_file_is_read_and_rewritten_as_version_3_at_once() {
    for version in [1, 2] {
        migrates_from(version);
    }
}

fn migrates_from(version: u32) {
    let (_tmp, dir) = fresh();
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let v1 = format!(
        "{{\n  \"version\": {version},\n  \"instances\": {{\n    \"1101000001\": {{\n      \"lastCallAt\": \"2027-01-15T08:01:40.456Z\"\n    }}\n  }}\n}}\n"
    );
    std::fs::write(dir.state_file(), &v1).unwrap();
    assert_eq!(dir.load().unwrap().state.instances.len(), 1);
    assert_eq!(
        std::fs::read_to_string(dir.state_file()).unwrap(),
        v1,
        "readers write nothing"
    );

    let lock = dir.lock("test").unwrap();
    let loaded = dir.load_for_write(&lock).unwrap();
    let store = StateStore::new(dir.clone(), lock, loaded).unwrap();
    let text = std::fs::read_to_string(dir.state_file()).unwrap();
    assert!(text.starts_with("{\"version\":3,"), "{text}");
    assert_eq!(on_disk(&dir), *store.state());
    let id = InstanceId::parse_written("1101000001").unwrap();
    assert_eq!(
        store.state().instances[&id].last_call_at,
        Some(at_ms(1_800_000_100_456)),
        "the record is kept as it was"
    );
    assert_eq!(mode(&dir.state_file()), 0o600);
}

#[test]
fn the_records_count_is_only_a_hint() {
    use super::schema::{ParseError, parse};
    let record = r#"{"lastCallAt":"2026-11-24T16:00:01.234Z"}"#;
    let hints = [
        "",
        r#""records":2,"#,
        r#""records":0,"#,
        r#""records":-1,"#,
        r#""records":2.5,"#,
        r#""records":"many","#,
        r#""records":{"a":[1]},"#,
        r#""records":18446744073709551615,"#,
    ];
    for hint in hints {
        let text = format!(r#"{{"version":2,{hint}"instances":{{"1":{record},"2":{record}}}}}"#);
        let Ok((state, 2)) = parse(text.as_bytes()) else {
            panic!("not read: {text}");
        };
        assert_eq!(state.instances.len(), 2, "{text}");
        // No more room than the file could hold records for.
        assert!(state.instances.capacity() < 64, "{text}");
    }
    // After the records, it sizes nothing and harms nothing.
    let text = format!(r#"{{"version":2,"instances":{{"1":{record}}},"records":9}}"#);
    assert!(matches!(parse(text.as_bytes()), Ok((state, 2)) if state.instances.len() == 1));
    // A second `instances` (or `version`) is damage, not a merge.
    for text in [
        r#"{"version":2,"instances":{},"instances":{}}"#,
        r#"{"version":2,"version":2,"instances":{}}"#,
    ] {
        assert!(
            matches!(parse(text.as_bytes()), Err(ParseError::Invalid(_))),
            "{text}"
        );
    }
}

#[test]
fn instances_showing_one_picture_share_its_fingerprint_once_read() {
    use super::schema::parse;
    use std::sync::Arc;
    let applied = |hash: &str| {
        format!(
            r#"{{"applied":{{"sha256":"{}","at":"2026-11-24T16:00:01.234Z","urlAvatar":null,"perceptualHash":"{hash}"}}}}"#,
            Digest::of(b"picture a")
        )
    };
    let (one, other) = ("0a".repeat(65), "0b".repeat(65));
    let text = format!(
        r#"{{"version":2,"instances":{{"1":{},"2":{},"3":{}}}}}"#,
        applied(&one),
        applied(&one),
        applied(&other)
    );
    let Ok((state, 2)) = parse(text.as_bytes()) else {
        panic!("not read: {text}");
    };
    let hash = |n: &str| {
        let record = &state.instances[&id(n)];
        Arc::clone(
            record
                .applied
                .as_ref()
                .unwrap()
                .perceptual_hash
                .as_ref()
                .unwrap(),
        )
    };
    assert_eq!(&*hash("1"), one);
    assert_eq!(&*hash("3"), other);
    assert!(
        Arc::ptr_eq(&hash("1"), &hash("2")),
        "one copy for one picture"
    );
    assert!(!Arc::ptr_eq(&hash("1"), &hash("3")));
}
