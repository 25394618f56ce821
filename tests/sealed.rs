//! Tokens sealed with age (issue 21): a token file or variable that is an age file opens
//! with `--age-identity`, works end to end against the fake, and its clear value appears in
//! no output, log or state file at `-vv`. The identity and the sealed files are made with
//! the age crate here, and with the real `age` and `age-keygen` in the test `.ci/run` runs.

use crate::util::*;
use age::secrecy::ExposeSecret as _;
use std::io::Write as _;
use std::process::Command;
use std::time::Duration;

const ID: &str = "1101000001";

/// `token` sealed to `to`, armoured or binary, as `age -r [-a]` writes it.
fn seal(token: &str, to: &age::x25519::Recipient, armour: bool) -> Vec<u8> {
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(to as &dyn age::Recipient)).unwrap();
    let format = if armour {
        age::armor::Format::AsciiArmor
    } else {
        age::armor::Format::Binary
    };
    let mut out = Vec::new();
    let armoured = age::armor::ArmoredWriter::wrap_output(&mut out, format).unwrap();
    let mut writer = encryptor.wrap_output(armoured).unwrap();
    writer.write_all(token.as_bytes()).unwrap();
    writer.finish().unwrap().finish().unwrap();
    out
}

fn write_identity(world: &World, rel: &str, key: &age::x25519::Identity) {
    let text = format!(
        "# public key: {}\n{}\n",
        key.to_public(),
        key.to_string().expose_secret()
    );
    world.write(rel, text.as_bytes());
}

fn manifest(world: &World, token_source: &str) {
    world.write("a.jpg", &jpeg(1));
    world.write_manifest(&format!(
        "apiUrl: {{url}}\ninstances:\n  - idInstance: \"{ID}\"\n    {token_source}\n    picture: a.jpg\n"
    ));
}

#[test]
fn a_sealed_token_file_opens_with_the_identity_and_never_shows() {
    let world = World::new(Duration::from_secs(1));
    world.instance(ID);
    let key = age::x25519::Identity::generate();
    write_identity(&world, "identity", &key);
    world.write("support.token.age", &seal(TOKEN, &key.to_public(), true));
    manifest(&world, "apiTokenFile: support.token.age");
    let identity = world.path("identity");
    let identity = identity.to_str().unwrap();

    // Without the identity: --check warns (as where secrets are absent), --reconcile fails
    // that instance, naming the file; nothing is sent.
    let check = world.run(&["--check"]);
    assert_eq!(check.code, 0, "{check:?}");
    assert!(
        check
            .stdout
            .contains("support.token.age is sealed with age and no --age-identity is given"),
        "{check:?}"
    );
    let without = world.run(&["--reconcile", "--json"]);
    assert_eq!(without.code, 1, "{without:?}");
    assert_eq!(
        without.row(ID)["errorKind"],
        "token-unavailable",
        "{without:?}"
    );
    assert_eq!(world.fake.request_count(), 0);

    // With it: valid, then applied with the clear token.
    let check = world.run(&["--check", "--strict", "--age-identity", identity]);
    assert_eq!(check.code, 0, "{check:?}");
    let mut cmd = world.command(&["--reconcile", "--json", "-vv", "--age-identity", identity]);
    let run = to_run(cmd.env("RUST_LOG", "trace").output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.status_of(ID), "applied", "{run:?}");
    let calls = world.fake.requests();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0].token_valid,
        "the clear token reached GREEN-API: {calls:?}"
    );

    // The clear token is in no output and no file of the state directory.
    for text in [&run.stdout, &run.stderr, &check.stdout, &check.stderr] {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }
    for (path, bytes) in world.all_files() {
        if path.starts_with(world.state_dir()) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(TOKEN), "the token in {}", path.display());
        }
    }
}

#[test]
fn a_sealed_variable_opens_too_and_another_recipients_file_is_an_error_of_its_instance() {
    let world = World::new(Duration::from_secs(1));
    world.instance(ID);
    let key = age::x25519::Identity::generate();
    let other = age::x25519::Identity::generate();
    write_identity(&world, "mine", &key);
    write_identity(&world, "theirs", &other);
    manifest(&world, "apiTokenEnv: SEALED");
    let sealed = String::from_utf8(seal(TOKEN, &key.to_public(), true)).unwrap();

    // AVATAR_SYNC_AGE_IDENTITY names the identity, as a unit's Environment= would.
    let mut cmd = world.command(&["--reconcile", "--json"]);
    cmd.env("SEALED", &sealed)
        .env("AVATAR_SYNC_AGE_IDENTITY", world.path("theirs"));
    let run = to_run(cmd.output().unwrap());
    assert_eq!(run.code, 1, "{run:?}");
    let row = run.row(ID);
    assert_eq!(row["errorKind"], "token-invalid", "{run:?}");
    let error = row["error"].as_str().unwrap();
    assert!(
        error.contains("variable SEALED: sealed with age for another recipient"),
        "{error}"
    );
    assert!(error.contains(&other.to_public().to_string()), "{error}");
    assert_eq!(world.fake.request_count(), 0);

    let mut cmd = world.command(&["--reconcile", "--json"]);
    cmd.env("SEALED", &sealed)
        .env("AVATAR_SYNC_AGE_IDENTITY", world.path("mine"));
    let run = to_run(cmd.output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.status_of(ID), "applied");
    assert!(!run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN));
}

#[test]
fn an_identity_file_that_is_not_one_stops_the_run_naming_the_file_and_line() {
    let world = World::new(Duration::from_secs(1));
    world.instance(ID);
    manifest(&world, "apiTokenEnv: TOKEN_ENV");
    world.write("identity", b"# mine\nAGE-SECRET-KEY-1TYPO\n");
    let identity = world.path("identity");
    let run = world.run(&["--reconcile", "--age-identity", identity.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "--age-identity {}:2: not an age identity",
            identity.display()
        )),
        "{run:?}"
    );
    assert!(
        !run.stderr.contains("TYPO"),
        "the line is not shown: {run:?}"
    );
    assert_eq!(world.fake.request_count(), 0);
}

/// `program args` with `stdin`, its stdout.
fn tool(program: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (Debian's age package)"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    out.stdout
}

#[test]
#[ignore = "needs age and age-keygen (Debian's age); .ci/run runs it"]
fn files_made_by_the_real_age_open_binary_and_armoured() {
    let world = World::new(Duration::from_secs(1));
    world.instance(ID);
    let identity = world.path("identity");
    let identity = identity.to_str().unwrap();
    tool("age-keygen", &["-o", identity], b"");
    let public = String::from_utf8(tool("age-keygen", &["-y", identity], b"")).unwrap();
    let public = public.trim();
    for (file, armour) in [("binary.age", false), ("armoured.age", true)] {
        let mut args = vec!["-r", public];
        if armour {
            args.push("-a");
        }
        world.write(file, &tool("age", &args, TOKEN.as_bytes()));
        manifest(&world, &format!("apiTokenFile: {file}"));
        let run = world.run(&["--reconcile", "--replace", ID, "--age-identity", identity]);
        assert_eq!(run.code, 0, "{file}: {run:?}");
        assert!(!run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN));
    }
    let calls = world.fake.requests();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls.iter().all(|c| c.token_valid), "{calls:?}");
}
