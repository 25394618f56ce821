//! The git revision a manifest and its pictures were read from, as Flux and Argo CD show
//! an "applied revision", and honestly: the files read that differ from that commit (edited
//! and not committed, or never added) are named, as `git status` would. Read with gitoxide
//! (no `git` needed), from the repository that holds the manifest's folder: a work tree, a
//! linked worktree, or the `.git` file git-sync leaves. No environment variable and no
//! global or system git config is read. Outside a checkout there is no revision.

use super::Manifest;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// The commit `HEAD` names where the manifest lives, and what differs from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Revision {
    /// The commit's full hex id; `None` while the repository has no commit yet.
    pub commit: Option<String>,
    /// The branch `HEAD` names; `None` when detached (as git-sync leaves it).
    pub branch: Option<String>,
    /// The files read (the manifest, the pictures) that are not as `commit` has them,
    /// relative to the work tree, sorted. Files outside the work tree are not counted.
    pub dirty: Vec<String>,
    /// With `--verify-signers`: who signed the commit (`principals (SHA256:…)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// With `--verify-signers`, in the daemon: a newer revision at `HEAD` that is not
    /// applied, and why (`1a2b3c4d5e6f: the commit is not signed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unverified: Option<String>,
}

/// At most this many dirty files are named in a line; the rest are counted.
const NAMED: usize = 5;

impl fmt::Display for Revision {
    /// `3f2a… (main)`, then `, with changes not committed: manifest.yaml`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.commit, &self.branch) {
            (Some(commit), Some(branch)) => write!(f, "{commit} ({branch})")?,
            (Some(commit), None) => write!(f, "{commit}")?,
            (None, Some(branch)) => write!(f, "none yet (branch {branch} has no commit)")?,
            (None, None) => f.write_str("none yet")?,
        }
        if let Some(signer) = &self.signer {
            write!(f, ", signed by {signer}")?;
        }
        if let Some(newer) = &self.unverified {
            write!(f, "; newer revision {newer}, not applied")?;
        }
        if !self.dirty.is_empty() {
            f.write_str(", with changes not committed: ")?;
            let named: Vec<&str> = self.dirty.iter().take(NAMED).map(String::as_str).collect();
            f.write_str(&named.join(", "))?;
            if self.dirty.len() > NAMED {
                write!(f, " and {} more", self.dirty.len() - NAMED)?;
            }
        }
        Ok(())
    }
}

/// The revision `manifest` (and its pictures) were read from, or `None` outside a git work
/// tree (or in one that cannot be read: a revision is shown, never required).
pub fn git_revision(manifest: &Manifest) -> Option<Revision> {
    let pictures = (manifest.instances.iter()).filter_map(|i| i.picture.path.as_ref().ok());
    let files: BTreeSet<&Path> = std::iter::once(manifest.path.as_path())
        .chain(pictures.map(PathBuf::as_path))
        .collect();
    match read(&manifest.path, &files) {
        Ok(revision) => revision,
        Err(e) => {
            tracing::debug!("no git revision for {}: {e}", manifest.path.display());
            None
        }
    }
}

/// The commit `HEAD` names in the repository holding `manifest`, and the files of the
/// repository that move when it changes (`HEAD`, the branch's ref, `packed-refs`), for a
/// daemon to watch; `None` outside a work tree or before the first commit.
pub fn head_commit(manifest: &Path) -> Option<(String, Vec<PathBuf>)> {
    let (repo, _) = work_tree(manifest).ok()??;
    let head = repo.head().ok()?;
    let mut files = vec![
        repo.git_dir().join("HEAD"),
        repo.common_dir().join("packed-refs"),
    ];
    if let Some(name) = head.referent_name() {
        let name = gix::path::from_bstr(name.as_bstr()).into_owned();
        files.push(repo.common_dir().join(name));
    }
    let id = head.id()?.to_string();
    Some((id, files))
}

pub(super) type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The repository whose work tree holds `manifest`'s folder, and that work tree: found as
/// git finds it (a `.git` folder or the `.git` file of a linked worktree or git-sync), but
/// reading no environment variable and no global or system config. `None` outside a work
/// tree (a bare repository has none).
pub(super) fn work_tree(manifest: &Path) -> Result<Option<(gix::Repository, PathBuf)>, Failure> {
    let manifest = std::path::absolute(manifest)?;
    let Some(folder) = manifest.parent() else {
        return Ok(None);
    };
    let options = gix::open::Options::isolated();
    let repo = match gix::discover_opts(folder, Default::default(), options) {
        Ok(repo) => repo,
        Err(gix::discover::Error::Discover(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(workdir) = repo.workdir().map(Path::to_owned) else {
        return Ok(None);
    };
    Ok(Some((repo, workdir)))
}

fn read(manifest: &Path, files: &BTreeSet<&Path>) -> Result<Option<Revision>, Failure> {
    let Some((repo, workdir)) = work_tree(manifest)? else {
        return Ok(None);
    };
    let mut head = repo.head()?;
    let branch = head.referent_name().map(|name| name.shorten().to_string());
    let (commit, mut trees) = if head.is_unborn() {
        (None, None)
    } else {
        let commit = head.peel_to_commit()?;
        (
            Some(commit.id.to_string()),
            Some(Trees::new(commit.tree()?)),
        )
    };
    let index = repo.index_or_empty()?;
    let stat_options = repo.stat_options()?;
    let mut dirty = Vec::new();
    for file in files {
        let Ok(absolute) = std::path::absolute(file) else {
            continue;
        };
        // A picture outside the work tree is no part of any revision.
        let Ok(relative) = absolute.strip_prefix(&workdir) else {
            continue;
        };
        let in_tree = match &mut trees {
            Some(trees) => (trees.entry(relative)?)
                .filter(|(_, mode)| mode.is_blob_or_symlink())
                .map(|(id, _)| id),
            None => None,
        };
        let clean = match in_tree {
            None => false,
            Some(id) => {
                let key = gix::path::to_unix_separators_on_windows(gix::path::into_bstr(relative));
                let entry = index.entry_by_path(key.as_ref());
                unchanged(
                    &absolute,
                    id,
                    entry,
                    &index,
                    stat_options,
                    repo.object_hash(),
                )?
            }
        };
        if !clean {
            dirty.push(gix::path::into_bstr(relative).to_string());
        }
    }
    dirty.sort();
    Ok(Some(Revision {
        commit,
        branch,
        dirty,
        signer: None,
        unverified: None,
    }))
}

/// The commit's trees, each folder's read once: a fleet's pictures share a few folders,
/// and looking each path up from the root would read a folder's tree once per picture.
pub(super) struct Trees<'repo> {
    root: gix::Tree<'repo>,
    folders: HashMap<PathBuf, Option<gix::Tree<'repo>>>,
}

impl<'repo> Trees<'repo> {
    pub(super) fn new(root: gix::Tree<'repo>) -> Self {
        Self {
            root,
            folders: HashMap::new(),
        }
    }

    /// The entry at `relative` (to the work tree), if the commit has one there: its object
    /// and its mode.
    pub(super) fn entry(
        &mut self,
        relative: &Path,
    ) -> Result<Option<(gix::ObjectId, gix::object::tree::EntryMode)>, Failure> {
        let (Some(folder), Some(name)) = (relative.parent(), relative.file_name()) else {
            return Ok(None);
        };
        let tree = if folder.as_os_str().is_empty() {
            Some(&self.root)
        } else {
            if !self.folders.contains_key(folder) {
                let subtree = match self.root.lookup_entry_by_path(folder)? {
                    Some(entry) if entry.mode().is_tree() => Some(entry.object()?.into_tree()),
                    _ => None,
                };
                self.folders.insert(folder.to_owned(), subtree);
            }
            self.folders.get(folder).and_then(Option::as_ref)
        };
        let name = gix::path::into_bstr(Path::new(name));
        let entry = tree.and_then(|tree| tree.find_entry(name.clone().into_owned()));
        Ok(entry.map(|entry| (entry.object_id(), entry.mode())))
    }
}

/// Whether the file at `path` holds the blob `id`: known at once when the index says so
/// and the file's stat is the index's (as `git status` decides, racily-clean files aside),
/// else by hashing the file as a blob.
fn unchanged(
    path: &Path,
    id: gix::ObjectId,
    entry: Option<&gix::index::Entry>,
    index: &gix::index::State,
    options: gix::index::entry::stat::Options,
    hash: gix::hash::Kind,
) -> Result<bool, Failure> {
    let Ok(metadata) = gix::index::fs::Metadata::from_path_no_follow(path) else {
        // Deleted (or unreadable): not as the commit has it.
        return Ok(false);
    };
    if let Some(entry) = entry
        && entry.id == id
    {
        let stat = gix::index::entry::Stat::from_fs(&metadata)?;
        if stat.matches(&entry.stat, options) && !stat.is_racy(index.timestamp(), options) {
            return Ok(true);
        }
    }
    let bytes = std::fs::read(path)?;
    let on_disk = gix::objs::compute_hash(hash, gix::object::Kind::Blob, &bytes)?;
    Ok(on_disk == id)
}

#[cfg(test)]
#[path = "revision_tests.rs"]
mod tests;
