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
