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

#[test]
#[ignore = "needs ssh-keygen (Debian's openssh-client); .ci/run runs it"]
fn only_a_signed_revision_is_applied_and_from_its_commit_not_the_disk() {
    let world = World::new(Duration::from_secs(1));
    world.instance(ID);
    let alice = keygen(&world, "alice");
    keygen(&world, "mallory");
    world.write(
        "allowed_signers",
        format!("alice@example.com {alice}").as_bytes(),
    );
    let signers = world.path("allowed_signers");
    let signers = signers.to_str().unwrap();
    world.write("a.jpg", &jpeg(1));
    world.write_manifest(&format!(
        "apiUrl: {{url}}\ninstances:\n  - idInstance: \"{ID}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n"
    ));

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
    // The daemon does not take it yet: said, not ignored.
    let daemon = world.run(&["--verify-signers", signers]);
    assert_eq!(daemon.code, 64, "{daemon:?}");
    assert!(
        daemon.stderr.contains("not yet supported by the daemon"),
        "{daemon:?}"
    );
}
