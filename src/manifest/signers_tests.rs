//! Allowed signers and commit signatures, on real repositories signed by `git` with keys
//! made by `ssh-keygen` (`gpg.format=ssh`), as an operator sets it up.

use super::*;
use std::process::Command;

struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        let repo = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "-q", "-b", "main"], None);
        repo
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A new ed25519 key `name` (no passphrase); its public line.
    fn key(&self, name: &str) -> String {
        let path = self.path(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&path)
            .output()
            .expect("ssh-keygen");
        assert!(out.status.success(), "{out:?}");
        std::fs::read_to_string(path.with_extension("pub")).unwrap()
    }

    /// `git`, signing commits with the key `signer` when given.
    fn git(&self, args: &[&str], signer: Option<&str>) -> String {
        let key = signer.map(|name| self.path(name));
        crate::testing::git(self.dir.path(), args, key.as_deref())
    }

    fn commit(&self, file: &str, text: &str, signer: Option<&str>) -> String {
        std::fs::write(self.path(file), text).unwrap();
        self.git(&["add", file], None);
        self.git(&["commit", "-q", "-m", file], signer);
        self.git(&["rev-parse", "HEAD"], None)
    }

    /// Checks commit `id` against `signers`, as `--verify-signers` does.
    fn verify(&self, id: &str, signers: &AllowedSigners) -> Result<Signer, Unverified> {
        let repo = gix::open(self.dir.path()).unwrap();
        let id = gix::ObjectId::from_hex(id.as_bytes()).unwrap();
        let commit = repo.find_commit(id).unwrap();
        let time = commit_time(commit.time().unwrap().seconds);
        let Some((signature, signed)) = commit.signature().unwrap() else {
            return Err(Unverified::Unsigned);
        };
        let payload = signed.to_bstring();
        signers.verify(&signature.to_string(), &payload, time)
    }
}

fn signers(text: &str) -> AllowedSigners {
    AllowedSigners::parse(text, Path::new("/etc/avatar-sync/allowed_signers")).unwrap()
}

#[test]
#[ignore = "needs ssh-keygen (Debian's openssh-client); .ci/run runs it"]
fn a_commit_signed_by_an_allowed_key_is_verified_and_names_its_signer() {
    let repo = Repo::new();
    let alice = repo.key("alice");
    let id = repo.commit("manifest.yaml", "instances: []\n", Some("alice"));
    // Comments, a principal pattern and namespaces="git" as git's documentation writes.
    let allowed = signers(&format!(
        "# who may sign\n*@example.com namespaces=\"git\" {alice}"
    ));
    let signer = repo.verify(&id, &allowed).unwrap();
    assert_eq!(signer.principals, "*@example.com");
    assert!(signer.fingerprint.starts_with("SHA256:"), "{signer}");
}

#[test]
#[ignore = "needs ssh-keygen (Debian's openssh-client); .ci/run runs it"]
fn unsigned_another_key_and_a_signature_moved_to_another_commit_are_refused() {
    let repo = Repo::new();
    let alice = repo.key("alice");
    repo.key("mallory");
    let allowed = signers(&format!("alice@example.com {alice}"));

    let unsigned = repo.commit("a", "1\n", None);
    assert_eq!(repo.verify(&unsigned, &allowed), Err(Unverified::Unsigned));

    let by_mallory = repo.commit("b", "2\n", Some("mallory"));
    let refused = repo.verify(&by_mallory, &allowed).unwrap_err();
    assert!(
        matches!(refused, Unverified::UnknownKey(ref f) if f.starts_with("SHA256:")),
        "{refused}"
    );

    // Alice's signature copied onto a commit of another tree: the payload differs.
    let signed = repo.commit("c", "3\n", Some("alice"));
    let raw = repo.git(&["cat-file", "commit", &signed], None);
    let other_tree = repo.git(&["rev-parse", &format!("{unsigned}^{{tree}}")], None);
    let forged: String = raw
        .lines()
        .map(|line| match line.strip_prefix("tree ") {
            Some(_) => format!("tree {other_tree}"),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = repo.path("forged");
    std::fs::write(&path, format!("{forged}\n")).unwrap();
    let forged_id = repo.git(
        &["hash-object", "-t", "commit", "-w", path.to_str().unwrap()],
        None,
    );
    let refused = repo.verify(&forged_id, &allowed).unwrap_err();
    assert!(matches!(refused, Unverified::BadSignature(_)), "{refused}");
    assert_eq!(
        repo.verify(&signed, &allowed).unwrap().principals,
        "alice@example.com"
    );
}

#[test]
#[ignore = "needs ssh-keygen (Debian's openssh-client); .ci/run runs it"]
fn a_key_for_other_namespaces_or_outside_its_validity_is_not_allowed() {
    let repo = Repo::new();
    let alice = repo.key("alice");
    let id = repo.commit("a", "1\n", Some("alice"));
    let cases = [
        (
            format!("alice namespaces=\"file\" {alice}"),
            "for namespaces file only, not git",
        ),
        (
            format!("alice valid-before=\"20200101Z\" {alice}"),
            "after the key expired (line 1: valid-before)",
        ),
        (
            format!("alice valid-after=\"29990101Z\" {alice}"),
            "before the key is valid (line 1: valid-after)",
        ),
    ];
    for (line, why) in cases {
        match repo.verify(&id, &signers(&line)) {
            Err(Unverified::NotAllowed(text)) => assert!(text.contains(why), "{text}"),
            other => panic!("{line}: {other:?}"),
        }
    }
    // Valid within its dates.
    let within = format!("alice valid-after=\"20200101Z\",valid-before=\"299001011200Z\" {alice}");
    assert!(repo.verify(&id, &signers(&within)).is_ok());
}

#[test]
#[ignore = "needs ssh-keygen (Debian's openssh-client); .ci/run runs it"]
fn a_file_that_is_not_one_is_refused_naming_the_line() {
    let repo = Repo::new();
    let alice = repo.key("alice");
    let file = Path::new("/etc/avatar-sync/allowed_signers");
    let cases = [
        (
            format!("alice cert-authority {alice}"),
            ":1: cert-authority: certificates are not supported",
        ),
        (
            format!("# ok\nalice valid-before=\"20300101\" {alice}"),
            ":2: `20300101`: write the time in UTC with a Z",
        ),
        (
            format!("alice frobnicate {alice}"),
            ":1: unknown option `frobnicate`",
        ),
        (
            "alice ssh-ed25519 AAAAnotakey".to_owned(),
            ":1: not an SSH public key",
        ),
        ("# nothing\n".to_owned(), "no key in it"),
    ];
    for (text, wanted) in cases {
        let why = AllowedSigners::parse(&text, file).unwrap_err();
        assert!(why.contains(wanted), "{text}: {why}");
        assert!(
            why.starts_with("--verify-signers /etc/avatar-sync/allowed_signers"),
            "{why}"
        );
    }
}

/// `gpg` with its home in `home` (git's signing finds it there through `HOME`).
fn gpg(home: &Path, args: &[&str]) -> String {
    let out = Command::new("gpg")
        .env("GNUPGHOME", home.join(".gnupg"))
        .args([
            "--batch",
            "--quiet",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ])
        .args(args)
        .output()
        .expect("gpg (Debian's gnupg), test-only");
    assert!(out.status.success(), "gpg {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A new ed25519 signing key for `email`, valid `expire` (`never`, `1d`); its fingerprint.
fn gpg_key(repo: &Repo, email: &str, expire: &str) -> String {
    let home = repo.dir.path();
    std::fs::create_dir_all(home.join(".gnupg")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(home.join(".gnupg"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let uid = format!("T <{email}>");
    gpg(home, &["--quick-gen-key", &uid, "ed25519", "sign", expire]);
    let listed = gpg(home, &["--with-colons", "--list-keys", email]);
    let fpr = listed.lines().find(|l| l.starts_with("fpr:")).unwrap();
    fpr.trim_end_matches(':')
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned()
}

/// A commit signed with OpenPGP key `fpr`, at `committed` (git's date format) if given.
fn pgp_commit(repo: &Repo, file: &str, fpr: &str, committed: Option<&str>) -> String {
    std::fs::write(repo.path(file), file).unwrap();
    repo.git(&["add", file], None);
    let mut cmd = Command::new("git");
    cmd.current_dir(repo.dir.path())
        .env("HOME", repo.dir.path())
        .env("GNUPGHOME", repo.path(".gnupg"))
        .env("GIT_CONFIG_NOSYSTEM", "1");
    if let Some(date) = committed {
        cmd.env("GIT_COMMITTER_DATE", date);
    }
    let key = format!("user.signingkey={fpr}");
    let out = cmd
        .args(["-c", "user.name=T", "-c", "user.email=t@example.com"])
        .args(["-c", "gpg.format=openpgp", "-c", &key])
        .args(["commit", "-q", "-S", "-m", file])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    repo.git(&["rev-parse", "HEAD"], None)
}

fn keyring(repo: &Repo, fpr: &str) -> AllowedSigners {
    let armoured = gpg(repo.dir.path(), &["--armor", "--export", fpr]);
    AllowedSigners::parse(&armoured, Path::new("/etc/avatar-sync/signers.asc")).unwrap()
}

#[test]
#[ignore = "needs gpg (Debian's gnupg, test-only); .ci/run runs it"]
fn openpgp_signed_commits_verify_against_a_keyring_and_a_revoked_or_expired_key_does_not() {
    let repo = Repo::new();
    let alice = gpg_key(&repo, "alice@example.com", "never");
    let bob = gpg_key(&repo, "bob@example.com", "never");
    let signed = pgp_commit(&repo, "a", &alice, None);
    let allowed = keyring(&repo, &alice);
    let signer = repo.verify(&signed, &allowed).unwrap();
    assert_eq!(signer.principals, "T <alice@example.com>");
    assert_eq!(signer.fingerprint, alice);
    // The same signature over other bytes (another commit's payload) does not verify.
    let opened = gix::open(repo.dir.path()).unwrap();
    let commit = opened
        .find_commit(gix::ObjectId::from_hex(signed.as_bytes()).unwrap())
        .unwrap();
    let (armoured, _) = commit.signature().unwrap().unwrap();
    let moved = allowed.verify(&armoured.to_string(), b"tree 0000\n", SystemTime::now());
    assert!(
        matches!(moved, Err(Unverified::BadSignature(_))),
        "{moved:?}"
    );

    // Bob is not in the keyring; an SSH keyring does not take an OpenPGP signature.
    let by_bob = pgp_commit(&repo, "b", &bob, None);
    assert!(matches!(
        repo.verify(&by_bob, &allowed),
        Err(Unverified::UnknownKey(_))
    ));
    let ssh = repo.key("carol");
    let ssh_only = signers(&format!("carol {ssh}"));
    assert_eq!(
        repo.verify(&signed, &ssh_only),
        Err(Unverified::OtherFormat("OpenPGP"))
    );

    // Alice's key, revoked (gpg left its revocation certificate at generation).
    let home = repo.dir.path();
    let certificate = home.join(format!(".gnupg/openpgp-revocs.d/{alice}.rev"));
    let text = std::fs::read_to_string(&certificate)
        .unwrap()
        .replace(":-----BEGIN", "-----BEGIN");
    std::fs::write(&certificate, text).unwrap();
    gpg(home, &["--import", certificate.to_str().unwrap()]);
    match repo.verify(&signed, &keyring(&repo, &alice)) {
        Err(Unverified::NotAllowed(why)) => assert!(why.contains("a revoked key"), "{why}"),
        other => panic!("{other:?}"),
    }

    // A key that expires in a day, and a commit dated three days on.
    let dave = gpg_key(&repo, "dave@example.com", "1d");
    let later =
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3 * 86_400));
    let late = pgp_commit(&repo, "d", &dave, Some(&later.to_string()));
    match repo.verify(&late, &keyring(&repo, &dave)) {
        Err(Unverified::NotAllowed(why)) => assert!(why.contains("after the key expired"), "{why}"),
        other => panic!("{other:?}"),
    }
    let timely = pgp_commit(&repo, "e", &dave, None);
    assert!(repo.verify(&timely, &keyring(&repo, &dave)).is_ok());
}
