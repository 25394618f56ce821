//! Adoption (issue 9): an instance with no record is read live before its first upload;
//! when it already shows its picture (as WhatsApp re-encodes and resizes it), it is
//! recorded as applied without a call.

use crate::util::*;
use std::time::Duration;

/// `n` instances; the first `matching` already show their picture live, the others
/// another one. Empty state.
fn fleet(n: u32, matching: u32, extra: &str) -> World {
    let world = World::new(Duration::ZERO);
    let mut yaml = format!("apiUrl: {{url}}\nminInterval: 1s\n{extra}instances:\n");
    for i in 0..n {
        let id = format!("110100{i:04}");
        world.instance(&id);
        world.write(&format!("p{i}.jpg"), &photo(i));
        let live = if i < matching {
            photo(i)
        } else {
            photo(i + 1000)
        };
        world.fake.set_live_picture(&id, &live);
        yaml.push_str(&format!(
            "  - idInstance: \"{id}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: p{i}.jpg\n"
        ));
    }
    world.write_manifest(&yaml);
    world
}

#[test]
fn matching_live_pictures_are_adopted_and_only_the_others_uploaded() {
    let world = fleet(25, 20, "");
    let run = world.run(&["--reconcile", "--json", "--concurrency", "8", "-v"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(world.fake.request_count(), 5, "{run:?}");
    let summary = &run.json()["summary"];
    assert_eq!(
        (summary["adopted"].as_u64(), summary["applied"].as_u64()),
        (Some(20), Some(5))
    );
    // Every request of every method is counted.
    assert_eq!(
        run.json()["calls"],
        serde_json::json!({"setProfilePicture": 5, "getWaSettings": 25, "getStateInstance": 0})
    );
    assert!(run.stderr.contains("GREEN-API requests"), "{run:?}");
    for i in 0..25 {
        let id = format!("110100{i:04}");
        let want = if i < 20 { "adopted" } else { "applied" };
        assert_eq!(run.status_of(&id), want, "{id}");
        // One settings read each, never more than one a second.
        let reads = world.fake.reads_for(&id);
        assert_eq!(
            reads.iter().filter(|r| r.method == "getWaSettings").count(),
            1
        );
    }
    // Adopted instances are recorded as applied: the next run makes no call and no read.
    let reads = world.fake.reads().len();
    let again = world.run(&["--reconcile", "--json"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(again.json()["summary"]["inSync"], 25);
    assert_eq!(
        (world.fake.request_count(), world.fake.reads().len()),
        (5, reads)
    );
    assert!(!shows_token(&run.stderr) && !shows_token(&run.stdout));
}

#[test]
fn adopt_false_uploads_everything_without_reading() {
    let world = fleet(4, 4, "adopt: false\n");
    let run = world.run(&["--reconcile", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(world.fake.request_count(), 4);
    assert!(world.fake.reads().is_empty());
}

#[test]
fn a_failed_read_falls_back_to_uploading() {
    let world = fleet(2, 2, "");
    world
        .fake
        .script_reads("1101000000", [Answer::Status(500, "down".into())]);
    let run = world.run(&["--reconcile", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.status_of("1101000000"), "applied");
    assert_eq!(run.status_of("1101000001"), "adopted");
    assert_eq!(world.fake.request_count(), 1);
}
