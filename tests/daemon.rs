//! Daemon mode: the real binary running against the GREEN-API fake, reacting to files,
//! signals and manifest edits.
//!
//! Timing rules for every test here: waits for something to happen are generous (up to
//! [`GENEROUS`]); "nothing more happens" is read from the state, never waited out (see
//! `Settle::settle_and_expect`); spacing is only ever bounded from below. The loop's exact
//! timing (quiet window, resync, drain, backoff) is tested on tokio's paused clock in
//! `src/daemon/tests.rs`.

use crate::util::*;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What only this module asks of a daemon: that it has settled, and made exactly the calls
/// expected.
trait Settle {
    /// Waits until the daemon has nothing left to do, then asserts the fake has exactly
    /// `n` requests. "Nothing left" is read from the state directory, not waited out: when
    /// `--status` (which plans from the files as they are now and the records the daemon
    /// saved) has no instance pending or throttled, the daemon's own plan has no call to
    /// make either, so no later request can come without a new change.
    fn settle_and_expect(&self, world: &World, n: usize) -> Vec<Request>;

    /// Waits for `expected` calls after the first `before`, lets the files and the daemon
    /// settle, and asserts that exactly those calls were made, each applied.
    fn expect_new_calls(
        &self,
        world: &World,
        before: usize,
        expected: &[(String, Vec<u8>)],
    ) -> Vec<Request>;

    /// Waits until no instance is pending or throttled (see [`Settle::settle_and_expect`]).
    fn wait_settled(&self);

    /// Waits until a pass planned after the last `after` in the log has nothing to send and
    /// nothing waiting, then asserts the fake has exactly `n` requests. For a manifest the
    /// daemon ignores as broken, where `--status` cannot tell.
    fn settle_after_log(&self, world: &World, after: &str, n: usize);
}

impl Settle for Daemon {
    fn settle_and_expect(&self, world: &World, n: usize) -> Vec<Request> {
        self.wait_settled();
        let requests = world.fake.requests();
        assert_eq!(
            requests.len(),
            n,
            "expected exactly {n} requests: {requests:#?}\n--- daemon log\n{}",
            self.log()
        );
        requests
    }

    fn expect_new_calls(
        &self,
        world: &World,
        before: usize,
        expected: &[(String, Vec<u8>)],
    ) -> Vec<Request> {
        let total = before + expected.len();
        self.wait_for_requests(world, total);
        let requests = self.settle_and_expect(world, total);
        assert_calls(&requests[before..], expected, &self.log());
        requests
    }

    fn wait_settled(&self) {
        let deadline = Instant::now() + GENEROUS;
        loop {
            let status = self.run_beside(&["--status", "--json"]);
            let summary = &status.json()["summary"];
            if summary["pending"] == 0 && summary["throttled"] == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not settle: {status:?}\n--- daemon log\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn settle_after_log(&self, world: &World, after: &str, n: usize) {
        let idle = "0 to set now, 0 waiting";
        self.wait_until(&format!("a pass planned `{idle}` after `{after}`"), || {
            let log = self.log();
            let tail = log.rfind(after).map(|at| &log[at..]).unwrap_or_default();
            tail.contains(idle)
        });
        let requests = world.fake.requests();
        assert_eq!(
            requests.len(),
            n,
            "{requests:#?}\n--- daemon log\n{}",
            self.log()
        );
    }
}

/// The id of test instance `n`.
fn id(n: u32) -> String {
    format!("110100000{n}")
}

/// One manifest entry for instance `n` with its token from `TOKEN_ENV`.
fn entry(n: u32, picture: &str) -> String {
    format!(
        "  - idInstance: \"{}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: {picture}\n",
        id(n)
    )
}

/// A manifest for the fake with `entries`.
fn manifest_yaml(world: &World, min_interval: &str, entries: &[String]) -> String {
    format!(
        "apiUrl: {}\nminInterval: {min_interval}\ninstances:\n{}",
        world.fake.url(),
        entries.concat()
    )
}

fn three_instances(world: &World, min_interval: &str) {
    let mut entries = Vec::new();
    for n in 1..=3 {
        world.instance(&id(n));
        world.write(&format!("pictures/p{n}.jpg"), &jpeg(n));
        entries.push(entry(n, &format!("pictures/p{n}.jpg")));
    }
    world.write_manifest(&manifest_yaml(world, min_interval, &entries));
}

/// [`World::command`] for the daemon, but with another manifest.
fn daemon_command(world: &World, manifest: &Path) -> Command {
    world.command_with(manifest, &world.state_dir(), &[])
}

/// Asserts `calls` are exactly `expected` (instance, bytes), in any order, all applied.
fn assert_calls(calls: &[Request], expected: &[(String, Vec<u8>)], log: &str) {
    let mut got: Vec<(String, String)> = calls
        .iter()
        .map(|r| (r.instance.clone(), r.file_sha256.clone()))
        .collect();
    let mut want: Vec<(String, String)> = expected
        .iter()
        .map(|(id, bytes)| (id.clone(), sha256(bytes)))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "calls: {calls:#?}\n--- daemon log\n{log}");
    for call in calls {
        assert_eq!(call.answer, "applied", "{call:#?}\n--- daemon log\n{log}");
        assert!(call.token_valid, "{call:#?}");
    }
}

/// Starts the daemon on three instances and waits for its first pass (three calls).
fn started_with_three(world: &World, min_interval: &str) -> Daemon {
    three_instances(world, min_interval);
    let daemon = Daemon::start(world, &[]);
    let requests = daemon.wait_for_requests(world, 3);
    let expected: Vec<_> = (1..=3).map(|n| (id(n), jpeg(n))).collect();
    assert_calls(&requests, &expected, &daemon.log());
    daemon
}

/// The applied sha256 the state file records for instance `id`.
fn applied_in_state(world: &World, id: &str) -> serde_json::Value {
    world.state()["instances"][id]["applied"]["sha256"].clone()
}

/// Replaces `rel` the way editors save: write a temporary file beside it, then rename it over.
fn save_atomically(world: &World, rel: &str, bytes: &[u8]) {
    let target = world.path(rel);
    let tmp = target.with_file_name(format!(
        ".{}.tmp",
        target.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, &target).unwrap();
}

#[test]
fn applies_everything_then_stays_idle_then_reacts_to_an_edit() {
    let world = World::new(Duration::from_secs(1));
    three_instances(&world, "1s");
    let daemon = Daemon::start(&world, &[]);
    let requests = world.fake.wait_for_requests(3, GENEROUS);
    assert_eq!(requests.len(), 3, "{}", daemon.log());
    // Idle: everything in sync, so no further call.
    daemon.settle_and_expect(&world, 3);

    world.write("pictures/p2.jpg", &jpeg(20));
    let requests = world.fake.wait_for_requests(4, GENEROUS);
    assert_eq!(requests.len(), 4, "{}", daemon.log());
    assert_eq!(requests[3].instance, "1101000002");
    assert_eq!(requests[3].file, jpeg(20));
    daemon.settle_and_expect(&world, 4);

    assert_eq!(daemon.stop(), 0);
    let state = world.state();
    assert_eq!(
        state["instances"]["1101000002"]["applied"]["sha256"],
        sha256(&jpeg(20))
    );
}

#[test]
fn an_atomic_save_renamed_over_a_picture_makes_exactly_one_call_each_time() {
    let world = World::new(Duration::from_secs(1));
    let daemon = started_with_three(&world, "1s");

    // A save that renames the same bytes over the picture (new inode, same content): no call.
    save_atomically(&world, "pictures/p1.jpg", &jpeg(1));
    daemon.settle_and_expect(&world, 3);

    // The watch survives the rename: each later save is seen too.
    save_atomically(&world, "pictures/p2.jpg", &jpeg(20));
    daemon.expect_new_calls(&world, 3, &[(id(2), jpeg(20))]);

    save_atomically(&world, "pictures/p2.jpg", &jpeg(21));
    daemon.expect_new_calls(&world, 4, &[(id(2), jpeg(21))]);

    assert_eq!(daemon.stop(), 0);
    assert_eq!(applied_in_state(&world, &id(2)), sha256(&jpeg(21)));
}

/// Runs git with a fixed identity and no user or system configuration.
fn git(world: &World, dir: &Path, args: &[&str]) {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("HOME", world.dir.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_git_pull_makes_exactly_the_needed_calls() {
    let world = World::new(Duration::from_secs(1));
    let upstream = world.path("upstream");
    let checkout = world.path("checkout");
    let mut entries = Vec::new();
    for n in 1..=3 {
        world.instance(&id(n));
        world.write(&format!("upstream/pictures/p{n}.jpg"), &jpeg(n));
        entries.push(entry(n, &format!("pictures/p{n}.jpg")));
    }
    world.write(
        "upstream/manifest.yaml",
        manifest_yaml(&world, "1s", &entries).as_bytes(),
    );
    git(&world, &upstream, &["init", "-q"]);
    git(&world, &upstream, &["add", "-A"]);
    git(&world, &upstream, &["commit", "-q", "-m", "first"]);
    git(
        &world,
        world.dir.path(),
        &["clone", "-q", "upstream", "checkout"],
    );

    let daemon = Daemon::spawn(
        &world,
        daemon_command(&world, &checkout.join("manifest.yaml")),
        "daemon",
    );
    let requests = daemon.wait_for_requests(&world, 3);
    let expected: Vec<_> = (1..=3).map(|n| (id(n), jpeg(n))).collect();
    assert_calls(&requests, &expected, &daemon.log());

    // A new picture for instance 2, committed upstream and pulled.
    world.write("upstream/pictures/p2.jpg", &jpeg(20));
    git(
        &world,
        &upstream,
        &["commit", "-q", "-am", "new picture for 2"],
    );
    git(&world, &checkout, &["pull", "-q", "--ff-only"]);
    assert_eq!(
        std::fs::read(checkout.join("pictures/p2.jpg")).unwrap(),
        jpeg(20)
    );
    daemon.expect_new_calls(&world, 3, &[(id(2), jpeg(20))]);

    // One commit that adds a picture in a new folder and points instance 3 at it, and
    // touches nothing else that matters: one call, for instance 3.
    world.write("upstream/pictures/new/p3.jpg", &jpeg(30));
    entries[2] = entry(3, "pictures/new/p3.jpg");
    world.write(
        "upstream/manifest.yaml",
        manifest_yaml(&world, "1s", &entries).as_bytes(),
    );
    world.write("upstream/README", b"unrelated\n");
    git(&world, &upstream, &["add", "-A"]);
    git(
        &world,
        &upstream,
        &["commit", "-q", "-m", "instance 3 gets a new picture"],
    );
    git(&world, &checkout, &["pull", "-q", "--ff-only"]);
    daemon.expect_new_calls(&world, 4, &[(id(3), jpeg(30))]);

    assert_eq!(daemon.stop(), 0);
    assert_eq!(applied_in_state(&world, &id(2)), sha256(&jpeg(20)));
    assert_eq!(applied_in_state(&world, &id(3)), sha256(&jpeg(30)));
}

/// Points the symlink `<world>/current` at `target` atomically (as git-sync does).
fn swap_current(world: &World, target: &str) {
    let tmp = world.path("current.tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, world.path("current")).unwrap();
}

#[test]
fn a_folder_swapped_behind_a_symlink_makes_one_call_per_differing_picture() {
    let world = World::new(Duration::from_secs(1));
    let entries: Vec<_> = (1..=3)
        .map(|n| entry(n, &format!("pictures/p{n}.jpg")))
        .collect();
    // The same manifest in both revisions; picture 1 is the same, 2 and 3 differ.
    let yaml = manifest_yaml(&world, "1s", &entries);
    let rev_a = [jpeg(1), jpeg(2), jpeg(3)];
    let rev_b = [jpeg(1), jpeg(20), jpeg(30)];
    for (rev, pictures) in [("rev-a", &rev_a), ("rev-b", &rev_b)] {
        world.write(&format!("{rev}/manifest.yaml"), yaml.as_bytes());
        for (n, bytes) in (1..=3).zip(pictures) {
            world.write(&format!("{rev}/pictures/p{n}.jpg"), bytes);
        }
    }
    for n in 1..=3 {
        world.instance(&id(n));
    }
    std::os::unix::fs::symlink("rev-a", world.path("current")).unwrap();

    let daemon = Daemon::spawn(
        &world,
        daemon_command(&world, &world.path("current/manifest.yaml")),
        "daemon",
    );
    let requests = daemon.wait_for_requests(&world, 3);
    let expected: Vec<_> = (1..=3).map(|n| (id(n), jpeg(n))).collect();
    assert_calls(&requests, &expected, &daemon.log());

    swap_current(&world, "rev-b");
    daemon.expect_new_calls(&world, 3, &[(id(2), jpeg(20)), (id(3), jpeg(30))]);

    // And back: the daemon now watches rev-b's folders, and must notice the swap again.
    swap_current(&world, "rev-a");
    daemon.expect_new_calls(&world, 5, &[(id(2), jpeg(2)), (id(3), jpeg(3))]);

    // After two swaps, an in-place write in the folder now behind the symlink still counts.
    world.write("rev-a/pictures/p1.jpg", &jpeg(10));
    daemon.expect_new_calls(&world, 7, &[(id(1), jpeg(10))]);

    assert_eq!(daemon.stop(), 0);
    assert_eq!(applied_in_state(&world, &id(1)), sha256(&jpeg(10)));
    assert_eq!(applied_in_state(&world, &id(2)), sha256(&jpeg(2)));
    assert_eq!(applied_in_state(&world, &id(3)), sha256(&jpeg(3)));
}

/// A Kubernetes ConfigMap volume as kubelet writes it: the files are symlinks through
/// `..data`, itself a symlink to a timestamped folder that is swapped atomically.
fn configmap_revision(world: &World, rev: &str, pictures: &[Vec<u8>], yaml: &str) {
    world.write(&format!("config/{rev}/manifest.yaml"), yaml.as_bytes());
    for (n, bytes) in (1..).zip(pictures) {
        world.write(&format!("config/{rev}/p{n}.jpg"), bytes);
    }
    let tmp = world.path("config/..data_tmp");
    std::os::unix::fs::symlink(rev, &tmp).unwrap();
    std::fs::rename(&tmp, world.path("config/..data")).unwrap();
}

#[test]
fn a_kubernetes_configmap_swap_makes_one_call_per_differing_picture() {
    let world = World::new(Duration::from_secs(1));
    let entries: Vec<_> = (1..=3).map(|n| entry(n, &format!("p{n}.jpg"))).collect();
    let yaml = manifest_yaml(&world, "1s", &entries);
    for n in 1..=3 {
        world.instance(&id(n));
    }
    configmap_revision(&world, "..2026_01", &[jpeg(1), jpeg(2), jpeg(3)], &yaml);
    for name in ["manifest.yaml", "p1.jpg", "p2.jpg", "p3.jpg"] {
        std::os::unix::fs::symlink(
            format!("..data/{name}"),
            world.path(&format!("config/{name}")),
        )
        .unwrap();
    }
    let daemon = Daemon::spawn(
        &world,
        daemon_command(&world, &world.path("config/manifest.yaml")),
        "daemon",
    );
    let requests = daemon.wait_for_requests(&world, 3);
    let expected: Vec<_> = (1..=3).map(|n| (id(n), jpeg(n))).collect();
    assert_calls(&requests, &expected, &daemon.log());
    daemon.settle_and_expect(&world, 3);

    // kubelet: write the new revision, swap `..data`, remove the old revision.
    configmap_revision(&world, "..2026_02", &[jpeg(1), jpeg(20), jpeg(3)], &yaml);
    std::fs::remove_dir_all(world.path("config/..2026_01")).unwrap();
    daemon.expect_new_calls(&world, 3, &[(id(2), jpeg(20))]);

    configmap_revision(&world, "..2026_03", &[jpeg(10), jpeg(20), jpeg(3)], &yaml);
    std::fs::remove_dir_all(world.path("config/..2026_02")).unwrap();
    daemon.expect_new_calls(&world, 4, &[(id(1), jpeg(10))]);

    assert_eq!(daemon.stop(), 0);
    assert_eq!(applied_in_state(&world, &id(1)), sha256(&jpeg(10)));
    assert_eq!(applied_in_state(&world, &id(2)), sha256(&jpeg(20)));
}

#[test]
fn a_manifest_edit_adding_an_instance_calls_only_the_new_one() {
    let world = World::new(Duration::from_secs(1));
    let mut entries = Vec::new();
    for n in 1..=3 {
        world.instance(&id(n));
        world.write(&format!("pictures/p{n}.jpg"), &jpeg(n));
        entries.push(entry(n, &format!("pictures/p{n}.jpg")));
    }
    world.write_manifest(&manifest_yaml(&world, "1s", &entries[..2]));
    let daemon = Daemon::start(&world, &[]);
    let requests = daemon.wait_for_requests(&world, 2);
    assert_calls(
        &requests,
        &[(id(1), jpeg(1)), (id(2), jpeg(2))],
        &daemon.log(),
    );
    daemon.settle_and_expect(&world, 2);

    world.write_manifest(&manifest_yaml(&world, "1s", &entries));
    daemon.expect_new_calls(&world, 2, &[(id(3), jpeg(3))]);

    // Instance 1 leaves the manifest: no call, and its picture no longer matters.
    world.write_manifest(&manifest_yaml(&world, "1s", &entries[1..]));
    daemon.settle_and_expect(&world, 3);
    world.write("pictures/p1.jpg", &jpeg(10));
    daemon.settle_and_expect(&world, 3);
    // It comes back: one call, with the picture as it is now.
    world.write_manifest(&manifest_yaml(&world, "1s", &entries));
    daemon.expect_new_calls(&world, 3, &[(id(1), jpeg(10))]);

    assert_eq!(daemon.stop(), 0);
    assert_eq!(applied_in_state(&world, &id(1)), sha256(&jpeg(10)));
    assert_eq!(applied_in_state(&world, &id(3)), sha256(&jpeg(3)));
}

#[test]
fn a_manifest_edit_changing_a_picture_path_makes_one_call_only_when_the_bytes_differ() {
    let world = World::new(Duration::from_secs(1));
    world.write("pictures/copy-of-p1.jpg", &jpeg(1));
    world.write("pictures/other.jpg", &jpeg(20));
    let daemon = started_with_three(&world, "1s");

    // Instance 1 now names another file with the very same bytes: nothing to do.
    let mut entries: Vec<_> = (1..=3)
        .map(|n| entry(n, &format!("pictures/p{n}.jpg")))
        .collect();
    entries[0] = entry(1, "pictures/copy-of-p1.jpg");
    world.write_manifest(&manifest_yaml(&world, "1s", &entries));
    daemon.wait_for_log("manifest changed");
    daemon.settle_and_expect(&world, 3);

    // Instance 2 now names another existing file with other bytes: one call.
    entries[1] = entry(2, "pictures/other.jpg");
    world.write_manifest(&manifest_yaml(&world, "1s", &entries));
    daemon.expect_new_calls(&world, 3, &[(id(2), jpeg(20))]);

    // The new path is watched: writing it is seen; the old path no longer matters.
    world.write("pictures/p2.jpg", &jpeg(21));
    world.write("pictures/other.jpg", &jpeg(22));
    daemon.expect_new_calls(&world, 4, &[(id(2), jpeg(22))]);

    assert_eq!(daemon.stop(), 0);
    assert_eq!(applied_in_state(&world, &id(2)), sha256(&jpeg(22)));
}

/// Writes `bytes` to `path` in place in `chunks` pieces, `pause` apart, flushing each.
fn write_slowly(path: &Path, bytes: &[u8], chunks: usize, pause: Duration) {
    let mut file = std::fs::File::create(path).unwrap();
    for piece in bytes.chunks(bytes.len().div_ceil(chunks)) {
        std::thread::sleep(pause);
        file.write_all(piece).unwrap();
        file.flush().unwrap();
    }
}

#[test]
fn a_picture_written_slowly_is_never_uploaded_half_done() {
    let world = World::new(Duration::from_secs(1));
    let daemon = started_with_three(&world, "1s");
    let path = world.path("pictures/p2.jpg");

    // About a second, in ten flushed chunks: shorter gaps than the quiet window.
    write_slowly(&path, &jpeg(20), 10, Duration::from_millis(100));
    daemon.expect_new_calls(&world, 3, &[(id(2), jpeg(20))]);

    // Gaps longer than the quiet window, over more than its cap: passes do run while the
    // file is half-written, and must still send nothing until it is whole.
    write_slowly(&path, &jpeg(21), 6, Duration::from_millis(500));
    let requests = daemon.expect_new_calls(&world, 4, &[(id(2), jpeg(21))]);

    let complete: Vec<String> = [jpeg(1), jpeg(2), jpeg(3), jpeg(20), jpeg(21)]
        .iter()
        .map(|b| sha256(b))
        .collect();
    for request in &requests {
        assert!(
            complete.contains(&request.file_sha256),
            "a request carried a picture that is not a complete known JPEG ({} bytes): {request:#?}",
            request.file.len()
        );
    }
    assert_eq!(requests.last().unwrap().file, jpeg(21));
    assert_eq!(daemon.stop(), 0);
    assert_eq!(applied_in_state(&world, &id(2)), sha256(&jpeg(21)));
}

#[test]
fn two_quick_edits_are_throttled_and_the_last_picture_wins() {
    let world = World::new(Duration::from_secs(3));
    let daemon = started_with_three(&world, "3s");
    // Let the first call's throttle pass, so the first edit is sent at once.
    std::thread::sleep(Duration::from_millis(3500));

    world.write("pictures/p2.jpg", &jpeg(21));
    std::thread::sleep(Duration::from_secs(1));
    world.write("pictures/p2.jpg", &jpeg(22));
    let last = sha256(&jpeg(22));
    daemon.wait_until("the last picture of instance 2", || {
        (world.fake.requests().iter()).any(|r| r.instance == id(2) && r.file_sha256 == last)
    });
    // Settled: nothing more can come.
    daemon.wait_settled();

    let calls = world.fake.requests_for(&id(2));
    assert!(
        (2..=3).contains(&calls.len()),
        "{calls:#?}\n{}",
        daemon.log()
    );
    assert_eq!(calls[0].file, jpeg(2));
    assert_eq!(calls.last().unwrap().file, jpeg(22), "{calls:#?}");
    if calls.len() == 3 {
        assert_eq!(calls[1].file, jpeg(21), "{calls:#?}");
    }
    assert_spaced(&calls, Duration::from_secs(3));
    let all = world.fake.requests();
    assert!(
        all.iter().all(|r| r.answer == "applied"),
        "a call was refused (rate-overlimit?): {all:#?}\n{}",
        daemon.log()
    );
    assert_eq!(all.len(), 2 + calls.len(), "{all:#?}");
    assert_eq!(world.fake.current_picture(&id(2)), Some(last.clone()));

    assert_eq!(daemon.stop(), 0);
    assert_eq!(applied_in_state(&world, &id(2)), last);
}

#[test]
fn a_broken_manifest_edit_is_logged_and_ignored_and_its_fix_is_applied() {
    let world = World::new(Duration::from_secs(1));
    world.write("pictures/p2-fixed.jpg", &jpeg(22));
    let mut daemon = started_with_three(&world, "1s");

    // Line 9 is `    picture: : pictures/p2.jpg`, which does not parse.
    let mut entries: Vec<_> = (1..=3)
        .map(|n| entry(n, &format!("pictures/p{n}.jpg")))
        .collect();
    let good = manifest_yaml(&world, "1s", &entries);
    let broken = good.replace(
        "    picture: pictures/p2.jpg\n",
        "    picture: : pictures/p2.jpg\n",
    );
    assert_ne!(broken, good);
    assert_eq!(
        broken.lines().nth(8),
        Some("    picture: : pictures/p2.jpg")
    );
    world.write_manifest(&broken);
    let where_ = format!("{}:9:", world.manifest().display());
    let log = daemon.wait_for_log(&where_);
    let line = log.lines().find(|l| l.contains(&where_)).unwrap();
    assert!(line.contains("ERROR"), "not logged as an error: {line}");
    daemon.settle_after_log(&world, "the last good manifest stays in force", 3);
    daemon.assert_running();

    // The fix: a valid manifest that points instance 2 at another picture.
    entries[1] = entry(2, "pictures/p2-fixed.jpg");
    world.write_manifest(&manifest_yaml(&world, "1s", &entries));
    daemon.expect_new_calls(&world, 3, &[(id(2), jpeg(22))]);
    daemon.assert_running();

    assert_eq!(daemon.stop(), 0);
    assert_eq!(applied_in_state(&world, &id(2)), sha256(&jpeg(22)));
}

/// Three instances; instance 1 reads its token from `tokens/t1.token`, which is wrong.
/// Returns the daemon once the fake has answered 401 to instance 1 and the daemon has
/// recorded the failure.
fn started_with_a_bad_token(world: &World) -> Daemon {
    let mut entries = Vec::new();
    for n in 1..=3 {
        world.instance(&id(n));
        world.write(&format!("pictures/p{n}.jpg"), &jpeg(n));
        entries.push(entry(n, &format!("pictures/p{n}.jpg")));
    }
    entries[0] = format!(
        "  - idInstance: \"{}\"\n    apiTokenFile: tokens/t1.token\n    picture: pictures/p1.jpg\n",
        id(1)
    );
    world.write("tokens/t1.token", b"WrongToken0000\n");
    world.write_manifest(&manifest_yaml(world, "1s", &entries));
    let daemon = Daemon::start(world, &[]);
    let requests = daemon.wait_for_requests(world, 3);
    let first = requests.iter().find(|r| r.instance == id(1)).unwrap();
    assert!(!first.token_valid);
    assert_eq!(first.answer, "401");
    // The failure is recorded and saved (with the others' outcomes).
    daemon.wait_until("the failure recorded", || {
        world.try_state().is_some_and(|state| {
            !state["instances"][id(1)]["failure"].is_null()
                && !state["instances"][id(2)].is_null()
                && !state["instances"][id(3)].is_null()
        })
    });
    // It is retried slowly: 15 minutes, plus up to 20 % jitter.
    let status = world.run(&["--status", "--json"]);
    let row = status.row(&id(1));
    assert_eq!(row["status"], "failed", "{status:?}");
    let next = row["nextAttemptAt"].as_str().unwrap_or_default();
    let next = humantime::parse_rfc3339_weak(next)
        .unwrap_or_else(|e| panic!("nextAttemptAt `{next}`: {e}\n{status:?}"));
    let wait = next
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(
        wait > Duration::from_secs(14 * 60) && wait <= Duration::from_secs(18 * 60),
        "instance 1 is retried in {wait:?}, not in about 15 minutes: {status:?}"
    );
    daemon
}

#[test]
fn sighup_retries_instances_that_failed_on_a_bad_token() {
    let world = World::new(Duration::from_secs(1));
    // Instance 2 has the right token, but GREEN-API refuses it once (as if the instance
    // had been re-authorised on the GREEN-API side meanwhile): nothing changes locally, so
    // only the operator's SIGHUP can make the daemon try before the 15-minute retry.
    world
        .fake
        .script(&id(2), [Answer::Status(401, String::new())]);
    let mut daemon = started_with_a_bad_token(&world);
    let requests = daemon.settle_and_expect(&world, 3);
    let second = requests.iter().find(|r| r.instance == id(2)).unwrap();
    assert!(second.token_valid);
    assert_eq!(second.answer, "401");

    world.write("tokens/t1.token", format!("{TOKEN}\n").as_bytes());
    daemon.signal("HUP");
    daemon.expect_new_calls(&world, 3, &[(id(1), jpeg(1)), (id(2), jpeg(2))]);
    assert_eq!(world.fake.current_picture(&id(1)), Some(sha256(&jpeg(1))));
    assert_eq!(world.fake.current_picture(&id(2)), Some(sha256(&jpeg(2))));
    daemon.assert_running();

    assert_eq!(daemon.stop(), 0);
    let state = world.state();
    for n in 1..=2 {
        assert_eq!(
            state["instances"][id(n)]["applied"]["sha256"],
            sha256(&jpeg(n))
        );
        assert!(state["instances"][id(n)]["failure"].is_null(), "{state:#}");
    }
}

/// The contract (section 5): a bad token is "failed; retry slowly (minutes), and at once
/// when the manifest or token changes". A corrected token file is retried without an
/// operator's SIGHUP.
#[test]
fn a_corrected_token_file_is_retried_at_once() {
    let world = World::new(Duration::from_secs(1));
    let daemon = started_with_a_bad_token(&world);

    save_atomically(&world, "tokens/t1.token", format!("{TOKEN}\n").as_bytes());
    daemon.expect_new_calls(&world, 3, &[(id(1), jpeg(1))]);
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn sigterm_when_idle_exits_0_promptly_with_a_valid_state_file() {
    let world = World::new(Duration::from_secs(1));
    let mut daemon = started_with_three(&world, "1s");
    daemon.settle_and_expect(&world, 3);

    let asked = Instant::now();
    daemon.signal("TERM");
    let code = daemon.wait_exit(GENEROUS);
    let took = asked.elapsed();
    assert_eq!(code, Some(0), "{}", daemon.log());
    assert!(
        took < Duration::from_secs(10),
        "an idle daemon took {took:?} to stop"
    );
    let state = world.state();
    for n in 1..=3 {
        assert_eq!(
            state["instances"][id(n)]["applied"]["sha256"],
            sha256(&jpeg(n))
        );
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(world.state_dir().join("state.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(world.fake.request_count(), 3);
}

#[test]
fn a_second_daemon_on_the_same_state_directory_exits_1_naming_the_holder() {
    let world = World::new(Duration::from_secs(1));
    let mut first = started_with_three(&world, "1s");

    let mut second = Daemon::spawn(&world, world.command(&[]), "second");
    let code = second.wait_exit(GENEROUS);
    assert_eq!(code, Some(1), "{}", second.log());
    let log = second.log();
    assert!(
        log.contains(&format!("pid {}", first.pid())),
        "the second daemon does not name the holder (pid {}):\n{log}",
        first.pid()
    );
    assert!(!log.contains(TOKEN));

    first.assert_running();
    first.settle_and_expect(&world, 3);
    // SIGINT stops it as SIGTERM does.
    first.signal("INT");
    assert_eq!(first.wait_exit(GENEROUS), Some(0), "{}", first.log());
}

#[test]
fn sigterm_lets_a_call_in_flight_finish_and_records_it() {
    let world = World::new(Duration::from_secs(1));
    three_instances(&world, "1s");
    world.fake.set_latency(&id(2), Duration::from_secs(2));
    let mut daemon = Daemon::start(&world, &[]);
    daemon.wait_until("instance 2's call to arrive", || {
        (world.fake.requests().iter()).any(|r| r.instance == id(2))
    });
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(GENEROUS), Some(0), "{}", daemon.log());

    let calls = world.fake.requests_for(&id(2));
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert!(calls[0].answered_at.is_some(), "{calls:#?}");
    assert_eq!(calls[0].answer, "applied");
    assert_eq!(applied_in_state(&world, &id(2)), sha256(&jpeg(2)));
    // The others were quick and are recorded too.
    assert_eq!(applied_in_state(&world, &id(1)), sha256(&jpeg(1)));
    assert_eq!(applied_in_state(&world, &id(3)), sha256(&jpeg(3)));
    assert_eq!(world.fake.request_count(), 3);
}

#[test]
fn a_hung_call_delays_the_stop_only_boundedly_and_a_second_signal_stops_at_once() {
    let world = World::new(Duration::from_secs(1));
    three_instances(&world, "1s");
    world.fake.script(&id(2), [Answer::Hang, Answer::Hang]);

    // A second signal while the drain waits on the hung call: out at once, state whole.
    let mut daemon = Daemon::start(&world, &[]);
    daemon.wait_for_requests(&world, 3);
    // Instances 1 and 3 are answered at once: once their outcomes are saved, only the hung
    // call is in flight when the signals come (else the second signal may win the race
    // with an answer still being recorded, and drop it, as a second signal does).
    let answered = |state: &serde_json::Value| {
        [id(1), id(3)]
            .iter()
            .all(|id| state["instances"][id]["applied"].is_object())
    };
    daemon.wait_until("instances 1 and 3 recorded", || {
        world.try_state().as_ref().is_some_and(answered)
    });
    daemon.signal("TERM");
    // Draining: the hung call holds it.
    daemon.wait_for_log("letting calls in flight finish");
    daemon.assert_running();
    daemon.signal("TERM");
    let asked = Instant::now();
    assert_eq!(daemon.wait_exit(GENEROUS), Some(0), "{}", daemon.log());
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "a second SIGTERM took {took:?} to stop the daemon:\n{}",
        daemon.log()
    );
    let state = world.state();
    assert_eq!(
        state["instances"][id(1)]["applied"]["sha256"],
        sha256(&jpeg(1))
    );
    assert_eq!(
        state["instances"][id(3)]["applied"]["sha256"],
        sha256(&jpeg(3))
    );
    assert!(state["instances"][id(2)]["applied"].is_null(), "{state:#}");

    // The abandoned call may still be answered: its start is recorded, and its instance is
    // not called again before that answer's deadline and minInterval.
    assert!(
        state["instances"][id(2)]["callStartedAt"].is_string(),
        "{state:#}"
    );

    // One signal: the drain gives up on the hung call after its bound and still exits 0.
    world.fake.script(&id(1), [Answer::Hang]);
    world.write("pictures/p1.jpg", &jpeg(11));
    let mut daemon = Daemon::spawn(&world, world.command(&[]), "daemon2");
    daemon.wait_for_requests(&world, 4);
    assert_eq!(world.fake.requests()[3].instance, id(1));
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(GENEROUS), Some(0), "{}", daemon.log());
    let state = world.state();
    assert_eq!(
        state["instances"][id(1)]["applied"]["sha256"],
        sha256(&jpeg(1))
    );
    assert!(state["instances"][id(2)]["applied"].is_null());
    assert_eq!(world.fake.request_count(), 4);
}

#[test]
fn a_pictures_folder_replaced_within_one_quiet_window_stays_watched() {
    let world = World::new(Duration::from_secs(1));
    let daemon = started_with_three(&world, "1s");
    daemon.settle_and_expect(&world, 3);

    // The folder is replaced by a new one of the same name in one go, as `git checkout`
    // of a commit that moved it, or `rm -r pictures && cp -r staged pictures`, does.
    std::fs::remove_dir_all(world.path("pictures")).unwrap();
    for n in 1..=3 {
        let bytes = if n == 2 { jpeg(20) } else { jpeg(n) };
        world.write(&format!("pictures/p{n}.jpg"), &bytes);
    }
    daemon.expect_new_calls(&world, 3, &[(id(2), jpeg(20))]);

    // The new folder is watched: an in-place write in it is seen.
    world.write("pictures/p3.jpg", &jpeg(30));
    daemon.expect_new_calls(&world, 4, &[(id(3), jpeg(30))]);
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_pictures_folder_renamed_into_place_is_noticed() {
    let world = World::new(Duration::from_secs(1));
    let daemon = started_with_three(&world, "1s");
    daemon.settle_and_expect(&world, 3);

    // A deploy that stages a whole new folder and renames it into place.
    for n in 1..=3 {
        let bytes = if n == 2 { jpeg(20) } else { jpeg(n) };
        world.write(&format!("staged/p{n}.jpg"), &bytes);
    }
    std::fs::rename(world.path("pictures"), world.path("pictures.old")).unwrap();
    std::fs::rename(world.path("staged"), world.path("pictures")).unwrap();
    daemon.expect_new_calls(&world, 3, &[(id(2), jpeg(20))]);

    // Writes in the new folder count; writes in the old one, now elsewhere, do not.
    world.write("pictures.old/p1.jpg", &jpeg(99));
    world.write("pictures/p3.jpg", &jpeg(30));
    daemon.expect_new_calls(&world, 4, &[(id(3), jpeg(30))]);
    assert_eq!(daemon.stop(), 0);
}

/// A reload (SIGHUP, `systemctl reload`) is the operator asking "take the manifest now":
/// when it still does not parse, the log must say so again, not only at the edit.
#[test]
fn sighup_on_a_still_broken_manifest_logs_the_error_again() {
    let world = World::new(Duration::from_secs(1));
    let mut daemon = started_with_three(&world, "1s");
    let entries: Vec<_> = (1..=3)
        .map(|n| entry(n, &format!("pictures/p{n}.jpg")))
        .collect();
    let broken = manifest_yaml(&world, "1s", &entries).replace(
        "    picture: pictures/p2.jpg\n",
        "    picture: : pictures/p2.jpg\n",
    );
    world.write_manifest(&broken);
    let where_ = format!("{}:9:", world.manifest().display());
    daemon.wait_for_log(&where_);

    daemon.signal("HUP");
    daemon.wait_until("SIGHUP on a broken manifest to log the error again", || {
        daemon.log().matches(&where_).count() >= 2
    });
    daemon.assert_running();
    daemon.settle_after_log(&world, "the last good manifest stays in force", 3);
}

/// `systemctl reload` with ids in the state directory's `replace` file: those instances
/// are uploaded once more, though in sync; the file is taken (removed); a bad line is
/// logged with its number and the rest is still taken.
#[test]
fn sighup_uploads_the_instances_of_the_replace_file_once_more() {
    let world = World::new(Duration::from_secs(1));
    let mut daemon = started_with_three(&world, "1s");
    daemon.settle_and_expect(&world, 3);

    let file = world.state_dir().join("replace");
    let text = format!("# after the logo change\n{}\n\nnot-an-id\n999\n", id(2));
    std::fs::write(&file, text).unwrap();
    daemon.signal("HUP");
    let requests = daemon.expect_new_calls(&world, 3, &[(id(2), jpeg(2))]);
    assert_spaced(&world.fake.requests_for(&id(2)), Duration::from_secs(1));
    assert_eq!(requests.len(), 4);
    assert!(!file.exists(), "the replace file is taken once");
    let log = daemon.log();
    assert!(log.contains("line 4"), "{log}");
    assert!(log.contains("line 5: instance 999"), "{log}");

    // Taken once: another reload sends nothing more.
    daemon.signal("HUP");
    daemon.wait_until("the second reload", || {
        daemon.log().matches("SIGHUP: reloading").count() == 2
    });
    daemon.settle_after_log(&world, "SIGHUP", 4);
    daemon.assert_running();
    assert_eq!(daemon.stop(), 0);
}
