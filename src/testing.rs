//! Test-only generators: a seeded mutator that turns a valid document into the damaged,
//! truncated and spliced inputs a fuzzer would try. Used by the parsers' fuzz tests
//! (`manifest/fuzz.rs`, `state/fuzz.rs`) on stable Rust, for a bounded number of inputs:
//! `AVATAR_SYNC_FUZZ_CASES` runs more by hand.

/// How many inputs each fuzz test tries: `AVATAR_SYNC_FUZZ_CASES`, else `default`.
pub(crate) fn cases(default: usize) -> usize {
    std::env::var("AVATAR_SYNC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Turns seed documents into damaged variants, reproducibly from its seed.
pub(crate) struct Mutator {
    rng: fastrand::Rng,
    /// Pieces worth splicing in: the format's own tokens and known troublemakers.
    dictionary: &'static [&'static str],
}

impl Mutator {
    pub(crate) fn new(seed: u64, dictionary: &'static [&'static str]) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            dictionary,
        }
    }

    /// A variant of `seed`: one to eight edits (flip, insert, delete, duplicate, truncate,
    /// splice a dictionary word).
    pub(crate) fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut bytes = seed.to_vec();
        for _ in 0..self.rng.usize(1..=8) {
            let at = self.rng.usize(..=bytes.len());
            match self.rng.u8(..6) {
                0 if at < bytes.len() => bytes[at] ^= 1 << self.rng.u8(..8),
                1 => bytes.insert(at, self.rng.u8(..)),
                2 if at < bytes.len() => {
                    let end = (at + self.rng.usize(1..16)).min(bytes.len());
                    bytes.drain(at..end);
                }
                3 if at < bytes.len() => {
                    let end = (at + self.rng.usize(1..64)).min(bytes.len());
                    let piece = bytes[at..end].to_vec();
                    let to = self.rng.usize(..=bytes.len());
                    bytes.splice(to..to, piece);
                }
                4 => bytes.truncate(at),
                _ => {
                    let word = self.dictionary[self.rng.usize(..self.dictionary.len())];
                    bytes.splice(at..at, word.bytes());
                }
            }
        }
        bytes
    }
}

/// `git args` in `dir`, as on a fresh machine (no user or system config), signing commits
/// with the SSH key `signing_key` (its `.pub`) when given; its output, trimmed.
pub(crate) fn git(
    dir: &std::path::Path,
    args: &[&str],
    signing_key: Option<&std::path::Path>,
) -> String {
    let mut cmd = std::process::Command::new("git");
    cmd.current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args(["-c", "user.name=T", "-c", "user.email=t@example.com"]);
    match signing_key {
        Some(key) => {
            let key = format!("user.signingkey={}", key.display());
            cmd.args([
                "-c",
                "gpg.format=ssh",
                "-c",
                &key,
                "-c",
                "commit.gpgsign=true",
            ]);
        }
        None => {
            cmd.args(["-c", "commit.gpgsign=false"]);
        }
    }
    let out = cmd.args(args).output().expect("git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
