//! The revision and its dirty files, on real repositories made with `git`.

use super::*;

/// A work tree with `avatars/manifest.yaml` naming `avatars/a.jpg` (and `b.jpg` when
/// asked), committed on `main`.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        let repo = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.write("avatars/a.jpg", b"picture a");
        repo.write(
            "avatars/manifest.yaml",
            b"instances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: T\n    picture: a.jpg\n  - idInstance: \"1101000002\"\n    apiTokenEnv: T\n    picture: ${PIC}\n",
        );
        repo
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, bytes: &[u8]) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    fn git(&self, args: &[&str]) -> String {
        crate::testing::git(self.dir.path(), args, None)
    }

    fn commit_all(&self) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", "c"]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// The revision of the manifest at `rel`, its second picture `pic`.
    fn revision_of(&self, rel: &str, pic: &str) -> Option<Revision> {
        let env = |name: &str| (name == "PIC").then(|| pic.to_owned());
        let path = self.path(rel);
        let bytes = std::fs::read(&path).unwrap();
        let manifest = super::super::from_bytes_in(&bytes, &path, None, &env).unwrap();
        git_revision(&manifest)
    }

    fn revision(&self) -> Option<Revision> {
        self.revision_of("avatars/manifest.yaml", "a.jpg")
    }
}

#[test]
fn outside_a_work_tree_there_is_no_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.yaml");
    std::fs::write(&path, "instances: []\n").unwrap();
    let manifest = super::super::load(&path, None).unwrap();
    assert_eq!(git_revision(&manifest), None);
}

#[test]
fn a_clean_checkout_names_its_commit_and_branch_and_nothing_dirty() {
    let repo = Repo::new();
    let head = repo.commit_all();
    let revision = repo.revision().unwrap();
    assert_eq!(revision.commit.as_deref(), Some(head.as_str()));
    assert_eq!(revision.branch.as_deref(), Some("main"));
    assert_eq!(revision.dirty, Vec::<String>::new());
    assert_eq!(revision.to_string(), format!("{head} (main)"));
}

#[test]
fn an_edit_a_new_file_a_staged_change_and_a_deletion_are_dirty() {
    let repo = Repo::new();
    repo.write("avatars/b.jpg", b"picture b");
    let head = repo.commit_all();
    // Edited in the same second as the commit, same size: the index's stat cannot tell,
    // the content does.
    repo.write("avatars/a.jpg", b"picture A");
    assert_eq!(repo.revision().unwrap().dirty, ["avatars/a.jpg"]);
    // Staged is not committed either.
    repo.git(&["add", "avatars/a.jpg"]);
    assert_eq!(repo.revision().unwrap().dirty, ["avatars/a.jpg"]);
    // A picture never added, and the manifest edited to name it.
    repo.write("avatars/new.jpg", b"new");
    let revision = repo
        .revision_of("avatars/manifest.yaml", "new.jpg")
        .unwrap();
    assert_eq!(revision.dirty, ["avatars/a.jpg", "avatars/new.jpg"]);
    assert_eq!(revision.commit.as_deref(), Some(head.as_str()));
    assert_eq!(
        revision.to_string(),
        format!("{head} (main), with changes not committed: avatars/a.jpg, avatars/new.jpg")
    );
    // Deleted from the disk.
    std::fs::remove_file(repo.path("avatars/b.jpg")).unwrap();
    let revision = repo.revision_of("avatars/manifest.yaml", "b.jpg").unwrap();
    assert_eq!(revision.dirty, ["avatars/a.jpg", "avatars/b.jpg"]);
    // Committed: clean again.
    repo.commit_all();
    assert_eq!(repo.revision().unwrap().dirty, Vec::<String>::new());
}

#[test]
fn a_picture_outside_the_work_tree_is_not_counted() {
    let repo = Repo::new();
    repo.commit_all();
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join("x.jpg");
    std::fs::write(&outside, b"x").unwrap();
    let revision = repo.revision_of("avatars/manifest.yaml", outside.to_str().unwrap());
    assert_eq!(revision.unwrap().dirty, Vec::<String>::new());
}

#[test]
fn a_repository_with_no_commit_has_no_revision_and_everything_is_dirty() {
    let repo = Repo::new();
    let revision = repo.revision().unwrap();
    assert_eq!(revision.commit, None);
    assert_eq!(revision.branch.as_deref(), Some("main"));
    assert_eq!(revision.dirty, ["avatars/a.jpg", "avatars/manifest.yaml"]);
    assert!(
        revision
            .to_string()
            .starts_with("none yet (branch main has no commit)")
    );
}

#[test]
fn a_detached_linked_worktree_as_git_sync_leaves_names_its_commit() {
    let repo = Repo::new();
    let first = repo.commit_all();
    repo.write("avatars/a.jpg", b"picture 2");
    let second = repo.commit_all();
    // git-sync: `git worktree add --detach` of a revision; the worktree's `.git` is a file.
    let worktree = repo.path("rev-1");
    repo.git(&["worktree", "add", "-q", "--detach", "rev-1", &first]);
    assert!(worktree.join(".git").is_file());
    let revision = repo
        .revision_of("rev-1/avatars/manifest.yaml", "a.jpg")
        .unwrap();
    assert_eq!(revision.commit.as_deref(), Some(first.as_str()));
    assert_eq!(revision.branch, None);
    assert_eq!(revision.dirty, Vec::<String>::new());
    assert_eq!(revision.to_string(), first);
    // The main work tree is at the second commit.
    let main = repo.revision().unwrap();
    assert_eq!(main.commit.as_deref(), Some(second.as_str()));
}
