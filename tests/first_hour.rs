//! What a new user trips on (issue 25), through the real binary: each test is one defect
//! found by trying the README as a newcomer would, and fails if it comes back.

use crate::util::*;
use std::time::Duration;

#[test]
fn status_and_dry_run_on_a_state_directory_they_cannot_read_exit_1() {
    let world = World::new(Duration::from_secs(1));
    world.instance("1101000001");
    world.write("a.jpg", &jpeg(1));
    world.write_manifest(
        "apiUrl: {url}\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n",
    );
    // `-s` naming a file: there is no state to read, and "3 pending" would be a lie.
    let not_a_folder = world.write("state-is-a-file", b"");
    for mode in ["--status", "--dry-run"] {
        let mut cmd = world.command_with(&world.manifest(), &not_a_folder, &[mode]);
        let run = to_run(cmd.output().unwrap());
        assert_eq!(run.code, 1, "{mode}: {run:?}");
        assert!(run.stderr.contains("state-is-a-file"), "{mode}: {run:?}");
        assert!(run.stderr.contains("state-unreadable"), "{mode}: {run:?}");
        assert!(!run.stdout.contains("pending"), "{mode}: {run:?}");
    }
    assert_eq!(world.fake.request_count(), 0);
}

#[test]
fn a_refused_connection_is_unreachable_never_throttled_and_the_wait_is_said_once() {
    let world = World::new(Duration::from_secs(1));
    world.write("a.jpg", &jpeg(1));
    // Nothing listens on port 9 of loopback: every call is refused at once.
    world.write_manifest(
        "apiUrl: http://127.0.0.1:9\nminInterval: 1s\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n",
    );
    let run = world.run(&["--reconcile", "--json", "--timeout", "4s"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.status_of("1101000001"), "unreachable", "{run:?}");
    assert_eq!(run.row("1101000001")["errorKind"], "connection", "{run:?}");
    assert_eq!(run.json()["summary"]["unreachable"], 1, "{run:?}");
    assert_eq!(run.json()["summary"]["throttled"], 0, "{run:?}");
    assert_eq!(run.stderr.matches("waiting until").count(), 1, "{run:?}");
    assert!(run.stderr.contains("--timeout ends the run at"), "{run:?}");
    let table = world.run(&["--status"]);
    assert!(table.stdout.contains("unreachable"), "{table:?}");
}

#[test]
fn drift_twice_in_a_row_reads_once_a_second_across_runs_and_waits_out_a_429() {
    let world = World::new(Duration::from_secs(1));
    let ids = ["1101000001", "1101000002", "1101000003"];
    let mut yaml = String::from("apiUrl: {url}\nminInterval: 1s\ninstances:\n");
    for id in ids {
        world.instance(id);
        yaml.push_str(&format!(
            "  - idInstance: \"{id}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n"
        ));
    }
    world.write("a.jpg", &jpeg(1));
    world.write_manifest(&yaml);
    assert_eq!(world.run(&["--reconcile"]).code, 0);
    let first = world.run(&["--drift", "--json"]);
    assert_eq!(first.code, 0, "{first:?}");
    // At once again: the state directory says when each instance was last read, and the
    // second run waits out the second GREEN-API asks for between two reads.
    let before = world.fake.reads().len();
    let second = world.run(&["--drift", "--json"]);
    assert_eq!(second.code, 0, "{second:?}");
    for id in ids {
        assert_eq!(second.status_of(id), "in-sync", "{second:?}");
    }
    let reads = world.fake.reads();
    let answers: Vec<&str> = reads[before..].iter().map(|r| r.answer.as_str()).collect();
    assert!(answers.iter().all(|a| *a == "200"), "{answers:?}");
    for id in ids {
        let times: Vec<_> = (reads.iter())
            .filter(|r| r.instance == id && r.method == "getWaSettings")
            .map(|r| r.received_at)
            .collect();
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= Duration::from_secs(1),
                "{id}: {times:?}"
            );
        }
    }

    // A 429 on a read is waited out within the run, not reported as a failure.
    world
        .fake
        .script_reads(ids[0], [Answer::Status(429, "{}".to_owned())]);
    let third = world.run(&["--drift", "--json"]);
    assert_eq!(third.code, 0, "{third:?}");
    assert_eq!(third.status_of(ids[0]), "in-sync", "{third:?}");
    let answered: Vec<String> = (world.fake.reads_for(ids[0]).iter())
        .filter(|r| r.method == "getWaSettings")
        .map(|r| r.answer.clone())
        .collect();
    assert_eq!(
        answered[answered.len() - 2..],
        ["429", "200"],
        "{answered:?}"
    );
}

#[test]
fn one_shot_modes_print_the_table_and_log_only_warnings_unless_asked() {
    let world = World::new(Duration::from_secs(1));
    world.instance("1101000001");
    world.write("a.jpg", &jpeg(1));
    world.write_manifest(
        "apiUrl: {url}\nminInterval: 10s\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n",
    );
    // No terminal here, as under cron or CI: the rule is the same as on one.
    let run = world.run(&["--reconcile"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("1 applied"), "{run:?}");
    assert_eq!(run.stderr, "", "nothing but the table: {run:?}");
    for mode in ["--check", "--status", "--dry-run"] {
        let run = world.run(&[mode]);
        assert!(!run.stderr.contains("INFO"), "{mode}: {run:?}");
    }
    // -v brings the run's INFO lines back, their milliseconds rounded for people.
    let verbose = world.run(&["--reconcile", "-v"]);
    assert!(verbose.stderr.contains("INFO"), "{verbose:?}");
    let took = (verbose.stderr.split_whitespace())
        .find_map(|word| word.strip_prefix("took_ms="))
        .unwrap_or_else(|| panic!("{verbose:?}"));
    let decimals = took.split_once('.').map_or(0, |(_, d)| d.len());
    assert!(decimals <= 2, "took_ms={took}");
    assert_eq!(world.fake.request_count(), 1);
}

#[test]
fn a_manifests_problems_are_a_table_on_stdout_and_objects_in_json() {
    let world = World::new(Duration::from_secs(1));
    world.instance("1101000001");
    world.write("a.jpg", &jpeg(1));
    // Three mistakes in one file: a misspelt top key, a misspelt instance key, a bad id.
    world.write_manifest(
        "apiUrl: {url}\nminIntervl: 10s\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n    qualty: 90\n  - idInstance: \"11x\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n",
    );
    for mode in ["--check", "--reconcile", "--dry-run", "--status", "--drift"] {
        let run = world.run(&[mode]);
        assert_eq!(run.code, 1, "{mode}: {run:?}");
        let rows: Vec<&str> = (run.stdout.lines())
            .filter(|l| l.contains("manifest.yaml:"))
            .collect();
        assert_eq!(rows.len(), 3, "{mode}: one row a problem, by line: {run:?}");
        let expected = [
            (":2 ", "-", "unknown-key", "did you mean `minInterval`?"),
            (
                ":7 ",
                "1101000001",
                "unknown-key",
                "did you mean `quality`?",
            ),
            (":8 ", "-", "invalid-id", "idInstance `11x` must be digits"),
        ];
        for (row, (line, instance, kind, detail)) in rows.iter().zip(expected) {
            let cells: Vec<&str> = row.split_whitespace().collect();
            assert!(row.contains(line), "{mode}: {row}");
            assert_eq!(cells[1..3], [instance, kind], "{mode}: {row}");
            assert!(row.contains(detail), "{mode}: {row}");
        }
        assert!(
            run.stdout
                .contains("manifest NOT valid: 3 problems; no call was made"),
            "{mode}: {run:?}"
        );
        // stderr says where the list went, in one line.
        assert_eq!(run.stderr.lines().count(), 1, "{mode}: {run:?}");
        assert!(
            run.stderr
                .contains("manifest.yaml: 3 problems (listed on stdout)"),
            "{mode}: {run:?}"
        );
    }
    let run = world.run(&["--check", "--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["error"]["kind"], "manifest-invalid");
    let problems = doc["error"]["problems"].as_array().expect("a list");
    let listed: Vec<(u64, &str, &str)> = (problems.iter())
        .map(|p| {
            assert!(p["file"].as_str().unwrap().ends_with("manifest.yaml"));
            let id = p["idInstance"].as_str().unwrap_or("-");
            (p["line"].as_u64().unwrap(), p["kind"].as_str().unwrap(), id)
        })
        .collect();
    assert_eq!(
        listed,
        [
            (2, "unknown-key", "-"),
            (7, "unknown-key", "1101000001"),
            (8, "invalid-id", "-")
        ]
    );
    assert_eq!(world.fake.request_count(), 0);
}

#[test]
fn check_lists_a_missing_picture_in_the_same_pass_as_the_manifests_problems() {
    let world = World::new(Duration::from_secs(1));
    world.write("a.jpg", &jpeg(1));
    // A misspelt key, and two instances naming a picture that is not there.
    world.write_manifest(
        "apiUrl: {url}\nminIntervl: 10s\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: TOKEN_ENV\n    picture: gone.jpg\n  - idInstance: \"1101000002\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n  - idInstance: \"1101000003\"\n    apiTokenEnv: TOKEN_ENV\n    picture: gone.jpg\n",
    );
    let check = world.run(&["--check"]);
    assert_eq!(check.code, 1, "{check:?}");
    let rows: Vec<&str> = (check.stdout.lines())
        .filter(|l| l.contains("manifest.yaml:"))
        .collect();
    assert_eq!(rows.len(), 2, "{check:?}");
    assert!(rows[0].contains("unknown-key"), "{check:?}");
    let cells: Vec<&str> = rows[1].split_whitespace().collect();
    assert!(cells[0].ends_with("manifest.yaml:4"), "{check:?}");
    assert_eq!(cells[1..3], ["1101000001", "picture-missing"], "{check:?}");
    assert!(
        rows[1].ends_with("gone.jpg does not exist (1 other instance names it)"),
        "{check:?}"
    );
    assert!(
        check.stdout.contains("manifest NOT valid: 2 problems"),
        "{check:?}"
    );
    assert!(
        check.stderr.contains("2 problems (listed on stdout)"),
        "{check:?}"
    );
    // --json says the same; the other modes list the manifest's problems only (a missing
    // picture is an error of its instances once the manifest is fixed).
    let json = world.run(&["--check", "--json"]).json();
    let kinds: Vec<&str> = (json["error"]["problems"].as_array().unwrap().iter())
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["unknown-key", "picture-missing"]);
    let reconcile = world.run(&["--reconcile"]);
    assert_eq!(reconcile.code, 1, "{reconcile:?}");
    assert!(
        !reconcile.stdout.contains("picture-missing"),
        "{reconcile:?}"
    );
    assert!(reconcile.stdout.contains("1 problem;"), "{reconcile:?}");
    assert_eq!(world.fake.request_count(), 0);
}
