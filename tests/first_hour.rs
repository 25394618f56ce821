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
