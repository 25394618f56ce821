//! `--check`'s lint warnings (`min-interval-short`, `token-file-open`,
//! `secret-in-manifest`, `token-unavailable`), each with its label in the table and in
//! `--json`, and `--check --strict`, which makes every warning an error.

use crate::util::*;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

/// One instance whose token comes from `token` (a line of YAML), with `top` above.
fn manifest(world: &World, top: &str, token: &str) {
    world.write("a.jpg", &jpeg(1));
    world.write_manifest(&format!(
        "apiUrl: {{url}}\n{top}instances:\n  - idInstance: \"1101000001\"\n    {token}\n    picture: a.jpg\n"
    ));
}

/// The warnings of a `--check --json` run, manifest-wide and per instance.
fn warnings(run: &Run) -> Vec<String> {
    let doc = run.json();
    let top = doc["warnings"].as_array().unwrap().iter();
    let rows = doc["instances"].as_array().unwrap().iter();
    let per_instance = rows.flat_map(|r| r["warnings"].as_array().unwrap().iter());
    (top.chain(per_instance))
        .map(|w| w.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_short_min_interval_is_a_warning_and_strict_makes_it_an_error() {
    let world = World::new(Duration::from_secs(1));
    manifest(&world, "minInterval: 2s\n", "apiTokenEnv: TOKEN_ENV");
    let run = world.run(&["--check", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let found = warnings(&run);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("manifest.yaml:2:"), "{found:?}");
    assert!(found[0].contains("minInterval 2s"), "{found:?}");
    assert!(found[0].ends_with("[min-interval-short]"), "{found:?}");
    let table = world.run(&["--check"]);
    assert!(table.stdout.contains("[min-interval-short]"), "{table:?}");

    let strict = world.run(&["--check", "--strict"]);
    assert_eq!(strict.code, 1, "{strict:?}");
    assert!(strict.stdout.contains("--strict"), "{strict:?}");
    assert_eq!(world.run(&["--check", "--strict", "--json"]).code, 1);

    // 10s, the default, is WhatsApp's own limit: nothing to say, and --strict passes.
    manifest(&world, "minInterval: 10s\n", "apiTokenEnv: TOKEN_ENV");
    let clean = world.run(&["--check", "--strict", "--json"]);
    assert_eq!((clean.code, warnings(&clean).len()), (0, 0), "{clean:?}");
}

#[test]
fn a_token_file_others_may_read_is_a_warning_that_never_shows_the_token() {
    let world = World::new(Duration::from_secs(1));
    let file = world.write("secrets/a.token", TOKEN.as_bytes());
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    manifest(&world, "", "apiTokenFile: secrets/a.token");
    let run = world.run(&["--check", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let found = warnings(&run);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("mode 0644"), "{found:?}");
    assert!(found[0].ends_with("[token-file-open]"), "{found:?}");
    let strict = world.run(&["--check", "--strict"]);
    assert_eq!(strict.code, 1, "{strict:?}");
    for out in [&run.stdout, &run.stderr, &strict.stdout, &strict.stderr] {
        assert!(!out.contains(TOKEN), "the token is shown: {out}");
    }

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(world.run(&["--check", "--strict"]).code, 0);
}

#[test]
fn strict_fails_on_a_token_in_the_manifest_and_on_one_absent_here() {
    let world = World::new(Duration::from_secs(1));
    manifest(&world, "", &format!("apiTokenInstance: {TOKEN}"));
    let run = world.run(&["--check", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let found = warnings(&run);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].ends_with("[secret-in-manifest]"), "{found:?}");
    assert!(!run.stdout.contains(TOKEN), "{run:?}");
    assert_eq!(world.run(&["--check", "--strict"]).code, 1);

    manifest(&world, "", "apiTokenEnv: NOT_SET_HERE");
    let run = world.run(&["--check", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        warnings(&run)[0].ends_with("[token-unavailable]"),
        "{run:?}"
    );
    assert_eq!(world.run(&["--check", "--strict"]).code, 1);

    // --strict belongs to --check.
    assert_eq!(world.run(&["--reconcile", "--strict"]).code, 64);
}
