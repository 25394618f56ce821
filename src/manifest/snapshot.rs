//! A manifest and its pictures as one commit has them, never as the disk has them: the
//! manifest's blob is read from the commit's tree, parsed, and each picture it names inside
//! the work tree is written from the same tree into a private folder that mirrors the work
//! tree, where the picture pass reads it as it reads any file. A picture outside the work
//! tree (an absolute path elsewhere) is no part of any revision and is read from the disk.
//! `--plan` reads its two sides this way.

use super::revision::{Failure, Revision, Trees, work_tree};
use super::signers::{AllowedSigners, Signer, commit_time};
use super::{Manifest, ManifestError, Shard, from_bytes_in};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The manifest of one commit, its pictures written beside it in a private folder.
#[derive(Debug)]
pub struct Snapshot {
    /// The revision as asked (`main`, `HEAD~1`).
    pub spec: String,
    /// The commit's full hex id.
    pub commit: String,
    /// The manifest, its paths in [`Snapshot::folder`].
    pub manifest: Manifest,
    /// Each picture of the commit the manifest names, relative to the work tree, with its
    /// blob id: two snapshots name the same source picture when these are equal.
    pub blobs: BTreeMap<PathBuf, String>,
    /// Who signed the commit, when it was verified.
    pub signer: Option<Signer>,
    folder: tempfile::TempDir,
}

/// What keeps a snapshot's files while its manifest is in use, and names its commit.
#[derive(Debug)]
pub struct Pinned {
    /// The commit's full hex id.
    pub commit: String,
    /// Who signed it, when it was verified.
    pub signer: Option<Signer>,
    _folder: tempfile::TempDir,
}

impl Pinned {
    /// The revision in force: read from the commit, never the disk, so nothing is dirty.
    pub fn revision(&self) -> Revision {
        Revision {
            commit: Some(self.commit.clone()),
            branch: None,
            dirty: Vec::new(),
            signer: self.signer.as_ref().map(ToString::to_string),
            unverified: None,
        }
    }
}

impl Snapshot {
    /// The manifest, and what keeps its pictures on disk while it is used.
    pub fn split(self) -> (Manifest, Pinned) {
        let pinned = Pinned {
            commit: self.commit,
            signer: self.signer,
            _folder: self.folder,
        };
        (self.manifest, pinned)
    }

    /// The private folder that mirrors the work tree.
    pub fn folder(&self) -> &Path {
        self.folder.path()
    }

    /// `picture` (a path in [`Snapshot::folder`]) as the work tree names it, or as it is
    /// when it is outside.
    pub fn relative(&self, picture: &Path) -> PathBuf {
        (picture.strip_prefix(self.folder.path()).ok())
            .and_then(normal)
            .unwrap_or_else(|| picture.to_owned())
    }
}

/// Why a snapshot cannot be made: a sentence naming the revision or the file.
#[derive(Debug)]
pub enum SnapshotError {
    /// The repository, the revision or a file of it cannot be read.
    Git(String),
    /// `--verify-signers`: the commit is not signed by an allowed key.
    Unverified(String),
    /// The manifest of that revision has problems (each naming `REV:path:line`).
    Manifest(ManifestError),
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Git(why) | Self::Unverified(why) => f.write_str(why),
            Self::Manifest(e) => write!(f, "{e}"),
        }
    }
}

/// The manifest at `manifest` (a path in a git work tree) and its pictures as the commit
/// `spec` names has them, the instances of `shard`; with `signers`, only when the commit
/// carries a valid signature by one of them.
pub fn snapshot(
    manifest: &Path,
    spec: &str,
    shard: Option<Shard>,
    env: &dyn Fn(&str) -> Option<String>,
    signers: Option<&AllowedSigners>,
) -> Result<Snapshot, SnapshotError> {
    let git = |e: Failure| SnapshotError::Git(format!("revision {spec}: {e}"));
    let absolute = std::path::absolute(manifest).map_err(|e| git(e.into()))?;
    let Some((repo, workdir)) = work_tree(manifest).map_err(git)? else {
        return Err(SnapshotError::Git(format!(
            "{} is not in a git work tree: revisions are read from git",
            manifest.display()
        )));
    };
    let relative = (absolute.strip_prefix(&workdir))
        .map_err(|e| git(e.into()))?
        .to_owned();
    if repo.head().is_ok_and(|head| head.is_unborn()) {
        return Err(SnapshotError::Git(format!(
            "revision {spec}: the repository of {} has no commit yet",
            manifest.display()
        )));
    }
    let commit = (repo.rev_parse_single(spec))
        .map_err(|e| {
            // CI checkouts are often shallow: the base of a pull request is then missing.
            let hint = if repo.is_shallow() {
                " (this clone is shallow: fetch the history, `git fetch --unshallow`, or \
                 `fetch-depth: 0` in CI)"
            } else {
                ""
            };
            SnapshotError::Git(format!("revision {spec} is not known here: {e}{hint}"))
        })?
        .object()
        .map_err(|e| git(e.into()))?
        .peel_to_commit()
        .map_err(|e| SnapshotError::Git(format!("revision {spec} is not a commit: {e}")))?;
    let commit_id = commit.id.to_string();
    let short = &commit_id[..12.min(commit_id.len())];
    let signer = match signers {
        None => None,
        Some(signers) => Some(verify(&commit, signers).map_err(|why| {
            SnapshotError::Unverified(format!(
                "revision {spec} ({short}) is not applied: {why} (--verify-signers {})",
                signers.file().display()
            ))
        })?),
    };
    let mut trees = Trees::new(commit.tree().map_err(|e| git(e.into()))?);
    // A file of the commit (a symlink is not one): its blob and its bytes.
    let mut read_blob = |path: &Path| -> Result<Option<(gix::ObjectId, Vec<u8>)>, Failure> {
        let Some((id, mode)) = trees.entry(path)? else {
            return Ok(None);
        };
        if !mode.is_blob() {
            return Ok(None);
        }
        let object = repo.find_object(id)?;
        Ok(Some((id, object.data.clone())))
    };
    let Some((_, bytes)) = read_blob(&relative).map_err(git)? else {
        return Err(SnapshotError::Git(format!(
            "revision {spec} ({short}) has no {}",
            relative.display()
        )));
    };
    let folder = tempfile::Builder::new()
        .prefix("avatar-sync-revision-")
        .tempdir()
        .map_err(|e| git(e.into()))?;
    let written_manifest = folder.path().join(&relative);
    write(&written_manifest, &bytes).map_err(git)?;
    let parsed = from_bytes_in(&bytes, &written_manifest, shard, env).map_err(|mut e| {
        // Named as the revision's file, not the private copy.
        for problem in &mut e.problems {
            problem.path = PathBuf::from(format!("{short}:{}", relative.display()));
        }
        SnapshotError::Manifest(e)
    })?;
    let mut blobs = BTreeMap::new();
    for instance in &parsed.instances {
        let Ok(path) = &instance.picture.path else {
            continue;
        };
        let Some(inside) = (path.strip_prefix(folder.path()).ok()).and_then(normal) else {
            continue;
        };
        if blobs.contains_key(&inside) {
            continue;
        }
        // A picture the commit lacks stays missing: an error of the instances naming it.
        if let Some((id, bytes)) = read_blob(&inside).map_err(git)? {
            write(&folder.path().join(&inside), &bytes).map_err(git)?;
            blobs.insert(inside, id.to_string());
        }
    }
    Ok(Snapshot {
        spec: spec.to_owned(),
        commit: commit_id,
        manifest: parsed,
        blobs,
        signer,
        folder,
    })
}

/// Checks `commit`'s signature against `signers`.
fn verify(commit: &gix::Commit<'_>, signers: &AllowedSigners) -> Result<Signer, String> {
    let time = commit.time().map_err(|e| e.to_string())?.seconds;
    let signature = commit.signature().map_err(|e| e.to_string())?;
    let Some((armoured, signed)) = signature else {
        return Err(super::Unverified::Unsigned.to_string());
    };
    let payload = signed.to_bstring();
    (signers.verify(&armoured.to_string(), &payload, commit_time(time))).map_err(|e| e.to_string())
}

/// `path` with its `.` and `..` resolved as text, or `None` when it climbs out of the
/// work tree (such a picture is not in the revision: it stays missing).
fn normal(path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)?;
    Ok(())
}
