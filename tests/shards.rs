//! `--shard K/N`: processes with their own state directories share one manifest's
//! instances, each instance in exactly one shard; a bad shard is a usage error.

use crate::util::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// `n` instances sharing one picture.
fn fleet(world: &World, n: u64) -> Vec<String> {
    world.write("a.jpg", &jpeg(1));
    let mut yaml = String::from("apiUrl: {url}\nminInterval: 1s\ninstances:\n");
    let ids: Vec<String> = (0..n).map(|i| (1_101_000_000 + i).to_string()).collect();
    for id in &ids {
        world.instance(id);
        yaml.push_str(&format!(
            "  - idInstance: \"{id}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n"
        ));
    }
    world.write_manifest(&yaml);
    ids
}

/// `--reconcile` as shard `k` of 3, with that shard's own state directory.
fn run_shard(world: &World, k: u32, extra: &[&str]) -> Run {
    let shard = format!("{k}/3");
    let state = world.path(&format!("state-{k}"));
    let mut cmd = world.command_with(
        &world.manifest(),
        &state,
        &["--reconcile", "--shard", &shard],
    );
    to_run(cmd.args(extra).output().unwrap())
}

#[test]
fn three_shards_call_every_instance_exactly_once_then_nothing() {
    let world = World::new(Duration::from_secs(1));
    let ids = fleet(&world, 300);
    let mut sizes = Vec::new();
    for k in 0..3 {
        let run = run_shard(&world, k, &["--json"]);
        assert_eq!(run.code, 0, "{run:?}");
        let doc = run.json();
        assert_eq!(doc["shard"]["index"], k);
        assert_eq!(doc["shard"]["count"], 3);
        assert_eq!(doc["shard"]["manifestInstances"], 300);
        sizes.push(doc["instances"].as_array().unwrap().len());
    }
    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    for request in world.fake.requests() {
        *calls.entry(request.instance).or_default() += 1;
    }
    assert_eq!(calls.len(), 300, "every instance called");
    assert!(calls.values().all(|&n| n == 1), "{calls:?}");
    assert_eq!(calls.keys().cloned().collect::<Vec<_>>(), ids);
    assert_eq!(sizes.iter().sum::<usize>(), 300, "{sizes:?}");
    assert!(sizes.iter().all(|&n| (70..=130).contains(&n)), "{sizes:?}");

    // A second round: nothing to do anywhere; the table says which shard and how many.
    for k in 0..3 {
        let run = run_shard(&world, k, &[]);
        assert_eq!(run.code, 0, "{run:?}");
        let expected = format!(
            "shard {k}/3: {} of 300 instances: {} in sync,",
            sizes[k as usize], sizes[k as usize]
        );
        assert!(run.stdout.starts_with(&expected), "{run:?}");
    }
    assert_eq!(world.fake.request_count(), 300);

    // --check validates the whole manifest, whatever the shard.
    let check = world.run(&["--check", "--json", "--shard", "1/3"]);
    assert_eq!(check.json()["instances"].as_array().unwrap().len(), 300);
}

#[test]
fn a_shard_that_does_not_exist_is_a_usage_error() {
    let world = World::new(Duration::from_secs(1));
    fleet(&world, 3);
    for bad in ["4/3", "3/3", "0/0", "a/b", "1", "-1/3"] {
        let run = world.run(&["--dry-run", &format!("--shard={bad}")]);
        assert_eq!(run.code, 64, "--shard {bad}: {run:?}");
        assert!(run.stderr.contains("shard"), "--shard {bad}: {run:?}");
    }
    let mut cmd = world.command(&["--dry-run", "--shard-from-hostname", "3"]);
    let run = to_run(cmd.env("HOSTNAME", "avatar-sync-7").output().unwrap());
    assert_eq!(run.code, 64, "{run:?}");
    assert!(run.stderr.contains("avatar-sync-7"), "{run:?}");
    let mut cmd = world.command(&["--dry-run", "--json", "--shard-from-hostname", "3"]);
    let run = to_run(cmd.env("HOSTNAME", "avatar-sync-2").output().unwrap());
    assert_eq!(run.json()["shard"]["index"], 2, "{run:?}");
    assert_eq!(world.fake.request_count(), 0);
}

#[test]
fn n8_an_instance_outside_the_shard_a_loose_ordinal_and_a_bad_shard_variable() {
    let world = World::new(Duration::from_secs(1));
    let ids = fleet(&world, 12);
    // `--instance` of another shard is said, exit 1, nothing called.
    let shard0 = world.run(&["--dry-run", "--json", "--all", "--shard", "0/3"]);
    let rows = shard0.json()["instances"].as_array().unwrap().clone();
    let held: Vec<&str> = rows
        .iter()
        .map(|r| r["idInstance"].as_str().unwrap())
        .collect();
    let other = (ids.iter())
        .find(|id| !held.contains(&id.as_str()))
        .expect("some instance is not in shard 0");
    let run = run_shard(&world, 0, &["--instance", other]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("belongs to shard"), "{run:?}");
    assert!(run.stderr.contains(other.as_str()), "{run:?}");
    // Loose ordinals and shards are refused.
    for host in ["avatar-sync-+1", "avatar-sync- 1"] {
        let mut cmd = world.command(&["--dry-run", "--shard-from-hostname", "3"]);
        let run = to_run(cmd.env("HOSTNAME", host).output().unwrap());
        assert_eq!(run.code, 64, "{host}: {run:?}");
    }
    let run = world.run(&["--dry-run", "--shard", " 1/3"]);
    assert_eq!(run.code, 64, "{run:?}");
    // A bad AVATAR_SYNC_SHARD does not stop --check (the whole manifest), but does stop a
    // run that needs its shard.
    let mut cmd = world.command(&["--check"]);
    let run = to_run(cmd.env("AVATAR_SYNC_SHARD", "bogus").output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    let mut cmd = world.command(&["--dry-run"]);
    let run = to_run(cmd.env("AVATAR_SYNC_SHARD", "bogus").output().unwrap());
    assert_eq!(run.code, 64, "{run:?}");
    assert!(run.stderr.contains("AVATAR_SYNC_SHARD"), "{run:?}");
    assert_eq!(world.fake.request_count(), 0);
}
