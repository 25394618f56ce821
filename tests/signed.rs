//! `--verify-signers` (issue 21) through the binary, against the fake, on repositories
//! signed by `git` with keys from the real `ssh-keygen` (`.ci/run` installs it and runs
//! these with `--ignored`): only a signed revision is applied, its pictures read from the
//! commit, never from the disk.

use crate::util::*;
use std::process::Command;
use std::time::Duration;

const ID: &str = "1101000001";

fn keygen(world: &World, name: &str) -> String {
    let path = world.path(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen (Debian's openssh-client)");
    assert!(out.status.success(), "{out:?}");
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

/// Commits everything but the state and the keys, signed with the key `signer` if given.
fn commit(world: &World, signer: Option<&str>) -> String {
    let key = signer.map(|name| world.path(name));
    let git = |args: &[&str]| git(world.dir.path(), args, key.as_deref());
    if !world.path(".git").exists() {
        git(&["init", "-q", "-b", "main"]);
        world.write(".gitignore", b"state/\nalice*\nmallory*\nallowed_signers\n");
    }
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "avatars"]);
    git(&["rev-parse", "HEAD"])
}

/// A world whose manifest (with `top` lines) names `a.jpg` for one instance, and whose
/// allowed signers are alice's key; the allowed signers' path.
fn alice_signs(top: &str) -> (World, std::path::PathBuf) {
    let world = World::new(Duration::from_secs(1));
    world.instance(ID);
    let alice = keygen(&world, "alice");
    let signers = world.write(
        "allowed_signers",
        format!("alice@example.com {alice}").as_bytes(),
    );
    world.write("a.jpg", &jpeg(1));
    world.write_manifest(&format!(
        "apiUrl: {{url}}\n{top}instances:\n  - idInstance: \"{ID}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n"
    ));
    (world, signers)
}

#[test]
#[ignore = "needs ssh-keygen (Debian's openssh-client); .ci/run runs it"]
fn only_a_signed_revision_is_applied_and_from_its_commit_not_the_disk() {
    let (world, signers) = alice_signs("");
    let signers = signers.to_str().unwrap();
    keygen(&world, "mallory");

    // Unsigned: refused, naming the revision and why; nothing sent.
    let unsigned = commit(&world, None);
    let run = world.run(&["--reconcile", "--verify-signers", signers]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "revision HEAD ({}) is not applied: the commit is not signed",
            &unsigned[..12]
        )),
        "{run:?}"
    );
    // Signed by a key not in the list: refused too.
    world.write("a.jpg", &jpeg(2));
    commit(&world, Some("mallory"));
    let run = world.run(&["--reconcile", "--verify-signers", signers]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("a key not in the allowed signers"),
        "{run:?}"
    );
    assert_eq!(world.fake.request_count(), 0);

    // Signed by alice: applied, with the committed picture even though the file on disk
    // was changed after the commit.
    world.write("a.jpg", &jpeg(3));
    let signed = commit(&world, Some("alice"));
    world.write("a.jpg", &jpeg(4));
    let run = world.run(&["--reconcile", "--json", "--verify-signers", signers]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.status_of(ID), "applied", "{run:?}");
    let calls = world.fake.requests();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].file,
        jpeg(3),
        "the commit's picture, not the disk's"
    );

    // --status names the verified revision and its signer (AVATAR_SYNC_VERIFY_SIGNERS).
    let mut cmd = world.command(&["--status", "--json"]);
    let status = to_run(
        cmd.env("AVATAR_SYNC_VERIFY_SIGNERS", signers)
            .output()
            .unwrap(),
    );
    assert_eq!(status.code, 0, "{status:?}");
    let revision = &status.json()["revision"];
    assert_eq!(revision["commit"], signed.as_str(), "{status:?}");
    assert!(
        revision["signer"]
            .as_str()
            .unwrap()
            .starts_with("alice@example.com (SHA256:"),
        "{status:?}"
    );
    assert_eq!(revision["dirty"], serde_json::json!([]), "{status:?}");

    // --check names them too.
    let check = world.run(&["--check", "--verify-signers", signers]);
    assert_eq!(check.code, 0, "{check:?}");
    assert!(
        check.stdout.contains(&format!(
            "manifest at git revision {signed}, signed by alice@example.com (SHA256:"
        )),
        "{check:?}"
    );

    // Alice's signature copied onto a commit of another tree (another picture): refused.
    world.write("a.jpg", &jpeg(5));
    let git = |args: &[&str]| git(world.dir.path(), args, None);
    git(&["add", "a.jpg"]);
    let tree = git(&["write-tree"]);
    let raw = git(&["cat-file", "commit", &signed]);
    let forged: Vec<String> = (raw.lines())
        .map(|l| {
            if l.starts_with("tree ") {
                format!("tree {tree}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    world.write("forged", format!("{}\n", forged.join("\n")).as_bytes());
    let path = world.path("forged");
    let forged = git(&["hash-object", "-t", "commit", "-w", path.to_str().unwrap()]);
    git(&["update-ref", "refs/heads/main", &forged]);
    let run = world.run(&["--reconcile", "--verify-signers", signers]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("the signature does not match the commit"),
        "{run:?}"
    );
    assert_eq!(
        world.fake.request_count(),
        1,
        "nothing from the forged commit"
    );
}

#[test]
#[ignore = "needs ssh-keygen (Debian's openssh-client); .ci/run runs it"]
fn a_repository_without_a_commit_or_a_manifest_outside_git_is_refused_naming_it() {
    let (world, signers) = alice_signs("");
    let signers = signers.to_str().unwrap();
    let outside = world.run(&["--reconcile", "--verify-signers", signers]);
    assert_eq!(outside.code, 1, "{outside:?}");
    assert!(
        outside.stderr.contains("is not in a git work tree"),
        "{outside:?}"
    );
    git(world.dir.path(), &["init", "-q", "-b", "main"], None);
    let empty = world.run(&["--reconcile", "--verify-signers", signers]);
    assert_eq!(empty.code, 1, "{empty:?}");
    assert!(empty.stderr.contains("has no commit yet"), "{empty:?}");
    assert_eq!(world.fake.request_count(), 0);
}

#[test]
#[ignore = "needs ssh-keygen (Debian's openssh-client); .ci/run runs it"]
fn the_daemon_keeps_the_last_signed_revision_while_a_newer_one_is_not_verified() {
    let (world, signers) = alice_signs("minInterval: 1s\n");
    let first = commit(&world, Some("alice"));
    let args = [
        "--verify-signers",
        signers.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ];
    let daemon = Daemon::start(&world, &args);
    let calls = daemon.wait_for_requests(&world, 1);
    assert_eq!(calls[0].file, jpeg(1));
    let address = world.state_dir().join("listen-address");
    daemon.wait_until("the listen address", || address.exists());
    let addr = std::fs::read_to_string(&address).unwrap();

    // An unsigned commit with another picture: noticed (HEAD moved), not applied, shown.
    world.write("a.jpg", &jpeg(2));
    let unsigned = commit(&world, None);
    let log = daemon.wait_for_log("the commit is not signed");
    assert!(
        log.contains(&format!("revision HEAD ({})", &unsigned[..12])),
        "{log}"
    );
    let short = |c: &str| c[..12].to_owned();
    let metrics_say = |verified: &str| {
        let line = format!(
            "avatar_sync_revision_verified{{commit=\"{}\"}} {verified}",
            short(&unsigned)
        );
        move |text: &str| text.contains(&line)
    };
    let mut metrics = String::new();
    daemon.wait_until("revision_verified 0 in /metrics", || {
        metrics = get(&addr, "/metrics");
        metrics_say("0")(&metrics)
    });
    assert!(
        metrics.contains(&format!(
            "avatar_sync_revision_info{{commit=\"{}\"}} 1",
            short(&first)
        )),
        "{metrics}"
    );
    let page = get(&addr, "/");
    assert!(page.contains("newer revision not applied"), "{page}");
    // --status (beside the daemon) shows the revision in force and the newer one; exit 1.
    let status = world.run(&[
        "--status",
        "--json",
        "--verify-signers",
        signers.to_str().unwrap(),
    ]);
    assert_eq!(status.code, 1, "{status:?}");
    let revision = &status.json()["revision"];
    assert_eq!(revision["commit"], first.as_str(), "{status:?}");
    let newer = revision["unverified"].as_str().unwrap();
    assert!(
        newer.contains(&short(&unsigned)) && newer.contains("not signed"),
        "{newer}"
    );
    assert!(
        page.contains(&format!(
            "at revision <code>{first}</code> signed by alice@example.com"
        )),
        "{page}"
    );

    // The next signed commit is applied: its picture, once.
    world.write("a.jpg", &jpeg(3));
    let signed = commit(&world, Some("alice"));
    let calls = daemon.wait_for_requests(&world, 2);
    assert_eq!(calls[1].file, jpeg(3), "the signed commit's picture");
    assert!(
        calls.iter().all(|c| c.file != jpeg(2)),
        "nothing from the unsigned commit"
    );
    daemon.wait_until("revision_verified 1", || {
        get(&addr, "/metrics").contains(&format!(
            "avatar_sync_revision_verified{{commit=\"{}\"}} 1",
            short(&signed)
        ))
    });
    assert_eq!(daemon.stop(), 0);
}

/// The body of `GET path` on the daemon's listener.
fn get(addr: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}
