//! Fuzzing the state parser on stable Rust: damaged state documents (times past 9999 or
//! before 1970, huge counts, wrong types, cut JSON) must be read or refused, never panic;
//! whatever is read can be written back. (What the planner makes of any record is
//! `plan/properties.rs`'s job.)

use super::schema::{DocumentRef, parse};
use super::*;
use crate::testing::{Mutator, cases};
use std::time::{Duration, SystemTime};

const JSON: &[&str] = &[
    "\"9999-12-31T23:59:59.999Z\"",
    "\"1900-01-01T00:00:00Z\"",
    "\"2100-01-01T00:00:00Z\"",
    "null",
    "{}",
    "[]",
    "-1",
    "4294967296",
    "1e999",
    "\"rate-overlimit\"",
    "\"unauthorized\"",
    "\"version\": 1",
    "\"instances\": {}",
    "\"\\u0000\"",
    "\"applied\": ",
    "\"failure\": ",
    ",",
    "\"1101000001\": {}",
    "\"consecutive\": 4294967295",
];

fn seed() -> Vec<u8> {
    let record = InstanceRecord {
        applied: Some(Applied {
            sha256: crate::picture::Digest::of(b"a"),
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            url_avatar: Some("https://pps.whatsapp.net/v/a.jpg?oh=1&oe=2".to_owned()),
            perceptual_hash: Some("0a".repeat(65).into()),
        }),
        last_call_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_100)),
        call_started_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_200)),
        live_checked_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_300)),
        live_matched_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_300)),
        read_started_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_301)),
        state_instance: Some("notAuthorized".to_owned()),
        drifted: Some("another picture is live".to_owned()),
        failure: Some(Box::new(Failure {
            kind: crate::outcome::FailureKind::ServerError,
            reason: "x".to_owned(),
            consecutive: 2,
            next_attempt_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_140),
            sha256: crate::picture::Digest::of(b"b"),
            credentials: "0123456789abcdef".to_owned(),
        })),
        refused_sha256: vec![crate::picture::Digest::of(b"c")],
    };
    let mut state = State::default();
    state.instances.insert(
        crate::manifest::InstanceId::parse("1101000001").unwrap(),
        record,
    );
    let doc = DocumentRef::new(&state);
    serde_json::to_vec_pretty(&doc).unwrap()
}

#[test]
fn damaged_state_documents_are_read_or_refused_never_a_panic() {
    let seed = seed();
    let mut mutator = Mutator::new(0x7374_6174, JSON);
    let (mut read, mut refused) = (0, 0);
    for case in 0..cases(5_000) {
        let bytes = mutator.mutate(&seed);
        let Ok((state, _)) = parse(&bytes) else {
            refused += 1;
            continue;
        };
        read += 1;
        let doc = DocumentRef::new(&state);
        let written = serde_json::to_vec(&doc).unwrap();
        assert!(
            parse(&written).is_ok(),
            "case {case}: written back unreadable"
        );
    }
    assert!(read > 0 && refused > 0, "{read} read, {refused} refused");
}
