//! `--reconcile`, `--dry-run` and `--status` of the real binary against the GREEN-API fake:
//! exact calls, their bytes, their spacing, and what the state remembers.

use crate::util::*;
use std::time::Duration;

const MIN: Duration = Duration::from_secs(1);

/// Three instances, two pictures, tokens from env, file and manifest.
fn three_instances(world: &World) {
    for id in ["1101000001", "1101000002", "1101000003"] {
        world.instance(id);
    }
    world.write("pictures/support.jpg", SUPPORT_JPG);
    world.write("pictures/sales.jpg", SALES_JPG);
    world.write("secrets/support.token", format!("  {TOKEN}\n").as_bytes());
    world.write_manifest(&format!(
        r#"
apiUrl: {{url}}
minInterval: 1s
instances:
  - idInstance: "1101000001"
    apiTokenFile: secrets/support.token
    picture: pictures/support.jpg
  - idInstance: 1101000002
    apiTokenEnv: TOKEN_ENV
    picture: pictures/sales.jpg
  - idInstance: "1101000003"
    apiTokenInstance: {TOKEN}
    picture: pictures/support.jpg
"#
    ));
}

#[test]
fn converges_once_then_makes_no_call() {
    let world = World::new(MIN);
    three_instances(&world);

    let first = world.run(&["--reconcile", "--json", "-v"]);
    assert_eq!(first.code, 0, "{first:?}");
    let requests = world.fake.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    let mut seen: Vec<&str> = requests.iter().map(|r| r.instance.as_str()).collect();
    seen.sort_unstable();
    assert_eq!(seen, ["1101000001", "1101000002", "1101000003"]);
    for request in &requests {
        let (name, bytes) = match request.instance.as_str() {
            "1101000002" => ("sales.jpg", SALES_JPG),
            _ => ("support.jpg", SUPPORT_JPG),
        };
        assert!(request.token_valid, "{request:?}");
        assert_eq!(request.field_name.as_deref(), Some("file"));
        assert_eq!(request.filename.as_deref(), Some(name));
        assert_eq!(request.part_content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(request.file, bytes);
        assert_eq!(request.file_sha256, sha256(bytes));
        assert_eq!(request.user_agent.as_deref(), Some("avatar-sync/0.1.0"));
        assert!(
            request
                .content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("multipart/form-data; boundary=")),
            "{request:?}"
        );
        assert_eq!(request.answer, "applied");
    }
    for id in ["1101000001", "1101000002", "1101000003"] {
        assert_eq!(first.status_of(id), "applied");
    }
    let row = first.row("1101000002");
    assert_eq!(row["desiredSha256"], sha256(SALES_JPG));
    assert_eq!(row["appliedSha256"], sha256(SALES_JPG));
    assert_eq!(row["error"], serde_json::Value::Null);
    assert_eq!(
        first.json()["summary"],
        serde_json::json!({"inSync": 0, "applied": 3, "adopted": 0, "pending": 0, "throttled": 0, "unreachable": 0, "failed": 0, "suspended": 0, "drifted": 0})
    );
    // With -v, one log line per call, with instance, outcome and duration.
    let call_lines: Vec<&str> = first
        .stderr
        .lines()
        .filter(|l| l.contains("setProfilePicture"))
        .collect();
    assert_eq!(call_lines.len(), 3, "{first:?}");
    for line in call_lines {
        assert!(line.contains("instance=11010000"), "{line}");
        assert!(
            line.contains("outcome=\"applied\"") || line.contains("outcome=applied"),
            "{line}"
        );
        assert!(line.contains("duration_ms="), "{line}");
    }

    let state = world.state();
    assert_eq!(state["version"], 3);
    assert_eq!(
        state["instances"]["1101000001"]["applied"]["sha256"],
        sha256(SUPPORT_JPG)
    );
    // The URL the fake answered: where it serves the live picture.
    let url_avatar = state["instances"]["1101000001"]["applied"]["urlAvatar"].as_str();
    assert!(
        url_avatar.unwrap().starts_with(&world.fake.url()),
        "{url_avatar:?}"
    );

    let second = world.run(&["--reconcile", "--json"]);
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(
        world.fake.request_count(),
        3,
        "a second run must make no call"
    );
    assert_eq!(second.status_of("1101000003"), "in-sync");
    assert_eq!(second.json()["summary"]["inSync"], 3);

    let dry = world.run(&["--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert_eq!(world.fake.request_count(), 3);
}

#[test]
fn one_changed_picture_is_planned_and_sent_alone() {
    let world = World::new(MIN);
    three_instances(&world);
    assert_eq!(world.run(&["--reconcile"]).code, 0);
    // Instance 2 gets a new picture. Wait out its throttle so the plan says "now".
    world.write("pictures/sales.jpg", &jpeg(2));
    std::thread::sleep(MIN + Duration::from_millis(200));

    let state_before = world.state_bytes();
    let dry = world.run(&["--dry-run", "--json"]);
    assert_eq!(dry.code, 2, "{dry:?}");
    assert_eq!(dry.status_of("1101000002"), "pending");
    assert_eq!(dry.row("1101000002")["desiredSha256"], sha256(&jpeg(2)));
    assert_eq!(dry.row("1101000002")["appliedSha256"], sha256(SALES_JPG));
    assert_eq!(dry.status_of("1101000001"), "in-sync");
    assert_eq!(dry.status_of("1101000003"), "in-sync");
    assert_eq!(dry.json()["summary"]["pending"], 1);
    assert_eq!(world.fake.request_count(), 3, "--dry-run calls nothing");
    let state_after = world.state_bytes();
    assert_eq!(state_before, state_after, "--dry-run writes nothing");

    let status = world.run(&["--status", "--json"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(status.status_of("1101000002"), "pending");

    let run = world.run(&["--reconcile"]);
    assert_eq!(run.code, 0, "{run:?}");
    let requests = world.fake.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[3].instance, "1101000002");
    assert_eq!(requests[3].file, jpeg(2));
}

#[test]
fn the_throttle_holds_across_processes() {
    let min = Duration::from_secs(2);
    let world = World::new(min);
    world.instance("1101000001");
    world.write("p.jpg", &jpeg(1));
    world.write_manifest(
        "apiUrl: {url}\nminInterval: 2s\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: TOKEN_ENV\n    picture: p.jpg\n",
    );
    for n in 1..=3 {
        world.write("p.jpg", &jpeg(n));
        let run = world.run(&["--reconcile", "--json"]);
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(run.status_of("1101000001"), "applied");
    }
    let requests = world.fake.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    assert!(
        requests.iter().all(|r| r.answer == "applied"),
        "{requests:#?}"
    );
    assert_spaced(&requests, min);
    assert_eq!(
        world.fake.current_picture("1101000001"),
        Some(sha256(&jpeg(3)))
    );
}

#[test]
fn transient_failures_are_retried_with_spacing_until_converged() {
    let min = Duration::from_millis(500);
    let world = World::new(min);
    world.instance("1101000001");
    world.instance("1101000002");
    world.fake.script(
        "1101000001",
        [
            Answer::RateOverlimit,
            Answer::Status(500, "Internal Server Error".into()),
            Answer::ConnectionReset,
            Answer::Status(429, "Too Many Requests".into()),
        ],
    );
    world.write("a.jpg", &jpeg(1));
    world.write("b.jpg", &jpeg(2));
    world.write_manifest(
        r#"
apiUrl: {url}
minInterval: 500ms
instances:
  - idInstance: "1101000001"
    apiTokenEnv: TOKEN_ENV
    picture: a.jpg
  - idInstance: "1101000002"
    apiTokenEnv: TOKEN_ENV
    picture: b.jpg
"#,
    );
    let run = world.run(&["--reconcile", "--json", "--timeout", "2m"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.status_of("1101000001"), "applied");
    assert_eq!(run.status_of("1101000002"), "applied");

    let calls = world.fake.requests_for("1101000001");
    let answers: Vec<&str> = calls.iter().map(|r| r.answer.as_str()).collect();
    assert_eq!(
        answers,
        ["rate-overlimit", "500", "reset", "429", "applied"]
    );
    assert_spaced(&calls, min);
    // The ladder doubles: the gap before the 5th call is at least 4 × minInterval.
    let gap = calls[4]
        .received_at
        .saturating_duration_since(calls[3].answered_at.unwrap());
    assert!(gap >= 4 * min, "{gap:?}");
    // The other instance did not wait for this one.
    assert_eq!(world.fake.requests_for("1101000002").len(), 1);
    assert!(world.state()["instances"]["1101000001"]["failure"].is_null());
}

#[test]
fn a_retry_beyond_the_timeout_is_reported_throttled() {
    let world = World::new(MIN);
    world.instance("1101000001");
    world
        .fake
        .script("1101000001", [Answer::Status(466, "quota".into())]);
    world.write("a.jpg", &jpeg(1));
    world.write_manifest(
        "apiUrl: {url}\nminInterval: 1s\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n",
    );
    let run = world.run(&["--reconcile", "--json", "--timeout", "2s"]);
    assert_eq!(run.code, 1, "{run:?}");
    let row = run.row("1101000001");
    assert_eq!(row["status"], "throttled");
    assert_eq!(row["errorKind"], "quota-exceeded");
    assert!(
        row["nextAttemptAt"].as_str().unwrap().ends_with('Z'),
        "{row}"
    );
    assert_eq!(world.fake.request_count(), 1);

    // The backoff is remembered: the next run does not call either.
    let again = world.run(&["--reconcile", "--json", "--timeout", "1s"]);
    assert_eq!(again.code, 1, "{again:?}");
    assert_eq!(world.fake.request_count(), 1);
    assert_eq!(again.status_of("1101000001"), "throttled");
}

#[test]
fn refused_bytes_are_not_sent_again_but_a_new_picture_is() {
    let world = World::new(MIN);
    world.instance("1101000001");
    world.fake.script(
        "1101000001",
        [Answer::Status(
            400,
            r#"{"message":"Unsupported media type"}"#.into(),
        )],
    );
    world.write("a.jpg", &jpeg(1));
    world.write_manifest(
        "apiUrl: {url}\nminInterval: 1s\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n",
    );
    let first = world.run(&["--reconcile", "--json"]);
    assert_eq!(first.code, 1, "{first:?}");
    assert_eq!(first.status_of("1101000001"), "failed");
    assert_eq!(first.row("1101000001")["errorKind"], "refused-bytes");
    assert_eq!(world.fake.request_count(), 1);

    let second = world.run(&["--reconcile", "--json"]);
    assert_eq!(second.code, 1, "{second:?}");
    assert_eq!(
        world.fake.request_count(),
        1,
        "the same bytes are never sent again"
    );
    assert_eq!(second.row("1101000001")["errorKind"], "refused-bytes");

    world.write("a.jpg", &jpeg(2));
    let third = world.run(&["--reconcile", "--json"]);
    assert_eq!(third.code, 0, "{third:?}");
    let requests = world.fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].file, jpeg(2));
    assert_spaced(&requests, MIN);
}

#[test]
fn a_bad_picture_fails_alone_without_a_call() {
    let world = World::new(MIN);
    for id in ["1101000001", "1101000002", "1101000003"] {
        world.instance(id);
    }
    world.write("good.jpg", SUPPORT_JPG);
    world.write("fake.jpg", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;");
    world.write("cut.jpg", &SUPPORT_JPG[..SUPPORT_JPG.len() / 2]);
    world.write_manifest(
        r#"
apiUrl: {url}
minInterval: 1s
instances:
  - idInstance: "1101000001"
    apiTokenEnv: TOKEN_ENV
    picture: good.jpg
  - idInstance: "1101000002"
    apiTokenEnv: TOKEN_ENV
    picture: fake.jpg
  - idInstance: "1101000003"
    apiTokenEnv: TOKEN_ENV
    picture: cut.jpg
"#,
    );
    let check = world.run(&["--check", "--json"]);
    assert_eq!(check.code, 1, "{check:?}");
    assert_eq!(check.row("1101000001")["status"], "valid");
    assert_eq!(
        check.row("1101000002")["errorKind"],
        "picture-unsupported-format"
    );
    assert_eq!(check.row("1101000003")["errorKind"], "picture-truncated");
    let table = world.run(&["--check"]);
    assert_eq!(table.code, 1);
    assert!(
        table
            .stdout
            .contains("fake.jpg: the picture is a GIF; only JPEG, PNG and WebP are supported"),
        "{table:?}"
    );
    assert!(!world.state_dir().exists(), "--check touches no state");

    let run = world.run(&["--reconcile", "--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.status_of("1101000001"), "applied");
    assert_eq!(run.status_of("1101000002"), "failed");
    assert_eq!(
        run.row("1101000002")["desiredSha256"],
        serde_json::Value::Null
    );
    assert_eq!(run.status_of("1101000003"), "failed");
    let requests = world.fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].instance, "1101000001");
}

#[test]
fn suspended_instances_are_left_alone() {
    let world = World::new(MIN);
    world.instance("1101000001");
    world.write_manifest(
        "apiUrl: {url}\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: TOKEN_ENV\n    picture: missing.jpg\n    suspend: true\n",
    );
    let run = world.run(&["--reconcile", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.status_of("1101000001"), "suspended");
    assert_eq!(run.json()["summary"]["suspended"], 1);
    assert_eq!(world.fake.request_count(), 0);
}

#[test]
fn the_table_is_for_people() {
    let world = World::new(MIN);
    three_instances(&world);
    let run = world.run(&["--reconcile"]);
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("INSTANCE"), "{run:?}");
    assert!(
        lines[1].starts_with("1101000001") && lines[1].contains("applied"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains(
            "3 instances: 0 in sync, 3 applied, 0 pending, 0 throttled, 0 failed, 0 suspended"
        ),
        "{run:?}"
    );
    let status = world.run(&["--status"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(status.stdout.contains("in-sync"), "{status:?}");
    assert!(
        status.stdout.contains(&sha256(SUPPORT_JPG)[..12]),
        "{status:?}"
    );
}

#[test]
fn status_reads_the_record_without_the_services_secrets() {
    let world = World::new(MIN);
    three_instances(&world);
    assert_eq!(world.run(&["--reconcile"]).code, 0);
    // An operator's shell has neither $TOKEN_ENV nor the token file.
    std::fs::remove_file(world.path("secrets/support.token")).unwrap();
    let mut cmd = world.command(&["--status", "--json"]);
    let status = to_run(cmd.env_remove("TOKEN_ENV").output().unwrap());
    assert_eq!(status.code, 0, "{status:?}");
    for id in ["1101000001", "1101000002", "1101000003"] {
        assert_eq!(status.status_of(id), "in-sync", "{status:?}");
    }
    // In sync, a run needs no token: --dry-run agrees.
    let mut cmd = world.command(&["--dry-run", "--json"]);
    let dry = to_run(cmd.env_remove("TOKEN_ENV").output().unwrap());
    assert_eq!(dry.code, 0, "{dry:?}");

    // A change needs the token: --dry-run plans a real run, which would fail; --status
    // only says a change is waiting.
    world.write("pictures/sales.jpg", &jpeg(2));
    std::thread::sleep(MIN + Duration::from_millis(200));
    let mut cmd = world.command(&["--dry-run", "--json"]);
    let dry = to_run(cmd.env_remove("TOKEN_ENV").output().unwrap());
    assert_eq!(dry.code, 1, "{dry:?}");
    assert_eq!(dry.row("1101000002")["errorKind"], "token-unavailable");
    assert_eq!(dry.status_of("1101000001"), "in-sync");
    let mut cmd = world.command(&["--status", "--json"]);
    let status = to_run(cmd.env_remove("TOKEN_ENV").output().unwrap());
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(status.status_of("1101000002"), "pending");
    assert_eq!(world.fake.request_count(), 3);
}

#[test]
fn version_1_and_2_state_directories_are_migrated_without_a_call() {
    for version in [1, 2] {
        migrated_without_a_call(version);
    }
}

fn migrated_without_a_call(version: u32) {
    let world = World::new(MIN);
    three_instances(&world);
    assert_eq!(world.run(&["--reconcile"]).code, 0);
    assert_eq!(world.fake.request_count(), 3);
    // The state directory as an older release left it: one pretty-printed document of
    // that version (1: before changes.jsonl; 2: before rollout.json), no changes file;
    // the caches are dropped too.
    let mut v1 = world.state();
    v1["version"] = version.into();
    let state_dir = world.state_dir();
    std::fs::write(
        state_dir.join("state.json"),
        serde_json::to_string_pretty(&v1).unwrap() + "\n",
    )
    .unwrap();
    let _ = std::fs::remove_file(state_dir.join("changes.jsonl"));
    std::fs::remove_file(state_dir.join("hashes.json")).unwrap();
    std::fs::remove_file(state_dir.join("prepared.json")).unwrap();
    std::fs::remove_dir_all(state_dir.join("prepared")).unwrap();

    let run = world.run(&["--reconcile", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["summary"]["inSync"], 3, "{run:?}");
    assert_eq!(world.fake.request_count(), 3, "no call after the migration");
    let migrated = world.state();
    assert_eq!(migrated["version"], 3);
    assert_eq!(migrated["instances"], v1["instances"]);
}

/// Two instances on `minInterval: 2s`, each with its own picture.
fn two_instances(world: &World) {
    let mut yaml = String::from("apiUrl: {url}\nminInterval: 2s\ninstances:\n");
    for n in 1..=2 {
        let id = format!("110100000{n}");
        world.instance(&id);
        world.write(&format!("p{n}.jpg"), &jpeg(n));
        yaml.push_str(&format!(
            "  - idInstance: \"{id}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: p{n}.jpg\n"
        ));
    }
    world.write_manifest(&yaml);
}

#[test]
fn replace_uploads_an_applied_instance_once_more_no_sooner_than_min_interval() {
    let min = Duration::from_secs(2);
    let world = World::new(min);
    two_instances(&world);
    let first = world.run(&["--reconcile"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(world.fake.request_count(), 2);

    // Both are applied; a replace sends instance 1's picture again, within its throttle.
    let run = world.run(&["--reconcile", "--json", "--replace", "1101000001"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.status_of("1101000001"), "applied", "{run:?}");
    assert_eq!(run.status_of("1101000002"), "in-sync", "{run:?}");
    let requests = world.fake.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    let again = &requests[2];
    assert_eq!(again.instance, "1101000001");
    assert_eq!(again.answer, "applied");
    assert_eq!(again.file_sha256, sha256(&jpeg(1)));
    assert_spaced(&world.fake.requests_for("1101000001"), min);

    // One replace, one upload: the next run has nothing to send.
    let after = world.run(&["--reconcile"]);
    assert_eq!(after.code, 0, "{after:?}");
    assert_eq!(world.fake.request_count(), 3);
}

#[test]
fn replace_of_an_instance_the_run_does_not_act_on_exits_1_naming_it() {
    let world = World::new(MIN);
    two_instances(&world);
    let unknown = world.run(&["--reconcile", "--replace", "1101000001", "--replace", "999"]);
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(unknown.stderr.contains("--replace 999"), "{unknown:?}");
    let outside = world.run(&[
        "--reconcile",
        "--json",
        "--instance",
        "1101000001",
        "--replace",
        "1101000002",
    ]);
    assert_eq!(outside.code, 1, "{outside:?}");
    assert_eq!(outside.json()["error"]["kind"], "replace-not-in-scope");
    assert!(
        outside.stderr.contains("--replace 1101000002"),
        "{outside:?}"
    );
    let other_mode = world.run(&["--dry-run", "--replace", "1101000001"]);
    assert_eq!(other_mode.code, 64, "{other_mode:?}");
    assert_eq!(world.fake.request_count(), 0);
}
