//! What must never happen: a leaked token, a call made from a bad manifest, a lost or
//! half-written state file, two writers on one state directory.

use crate::util::*;
use std::time::Duration;

const MIN: Duration = Duration::from_secs(1);

fn one_instance(world: &World, token_line: &str) {
    world.write("a.jpg", &jpeg(1));
    world.write_manifest(&format!(
        "apiUrl: {{url}}\nminInterval: 1s\ninstances:\n  - idInstance: \"1101000001\"\n    {token_line}\n    picture: a.jpg\n"
    ));
}

fn assert_no_token_anywhere(world: &World, runs: &[&Run], token: &str) {
    for run in runs {
        assert!(!run.stdout.contains(token), "token in stdout: {run:?}");
        assert!(!run.stderr.contains(token), "token in stderr: {run:?}");
    }
    for (path, bytes) in world.all_files() {
        if path.starts_with(world.state_dir()) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(token), "token in {}", path.display());
        }
    }
}

#[test]
fn a_wrong_token_fails_in_one_line_and_never_leaks() {
    let world = World::new(MIN);
    world.instance("1101000001");
    let wrong = "WrOnGtOkEn0123456789abcdefXYZ";
    world.write("token", wrong.as_bytes());
    one_instance(&world, "apiTokenFile: token");
    let mut cmd = world.command(&["--reconcile", "--json", "-vv"]);
    let run = to_run(cmd.env("RUST_LOG", "trace").output().unwrap());
    assert_eq!(run.code, 1, "{run:?}");
    let row = run.row("1101000001");
    assert_eq!(row["status"], "failed");
    assert_eq!(row["errorKind"], "unauthorized");
    let error = row["error"].as_str().unwrap();
    assert!(!error.contains('\n') && error.contains("401"), "{error}");
    let requests = world.fake.requests();
    assert_eq!(requests.len(), 1, "a bad token is not retried in one run");
    assert!(!requests[0].token_valid);
    let text = world.run(&["--reconcile"]);
    assert_eq!(text.code, 1);
    let status = world.run(&["--status", "--json"]);
    assert_eq!(status.status_of("1101000001"), "failed");
    assert_no_token_anywhere(&world, &[&run, &text, &status], wrong);
}

#[test]
fn unauthorized_inside_a_200_is_a_bad_token_too() {
    let world = World::new(MIN);
    world.instance("1101000001");
    world.fake.script("1101000001", [Answer::Unauthorized200]);
    one_instance(&world, "apiTokenEnv: TOKEN_ENV");
    let mut cmd = world.command(&["--reconcile", "--json", "--log-format", "json", "-vv"]);
    let run = to_run(cmd.env("RUST_LOG", "trace").output().unwrap());
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.row("1101000001")["errorKind"], "unauthorized");
    assert_eq!(world.fake.request_count(), 1);
    assert_no_token_anywhere(&world, &[&run], TOKEN);
    // Every log line is JSON.
    for line in run.stderr.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
}

#[test]
fn connection_errors_do_not_print_the_url() {
    let world = World::new(MIN);
    // Nothing listens on port 9 of loopback: connection refused.
    world.write("a.jpg", &jpeg(1));
    std::thread::sleep(SETTLE);
    world.write_manifest(
        "apiUrl: http://127.0.0.1:9\nminInterval: 1s\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n",
    );
    let mut cmd = world.command(&["--reconcile", "--json", "--timeout", "1s", "-vv"]);
    let run = to_run(cmd.env("RUST_LOG", "trace").output().unwrap());
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.row("1101000001")["errorKind"], "connection");
    assert_no_token_anywhere(&world, &[&run], TOKEN);
}

#[test]
fn invalid_manifests_name_the_line_and_call_nothing() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "bad YAML",
            "instances:\n  - idInstance: \"1\"\n    picture: [a.jpg\n",
            ":3:",
        ),
        (
            "unknown key",
            "instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n    colour: red\n",
            ":5:",
        ),
        (
            "duplicate idInstance",
            "instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n  - idInstance: 1\n    apiTokenEnv: T\n    picture: a.jpg\n",
            ":5:",
        ),
        (
            "duplicate key",
            "instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    apiTokenEnv: U\n    picture: a.jpg\n",
            ":4:",
        ),
        (
            "bad apiUrl",
            "apiUrl: not a url\ninstances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n",
            ":1:",
        ),
        (
            "http to a remote host",
            "instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n    apiUrl: http://api.green-api.com\n",
            ":5:",
        ),
        (
            "token with a slash",
            "instances:\n  - idInstance: \"1\"\n    apiTokenInstance: abc/def\n    picture: a.jpg\n",
            ":3:",
        ),
        (
            "idInstance not digits",
            "instances:\n  - idInstance: \"11x\"\n    apiTokenEnv: T\n    picture: a.jpg\n",
            ":2:",
        ),
    ];
    for (name, yaml, line) in cases {
        let world = World::new(MIN);
        world.instance("1");
        world.write("a.jpg", &jpeg(1));
        world.write_manifest(yaml);
        for mode in ["--reconcile", "--check", "--dry-run"] {
            let run = world.run(&[mode]);
            assert_eq!(run.code, 1, "{name} {mode}: {run:?}");
            // Listed on stdout, `WHERE` first: `manifest.yaml:3  INSTANCE  PROBLEM  DETAIL`.
            let at = format!("manifest.yaml{} ", line.trim_end_matches(':'));
            assert!(
                run.stdout.contains(&at),
                "{name} {mode}: wanted {at}: {run:?}"
            );
        }
        assert_eq!(world.fake.request_count(), 0, "{name}");
        assert!(!world.state_dir().join("state.json").exists(), "{name}");
    }
}

#[test]
fn a_corrupt_state_file_is_moved_aside_and_work_goes_on() {
    let world = World::new(MIN);
    world.instance("1101000001");
    one_instance(&world, "apiTokenEnv: TOKEN_ENV");
    let garbage = b"{\"version\": 1, \"instances\": {\"1101000001\": tru";
    world.write("state/state.json", garbage);

    let run = world.run(&["--reconcile", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("could not be read"), "{run:?}");
    assert!(run.stderr.contains("ERROR"), "a loud error: {run:?}");
    assert_eq!(run.status_of("1101000001"), "applied");
    let moved: Vec<_> = std::fs::read_dir(world.state_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("state.json.unreadable-")
        })
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(std::fs::read(&moved[0]).unwrap(), garbage);
    assert_eq!(
        world.state()["instances"]["1101000001"]["applied"]["sha256"],
        sha256(&jpeg(1))
    );
}

#[test]
fn a_bad_manifest_stops_the_run_before_a_corrupt_state_is_touched() {
    // --reconcile reads the state while the manifest loads: the manifest's error still
    // comes first, and the state directory is left exactly as it was.
    let world = World::new(MIN);
    world.instance("1101000001");
    world.write_manifest(
        "apiUrl: {url}\ninstances:\n  - idInstance: \"1101000001\"\n    nonsense: 1\n",
    );
    let garbage = b"{\"version\": 2, \"instances\": {\"1101000001\": tru";
    world.write("state/state.json", garbage);
    let before = world.all_files();

    let run = world.run(&["--reconcile"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("manifest.yaml:4 "), "{run:?}");
    assert!(!run.stderr.contains("could not be read"), "{run:?}");
    // Only the lock, which names the run that held it, is left (as by any run).
    let after = world.all_files().into_iter();
    let after: Vec<_> = after.filter(|(f, _)| !f.ends_with("state/lock")).collect();
    assert_eq!(after, before, "nothing moved aside, nothing written");
    assert_eq!(world.fake.request_count(), 0);
}

#[test]
fn the_state_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let world = World::new(MIN);
    world.instance("1101000001");
    one_instance(&world, "apiTokenEnv: TOKEN_ENV");
    assert_eq!(world.run(&["--reconcile"]).code, 0);
    let mode = |p| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(world.state_dir().join("state.json")), 0o600);
    assert_eq!(mode(world.state_dir()), 0o700);
}

#[test]
fn a_second_writer_stops_at_once_and_names_the_first() {
    let world = World::new(MIN);
    world.instance("1101000001");
    world.fake.set_latency("1101000001", Duration::from_secs(3));
    one_instance(&world, "apiTokenEnv: TOKEN_ENV");
    let mut first = Daemon::start(&world, &["--reconcile"]);
    // The first holds the lock once its call reaches the fake.
    first.wait_for_requests(&world, 1);
    let second = world.run(&["--reconcile"]);
    assert_eq!(second.code, 1, "{second:?}");
    assert!(
        second.stderr.contains("in use by another avatar-sync"),
        "{second:?}"
    );
    assert!(
        second.stderr.contains(&format!("pid {}", first.pid())),
        "{second:?}"
    );
    assert_eq!(first.wait_exit(GENEROUS), Some(0), "{}", first.log());
    assert_eq!(world.fake.request_count(), 1);
    // Readers do not need the lock.
    assert_eq!(world.run(&["--status"]).code, 0);
}

#[test]
fn a_killed_run_loses_at_most_its_last_moment() {
    // WhatsApp's own limit is not what this test is about: a call repeated right after the
    // kill would otherwise be answered rate-overlimit and retried.
    let world = World::new(Duration::ZERO);
    let ids: Vec<String> = (1..=20).map(|n| format!("11010000{n:02}")).collect();
    let mut yaml = String::from("apiUrl: {url}\nminInterval: 1s\ninstances:\n");
    for (n, id) in ids.iter().enumerate() {
        world.instance(id);
        world.fake.set_latency(id, Duration::from_millis(300));
        let picture = format!("p{n}.jpg");
        world.write(&picture, &jpeg(u32::try_from(n).unwrap()));
        yaml.push_str(&format!(
            "  - idInstance: \"{id}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: {picture}\n"
        ));
    }
    world.write_manifest(&yaml);
    let concurrency = 4;
    let mut first = Daemon::start(
        &world,
        &["--reconcile", "--concurrency", &concurrency.to_string()],
    );
    // Kill it once some outcomes are on disk and more calls are under way.
    let applied_on_disk = |world: &World| -> Vec<String> {
        let Some(state) = world.try_state() else {
            return Vec::new();
        };
        state["instances"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, r)| !r["applied"].is_null())
            .map(|(id, _)| id.clone())
            .collect()
    };
    first.wait_until("four outcomes on disk", || {
        applied_on_disk(&world).len() >= 4
    });
    first.kill();
    let first_run = world.fake.requests();
    assert!(
        first_run.len() < 20,
        "killed too late to mean anything: {}",
        first_run.len()
    );

    let saved = applied_on_disk(&world);
    let run = world.run(&["--reconcile", "--json", "--concurrency", "8"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.json()["summary"]["applied"].as_u64().unwrap()
            + run.json()["summary"]["inSync"].as_u64().unwrap(),
        20
    );
    let second_run = &world.fake.requests()[first_run.len()..];
    let called_first: std::collections::HashSet<&str> =
        first_run.iter().map(|r| r.instance.as_str()).collect();
    let called_again: Vec<&str> = second_run
        .iter()
        .map(|r| r.instance.as_str())
        .filter(|id| called_first.contains(id))
        .collect();
    for id in &called_again {
        assert!(
            !saved.iter().any(|s| s == id),
            "{id} was saved as applied yet called again"
        );
    }
    // In flight (≤ concurrency) plus the last unsaved batch (≤ concurrency at this latency).
    assert!(called_again.len() <= 2 * concurrency, "{called_again:?}");
    // Every instance is applied exactly once in the end, and none twice in one run.
    let mut second_ids: Vec<&str> = second_run.iter().map(|r| r.instance.as_str()).collect();
    second_ids.sort_unstable();
    second_ids.dedup();
    assert_eq!(second_ids.len(), second_run.len());
    assert_eq!(second_run.len() + saved.len(), 20);
}

#[test]
fn usage_errors_exit_64() {
    let world = World::new(MIN);
    for args in [
        &["--reconcile", "--dry-run"][..],
        &["--json"],
        &["--dry-run", "--timeout", "5m"],
        &["--reconcile", "--timeout", "soon"],
        &["--concurrency", "0", "--reconcile"],
        &["--no-such-flag"],
    ] {
        let run = world.run(args);
        assert_eq!(run.code, 64, "{args:?}: {run:?}");
    }
    let help = world.run(&["--help"]);
    assert_eq!(help.code, 0);
    assert!(
        help.stdout.contains("--reconcile") && help.stdout.contains("Exit codes"),
        "{help:?}"
    );
}
