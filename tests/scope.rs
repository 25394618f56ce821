//! Fleets and acting on a few: a 100,000-instance manifest loads; the table of
//! `--reconcile` and `--dry-run` lists only what changed, waits or failed (`--all` lists
//! everything, `--json` always does); `--instance` restricts every mode to the instances
//! it names.

use crate::util::*;
use std::time::Duration;

const MIN: Duration = Duration::from_secs(1);

fn id(n: u32) -> String {
    format!("11010000{n:02}")
}

/// Ten instances, each with its own picture.
fn ten_instances(world: &World) {
    let mut yaml = String::from("apiUrl: {url}\nminInterval: 1s\ninstances:\n");
    for n in 1..=10 {
        world.instance(&id(n));
        world.write(&format!("pictures/{n}.jpg"), &jpeg(n));
        yaml.push_str(&format!(
            "  - idInstance: \"{}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: pictures/{n}.jpg\n",
            id(n)
        ));
    }
    world.write_manifest(&yaml);
}

/// The instance ids of the table's rows (lines that start with an id).
fn listed(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|first| first.len() == 10 && first.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_table_lists_only_what_changed_and_all_lists_everything() {
    let world = World::new(MIN);
    ten_instances(&world);
    let first = world.run(&["--reconcile"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(listed(&first.stdout).len(), 10, "{first:?}");

    // Nothing to do: no row, not even the header; the summary folds the instances in.
    let summary =
        "10 instances: 10 in sync, 0 applied, 0 pending, 0 throttled, 0 failed, 0 suspended\n";
    let noop = world.run(&["--reconcile"]);
    assert_eq!((noop.code, noop.stdout.as_str()), (0, summary), "{noop:?}");
    let dry = world.run(&["--dry-run"]);
    assert_eq!((dry.code, dry.stdout.as_str()), (0, summary), "{dry:?}");

    // One change (once minInterval has passed): that one is listed, by --dry-run and then
    // by --reconcile.
    std::thread::sleep(MIN);
    world.write("pictures/3.jpg", &jpeg(33));
    let dry = world.run(&["--dry-run"]);
    assert_eq!(dry.code, 2, "{dry:?}");
    assert_eq!(listed(&dry.stdout), [id(3)], "{dry:?}");
    assert!(dry.stdout.contains(" pending "), "{dry:?}");
    let one = world.run(&["--reconcile"]);
    assert_eq!(one.code, 0, "{one:?}");
    assert_eq!(listed(&one.stdout), [id(3)], "{one:?}");
    assert!(
        one.stdout.ends_with(
            "10 instances: 9 in sync, 1 applied, 0 pending, 0 throttled, 0 failed, 0 suspended\n"
        ),
        "{one:?}"
    );
    assert_eq!(world.fake.request_count(), 11);

    // --all lists every instance in any mode; --status lists all anyway; --json always.
    let all = world.run(&["--reconcile", "--all"]);
    assert_eq!(listed(&all.stdout), (1..=10).map(id).collect::<Vec<_>>());
    let all = world.run(&["--dry-run", "--all"]);
    assert_eq!(listed(&all.stdout).len(), 10, "{all:?}");
    let status = world.run(&["--status"]);
    assert_eq!(listed(&status.stdout).len(), 10, "{status:?}");
    let json = world.run(&["--reconcile", "--json"]);
    assert_eq!(json.json()["instances"].as_array().unwrap().len(), 10);
    assert_eq!(world.fake.request_count(), 11, "none of these made a call");
}

#[test]
fn instance_acts_on_those_two_only_and_leaves_the_other_records_alone() {
    let world = World::new(MIN);
    ten_instances(&world);
    assert_eq!(world.run(&["--reconcile"]).code, 0);
    for n in 1..=10 {
        world.write(&format!("pictures/{n}.jpg"), &jpeg(100 + n));
    }
    let before = world.state();
    std::thread::sleep(MIN); // minInterval since the first calls

    let run = world.run(&[
        "--reconcile",
        "--json",
        "--instance",
        &id(2),
        "--instance",
        &id(7),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let requests = world.fake.requests();
    let new: Vec<&str> = requests[10..].iter().map(|r| r.instance.as_str()).collect();
    let mut new = new.clone();
    new.sort_unstable();
    assert_eq!(new, [id(2), id(7)]);
    assert_eq!(
        requests[10..]
            .iter()
            .filter(|r| r.file == jpeg(102))
            .count(),
        1
    );
    let rows: Vec<String> = (run.json()["instances"].as_array().unwrap().iter())
        .map(|r| r["idInstance"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rows, [id(2), id(7)]);
    assert_eq!(run.json()["summary"]["applied"], 2);

    let after = world.state();
    for n in (1..=10).filter(|n| ![2, 7].contains(n)) {
        let key = id(n);
        assert_eq!(
            serde_json::to_string(&after["instances"][&key]).unwrap(),
            serde_json::to_string(&before["instances"][&key]).unwrap(),
            "record {key} changed"
        );
    }
    assert_ne!(after["instances"][&id(2)], before["instances"][&id(2)]);

    // The other modes are restricted too.
    let dry = world.run(&["--dry-run", "--all", "--instance", &id(5)]);
    assert_eq!((dry.code, listed(&dry.stdout)), (2, vec![id(5)]), "{dry:?}");
    let check = world.run(&["--check", "--json", "--instance", &id(5)]);
    assert_eq!(check.json()["instances"].as_array().unwrap().len(), 1);
}

#[test]
fn an_unknown_or_malformed_instance_is_a_usage_error_naming_it() {
    let world = World::new(MIN);
    ten_instances(&world);
    let unknown = world.run(&[
        "--reconcile",
        "--instance",
        &id(2),
        "--instance",
        "1101000099",
    ]);
    assert_eq!(unknown.code, 64, "{unknown:?}");
    assert!(
        unknown.stderr.contains("--instance 1101000099"),
        "{unknown:?}"
    );
    let malformed = world.run(&["--dry-run", "--instance", "11010x"]);
    assert_eq!(malformed.code, 64, "{malformed:?}");
    assert!(malformed.stderr.contains("11010x"), "{malformed:?}");
    assert_eq!(world.fake.request_count(), 0);
}

#[test]
fn a_manifest_of_100_000_instances_loads() {
    let world = World::new(MIN);
    world.write("a.jpg", &jpeg(1));
    let mut yaml = String::with_capacity(7 << 20);
    yaml.push_str("apiUrl: {url}\ninstances:\n");
    for n in 0..100_000u64 {
        yaml.push_str(&format!(
            "  - idInstance: \"{}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n",
            1_100_000_000 + n
        ));
    }
    world.write_manifest(&yaml);
    let check = world.run(&["--check"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(
        check
            .stdout
            .ends_with("manifest valid: 100,000 valid, 0 failed, 0 suspended, 0 warnings\n"),
        "{}",
        &check.stdout[check.stdout.len().saturating_sub(300)..]
    );
}

#[test]
fn a_five_line_alias_bomb_is_refused_at_once_naming_the_limit() {
    let world = World::new(MIN);
    // 64^5 ≈ 1.07 × 10^9 nodes once expanded, in five lines.
    let mut yaml = format!(
        "x-a: &a [{}]\n",
        std::iter::repeat_n("lol", 64).collect::<Vec<_>>().join(",")
    );
    for (name, of) in [("b", "a"), ("c", "b"), ("d", "c")] {
        let aliases = std::iter::repeat_n(format!("*{of}"), 64).collect::<Vec<_>>();
        yaml.push_str(&format!("x-{name}: &{name} [{}]\n", aliases.join(",")));
    }
    let aliases = std::iter::repeat_n("*d", 64).collect::<Vec<_>>();
    yaml.push_str(&format!("instances: [{}]\n", aliases.join(",")));
    assert_eq!(yaml.lines().count(), 5);
    world.write_manifest(&yaml);

    let started = std::time::Instant::now();
    let check = world.run(&["--check", "-vv"]);
    let took = started.elapsed();
    assert_eq!(check.code, 1, "{}", check.stderr);
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let peak_kib: u64 = check
        .stderr
        .split("peak_rss_kib=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no peak_rss_kib in {}", check.stderr));
    assert!(peak_kib < 50 * 1024, "peak RSS {peak_kib} KiB");
    // The file, the line of the alias that crossed the limit, the limit and its value.
    let listed = check
        .stdout
        .lines()
        .find(|l| l.contains("manifest.yaml:3 "));
    assert!(
        listed.is_some_and(|l| l.contains(
            "yaml-limit  the manifest exceeds a YAML safety limit: its \
             aliases (*name) would expand it to more than 250000 YAML nodes"
        )),
        "{}",
        check.stdout
    );
}

#[test]
fn a_manifest_parsed_once_is_not_parsed_again_until_it_changes() {
    let world = World::new(MIN);
    ten_instances(&world);
    let cache = world.state_dir().join("manifest-cache.json");
    let first = world.run(&["--reconcile", "-vv"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(!first.stderr.contains("taken from the cache"), "{first:?}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&cache.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // Same bytes: the parse comes from the cache, and the run is the same no-op.
    let again = world.run(&["--reconcile", "-vv"]);
    assert!(
        again.stderr.contains("manifest parse taken from the cache"),
        "{again:?}"
    );
    let summary =
        "10 instances: 10 in sync, 0 applied, 0 pending, 0 throttled, 0 failed, 0 suspended\n";
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (0, summary),
        "{again:?}"
    );
    assert_eq!(world.fake.request_count(), 10);

    // An edit (an eleventh instance) is parsed afresh and acted on; a manifest that then
    // writes its token is never cached, and the secret is in no file of the state directory.
    world.instance(&id(11));
    world.write("pictures/11.jpg", &jpeg(11));
    let mut yaml = std::fs::read_to_string(world.manifest()).unwrap();
    yaml.push_str(&format!(
        "  - idInstance: \"{}\"\n    apiTokenInstance: {}\n    picture: pictures/11.jpg\n",
        id(11),
        TOKEN
    ));
    world.write_manifest(&yaml);
    let edited = world.run(&["--reconcile", "-vv"]);
    assert_eq!(edited.code, 0, "{edited:?}");
    assert!(
        !edited.stderr.contains("taken from the cache"),
        "{edited:?}"
    );
    assert_eq!(listed(&edited.stdout), [id(11)], "{edited:?}");
    let state_files = world.all_files().into_iter();
    for (file, bytes) in state_files.filter(|(file, _)| file.starts_with(world.state_dir())) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(TOKEN), "{} holds the token", file.display());
    }
    let cached = std::fs::read_to_string(&cache).unwrap();
    assert!(
        !cached.contains(&id(11)),
        "the cache still holds the last cacheable parse"
    );
}
