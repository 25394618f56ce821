//! Hostile inputs and faults (issue 13), through the real binary: each test is one way the
//! audit hurt the program, and fails if that way works again.

use crate::util::*;
use std::time::Duration;

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
    world.write("b.jpg", &jpeg(2));
    manifest(&world, "1101000001", "a.jpg");
    assert_eq!(world.run(&["--reconcile"]).code, 0);
    // A new picture is prepared, but its call waits on the throttle past a zero timeout.
    manifest(&world, "1101000001", "b.jpg");
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

#[test]
fn the_prepared_sweep_deletes_only_its_own_files_in_its_own_folder() {
    let world = World::new(MIN);
    world.write("a.jpg", &jpeg(1));
    manifest(&world, "1101000001", "a.jpg");
    // Someone else's folder, reached through a `prepared` symlink in the state directory.
    let unused = format!("{}.jpg", "ab".repeat(32));
    let elsewhere = world.path("elsewhere");
    world.write(&format!("elsewhere/{unused}"), b"not ours");
    world.write("elsewhere/notes.txt", b"not ours");
    std::fs::create_dir_all(world.state_dir()).unwrap();
    std::os::unix::fs::symlink(&elsewhere, world.state_dir().join("prepared")).unwrap();
    world.run(&["--reconcile", "--timeout", "5s"]);
    assert!(
        elsewhere.join(&unused).exists(),
        "a file outside the state directory was deleted"
    );
    assert!(elsewhere.join("notes.txt").exists());

    // In a real folder: unused pictures of ours go, anything else stays.
    std::fs::remove_file(world.state_dir().join("prepared")).unwrap();
    world.write(&format!("state/prepared/{unused}"), b"ours, unused");
    world.write("state/prepared/notes.txt", b"a stray file");
    std::fs::create_dir_all(world.path("state/prepared/sub")).unwrap();
    std::thread::sleep(MIN);
    let run = world.run(&["--reconcile", "--timeout", "5s"]);
    assert_eq!(run.code, 0, "{run:?}");
    let prepared = world.state_dir().join("prepared");
    assert!(
        !prepared.join(&unused).exists(),
        "an unused prepared picture was kept"
    );
    assert!(
        prepared.join("notes.txt").exists(),
        "a stray file was deleted"
    );
    assert!(prepared.join("sub").exists());
}

#[test]
fn proxy_variables_never_see_a_loopback_or_plain_http_request() {
    let world = World::new(MIN);
    world.write("a.jpg", &jpeg(1));
    manifest(&world, "1101000001", "a.jpg");
    // A "proxy" that counts the connections it gets.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    proxy.set_nonblocking(true).unwrap();
    let run = to_run(
        world
            .command(&["--reconcile", "--timeout", "5s"])
            .env("HTTP_PROXY", &proxy_url)
            .env("http_proxy", &proxy_url)
            .env("ALL_PROXY", &proxy_url)
            .env("HTTPS_PROXY", &proxy_url)
            .output()
            .unwrap(),
    );
    assert!(proxy.accept().is_err(), "the proxy was contacted");
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(world.fake.requests().len(), 1);
    assert!(!run.stderr.contains(TOKEN), "{run:?}");
}

#[test]
fn preview_never_writes_through_a_symlink() {
    let world = World::new(MIN);
    world.write("a.jpg", &jpeg(1));
    manifest(&world, "1101000001", "a.jpg");
    let victim = world.write("victim", b"precious");
    let out = world.path("out");
    std::fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("1101000001.jpg")).unwrap();
    let run = world.run(&["--preview", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "{run:?}");
    assert_eq!(run.code, 1, "{run:?}");
    // A previous preview (a regular file) is replaced.
    std::fs::remove_file(out.join("1101000001.jpg")).unwrap();
    std::fs::write(out.join("1101000001.jpg"), b"old").unwrap();
    let run = world.run(&["--preview", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(std::fs::read(out.join("1101000001.jpg")).unwrap(), jpeg(1));
}

/// Makes a FIFO at `path` (nothing ever writes to it).
fn fifo(path: &std::path::Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

#[test]
fn fifos_and_endless_files_are_refused_not_waited_on() {
    let world = World::new(MIN);
    world.instance("1101000001");
    fifo(&world.path("a.jpg"));
    fifo(&world.path("token"));
    world.write("big.token", &[b'a'; 70_000]);
    world.write_manifest(
        "apiUrl: {url}\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenFile: token\n    picture: a.jpg\n  - idInstance: \"1101000002\"\n    apiTokenFile: big.token\n    picture: a.jpg\n",
    );
    // Run in the background, so that a hang fails the test instead of blocking it (the
    // child is killed when dropped).
    let mut check = Daemon::spawn(&world, world.command(&["--check"]), "check");
    let run = check
        .wait_run(Duration::from_secs(10))
        .expect("--check hung on a FIFO");
    assert_eq!(run.code, 1, "{run:?}");
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("a.jpg cannot be read: not a regular file"),
        "{run:?}"
    );
    assert!(all.contains("token: not a regular file"), "{run:?}");
    assert!(all.contains("larger than 65536 bytes"), "{run:?}");
    // A FIFO manifest too.
    std::fs::remove_file(world.manifest()).unwrap();
    fifo(&world.manifest());
    let mut check = Daemon::spawn(&world, world.command(&["--check"]), "check-manifest");
    let run = check
        .wait_run(Duration::from_secs(10))
        .expect("--check hung on a FIFO manifest");
    assert_eq!(run.code, 1, "{run:?}");
}

#[test]
fn a_server_echoing_the_token_in_disguise_never_gets_it_printed_or_stored() {
    let world = World::new(MIN);
    let escaped: String = TOKEN
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let (head, tail) = TOKEN.split_at(TOKEN.len() / 2);
    let echoes = [
        Answer::Status(
            200,
            format!(r#"{{"setProfilePicture":false,"reason":"bad token {escaped}"}}"#),
        ),
        Answer::Status(400, format!("no instance for {}", TOKEN.to_uppercase())),
        Answer::Status(400, format!("token {head}\n{tail} is wrong")),
        Answer::Status(400, format!("token …{}… is wrong", &TOKEN[4..16])),
        Answer::Status(
            200,
            format!(
                r#"{{"setProfilePicture":true,"urlAvatar":"https://pps.example/{escaped}.jpg"}}"#
            ),
        ),
    ];
    let mut yaml = "apiUrl: {url}\nminInterval: 1s\ninstances:\n".to_owned();
    for (n, answer) in echoes.into_iter().enumerate() {
        let id = format!("110100000{n}");
        world.instance(&id);
        world.fake.script(&id, [answer]);
        world.write(&format!("{n}.jpg"), &jpeg(n as u32));
        yaml.push_str(&format!(
            "  - idInstance: \"{id}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: {n}.jpg\n"
        ));
    }
    world.write_manifest(&yaml);
    assert!(shows_token(&escaped) && shows_token(&format!("{head}\n{tail}")));

    let run = world.run(&["--reconcile", "--json", "-vv"]);
    // The four failures are retried (and then answered normally): at least five calls.
    assert!(world.fake.request_count() >= 5, "{run:?}");
    assert!(run.stderr.contains("[redacted]"), "{run:?}");
    assert!(!shows_token(&run.stdout), "{}", run.stdout);
    assert!(!shows_token(&run.stderr), "{}", run.stderr);
    for (path, bytes) in world.all_files() {
        if path.starts_with(world.state_dir()) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!shows_token(&text), "{}: {text}", path.display());
        }
    }
    // The confirmed picture stays confirmed; only the tainted URL is dropped.
    assert_eq!(
        world.state()["instances"]["1101000004"]["applied"]["urlAvatar"],
        serde_json::Value::Null
    );
}

#[test]
fn far_future_times_and_huge_durations_neither_panic_nor_block() {
    let world = World::new(MIN);
    world.write("a.jpg", &jpeg(1));
    manifest(&world, "1101000001", "a.jpg");
    // A state whose clock ran far ahead: the last call "ended" in 9999, a backoff to 2999.
    let far = "9999-12-31T23:59:59.999Z";
    let state = serde_json::json!({
        "version": 1,
        "instances": {"1101000001": {
            "applied": {"sha256": sha256(&jpeg(2)), "at": far, "urlAvatar": null},
            "lastCallAt": far,
            "failure": {"kind": "server-error", "reason": "x", "consecutive": 1,
                        "nextAttemptAt": "2999-01-01T00:00:00Z", "sha256": sha256(&jpeg(1)),
                        "credentials": "0000000000000000"}
        }}
    });
    world.write("state/state.json", state.to_string().as_bytes());
    let status = world.run(&["--status", "--json"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(status.status_of("1101000001"), "throttled", "{status:?}");
    // Within minInterval of now, not in 9999: the call is made in this run.
    let run = world.run(&["--reconcile", "--json", "--timeout", "30s"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.status_of("1101000001"), "applied", "{run:?}");
    assert_eq!(world.fake.request_count(), 1);

    // Durations past the bound are refused where they are read, not overflowed later.
    for key in ["minInterval", "resyncInterval"] {
        world.write_manifest(&format!(
            "apiUrl: {{url}}\n{key}: 1000y\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n"
        ));
        let check = world.run(&["--check"]);
        assert_eq!(check.code, 1, "{check:?}");
        assert!(check.stdout.contains("manifest.yaml:2 "), "{check:?}");
        assert!(check.stdout.contains("366 days"), "{check:?}");
    }
    let timeout = world.run(&["--reconcile", "--timeout", "1000y"]);
    assert_eq!(timeout.code, 64, "{timeout:?}");
    assert!(timeout.stderr.contains("366 days"), "{timeout:?}");
}

#[test]
fn a_picture_rewritten_in_place_is_never_uploaded_torn() {
    use std::io::{Seek as _, SeekFrom, Write as _};
    let world = World::new(MIN);
    // Every byte after the headers differs: the colours are inverted.
    let (old, new) = (jpeg(1), jpeg(0x00ff_fffe));
    let path = world.write("a.jpg", &old);
    manifest(&world, "1101000001", "a.jpg");
    assert_eq!(world.run(&["--reconcile"]).code, 0);

    // The new picture is written in place in two writes, with a pause between them:
    // meanwhile the file is the new picture's head on the old one's tail, a valid JPEG.
    // (Past the headers, which the two pictures share.)
    let half = new.len() * 3 / 4;
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all(&new[..half]).unwrap();
    assert_ne!(std::fs::read(&path).unwrap(), old);
    let mut reconcile = Daemon::start(&world, &["--reconcile", "--json", "--timeout", "20s"]);
    std::thread::sleep(Duration::from_millis(200));
    file.seek(SeekFrom::Start(half as u64)).unwrap();
    file.write_all(&new[half..]).unwrap();
    file.set_len(new.len() as u64).unwrap();
    drop(file);
    let run = reconcile
        .wait_run(GENEROUS)
        .expect("--reconcile --timeout 20s ended");

    assert_eq!(run.code, 0, "{run:?}");
    let requests = world.fake.requests();
    assert_eq!(requests.len(), 2, "{run:?}");
    assert_eq!(requests[1].file, new, "a torn picture was uploaded");
}

#[test]
fn a_process_killed_mid_call_leaves_its_successor_the_throttle() {
    let world = World::new(MIN);
    world.write("a.jpg", &jpeg(1));
    manifest(&world, "1101000001", "a.jpg");
    // The call is answered after 3 s; the process is killed (SIGKILL) before that.
    world.fake.script(
        "1101000001",
        [Answer::Delay(
            Duration::from_secs(3),
            Box::new(Answer::Normal),
        )],
    );
    let mut first = Daemon::start(&world, &["--reconcile", "--timeout", "60s"]);
    first.wait_for_requests(&world, 1);
    first.kill();

    // Its successor knows a call may still be answered, and waits for it and minInterval.
    let run = world.run(&["--reconcile", "--json", "--timeout", "1s"]);
    assert_eq!(run.status_of("1101000001"), "throttled", "{run:?}");
    assert_eq!(world.fake.request_count(), 1, "{run:?}");
    let status = world.run(&["--status", "--json"]);
    assert_eq!(status.status_of("1101000001"), "throttled", "{status:?}");
}

#[test]
fn n7_no_call_starts_while_the_calls_journal_cannot_be_written() {
    let world = World::new(MIN);
    world.write("a.jpg", &jpeg(1));
    manifest(&world, "1101000001", "a.jpg");
    // The state directory is there, but its calls journal cannot be appended to.
    std::fs::create_dir_all(world.state_dir().join("calls.journal")).unwrap();
    let run = world.run(&["--reconcile", "--json", "--timeout", "2s"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(world.fake.request_count(), 0, "a call went out unjournaled");
    assert!(run.stderr.contains("calls journal"), "{run:?}");
    assert_eq!(run.status_of("1101000001"), "pending", "{run:?}");
    // Once it can be written, the call goes out.
    std::fs::remove_dir(world.state_dir().join("calls.journal")).unwrap();
    let run = world.run(&["--reconcile", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(world.fake.request_count(), 1);
}

#[test]
fn n1_a_secret_named_in_a_picture_path_is_shown_as_written_never_as_its_value() {
    let world = World::new(MIN);
    world.instance("1101000001");
    // The path names the token's variable (a mistake, or a hostile manifest), and the
    // picture is missing: every error about it must show the path as written.
    world.write_manifest(
        "apiUrl: {url}\nminInterval: 1s\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: TOKEN_ENV\n    picture: pictures/${TOKEN_ENV}.jpg\n",
    );
    let runs = [
        world.run(&["--check"]),
        world.run(&["--check", "--json"]),
        world.run(&["--reconcile", "--json", "-vv"]),
        world.run(&["--dry-run", "-vv"]),
        world.run(&["--status", "--json", "--log-format", "json", "-vv"]),
    ];
    for run in &runs {
        assert!(
            !run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN),
            "{run:?}"
        );
        assert!(
            !shows_token(&run.stdout) && !shows_token(&run.stderr),
            "{run:?}"
        );
    }
    assert_eq!(runs[0].code, 1, "{:?}", runs[0]);
    assert!(runs[0].stdout.contains("${TOKEN_ENV}.jpg"), "{:?}", runs[0]);
    assert!(runs[2].stdout.contains("${TOKEN_ENV}.jpg"), "{:?}", runs[2]);
    assert_eq!(world.fake.request_count(), 0);
}
