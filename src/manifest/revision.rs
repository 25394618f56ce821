//! The git revision a manifest was loaded from, as Flux and Argo CD show an "applied
//! revision": found by reading the checkout's files (no `git` needed), so that `--status`
//! and the status page can name it. Outside a checkout, or in one it cannot read, there is
//! simply no revision.

use std::path::{Path, PathBuf};

/// The commit checked out where `manifest` lives: its full hex id, and the branch when
/// `HEAD` names one (`3f2a…` or `3f2a… (main)`).
pub fn git_revision(manifest: &Path) -> Option<String> {
    let folder = std::path::absolute(manifest).ok()?.parent()?.to_owned();
    let git_dir = find_git_dir(&folder)?;
    let head = read_trimmed(&git_dir.join("HEAD"))?;
    match head.strip_prefix("ref: ") {
        None => is_object_id(&head).then_some(head),
        Some(reference) => {
            // A linked worktree keeps its refs in the common folder.
            let common = read_trimmed(&git_dir.join("commondir"))
                .map_or_else(|| git_dir.clone(), |c| git_dir.join(c));
            let id = resolve(&git_dir, &common, reference)?;
            let branch = reference.strip_prefix("refs/heads/").unwrap_or(reference);
            Some(format!("{id} ({branch})"))
        }
    }
}

/// The `.git` folder of the checkout holding `folder` (a `.git` file points at it).
fn find_git_dir(folder: &Path) -> Option<PathBuf> {
    for dir in folder.ancestors() {
        let dot_git = dir.join(".git");
        if dot_git.is_dir() {
            return Some(dot_git);
        }
        if let Some(pointer) = read_trimmed(&dot_git) {
            let target = pointer.strip_prefix("gitdir: ")?;
            return Some(dir.join(target));
        }
    }
    None
}

/// The object id `reference` points at: a loose ref file, or a line of `packed-refs`.
fn resolve(git_dir: &Path, common: &Path, reference: &str) -> Option<String> {
    for base in [git_dir, common] {
        if let Some(id) = read_trimmed(&base.join(reference)).filter(|id| is_object_id(id)) {
            return Some(id);
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|line| {
        let (id, name) = line.split_once(' ')?;
        (name == reference && is_object_id(id)).then(|| id.to_owned())
    })
}

fn read_trimmed(path: &Path) -> Option<String> {
    use std::io::Read as _;
    // These files are a line long; a cap keeps a hostile checkout from costing memory.
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(4096)
        .read_to_string(&mut text)
        .ok()?;
    Some(text.trim().to_owned())
}

/// SHA-1 (40) or SHA-256 (64) hex.
fn is_object_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a9c1e0b7d4f6a8c2e1d0b9a8f7e6d5c4b3a21";
    const OTHER: &str = "0123456789abcdef0123456789abcdef01234567";

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_branch_is_resolved_from_a_loose_ref_or_packed_refs() {
        let repo = tempfile::tempdir().unwrap();
        let manifest = repo.path().join("avatars/manifest.yaml");
        write(&manifest, "instances: []\n");
        write(&repo.path().join(".git/HEAD"), "ref: refs/heads/main\n");
        write(
            &repo.path().join(".git/packed-refs"),
            &format!("# pack-refs with: peeled\n{OTHER} refs/heads/main\n"),
        );
        assert_eq!(git_revision(&manifest), Some(format!("{OTHER} (main)")));
        write(
            &repo.path().join(".git/refs/heads/main"),
            &format!("{ID}\n"),
        );
        assert_eq!(git_revision(&manifest), Some(format!("{ID} (main)")));
    }

    #[test]
    fn a_detached_worktree_as_git_sync_makes_it_names_its_commit() {
        let root = tempfile::tempdir().unwrap();
        let worktree = root.path().join("rev-abc");
        write(&worktree.join("manifest.yaml"), "instances: []\n");
        write(
            &worktree.join(".git"),
            "gitdir: ../repo/.git/worktrees/rev-abc\n",
        );
        write(
            &root.path().join("repo/.git/worktrees/rev-abc/HEAD"),
            &format!("{ID}\n"),
        );
        assert_eq!(
            git_revision(&worktree.join("manifest.yaml")),
            Some(ID.to_owned())
        );
    }

    #[test]
    fn outside_a_checkout_or_in_a_broken_one_there_is_none() {
        let plain = tempfile::tempdir().unwrap();
        let manifest = plain.path().join("manifest.yaml");
        write(&manifest, "instances: []\n");
        // A temporary folder is not inside a checkout; `find_git_dir` may still meet one
        // above it on a developer's machine, so the broken cases use their own `.git`.
        write(&plain.path().join(".git/HEAD"), "ref: refs/heads/gone\n");
        assert_eq!(git_revision(&manifest), None);
        write(&plain.path().join(".git/HEAD"), "not a ref\n");
        assert_eq!(git_revision(&manifest), None);
    }
}
