//! Hostile inputs and faults (issue 13), through the real binary: each test is one way the
//! audit hurt the program, and fails if that way works again.

mod support;

use std::time::Duration;
use support::*;

const MIN: Duration = Duration::from_secs(1);

/// One instance, `id`, showing `picture`, its token from `TOKEN_ENV`.
fn manifest(world: &World, id: &str, picture: &str) {
    world.instance(id);
    world.write_manifest(&format!(
        "apiUrl: {{url}}\nminInterval: 1s\ninstances:\n  - idInstance: \"{id}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: {picture}\n"
    ));
}

#[test]
fn an_emptied_prepared_picture_is_prepared_again_and_sent() {
    let world = World::new(MIN);
    world.write("a.jpg", &jpeg(1));
    manifest(&world, "1101000001", "a.jpg");
    assert_eq!(world.run(&["--reconcile"]).code, 0);
    // A new picture is prepared, but its call waits on the throttle past a zero timeout.
    world.write("a.jpg", &jpeg(2));
    let waiting = world.run(&["--reconcile", "--json", "--timeout", "0s"]);
    assert_eq!(waiting.status_of("1101000001"), "throttled", "{waiting:?}");
    // A power loss leaves the unsynced prepared file empty.
    let prepared = world.state_dir().join("prepared");
    for entry in std::fs::read_dir(&prepared).unwrap() {
        std::fs::write(entry.unwrap().path(), b"").unwrap();
    }

    std::thread::sleep(MIN);
    let run = world.run(&["--reconcile", "--json", "--timeout", "5s"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stderr.matches("missing or damaged").count(),
        1,
        "{run:?}"
    );
    let requests = world.fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].file, jpeg(2));
}
