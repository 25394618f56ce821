//! The picture pass: which distinct pictures (file and options) a manifest's instances
//! show, and the digest of the exact JPEG to upload for each, each file looked at once
//! through the hash cache and each (file, options) prepared once through the
//! prepared-picture cache (both in [`Caches`]), on every core.
//!
//! A picture that cannot be had (missing, undecodable, still being written) is a
//! [`LocalProblem`] of the instances that show it, never of the pass.

use super::caches::Caches;
use super::hashes::Hashes;
use super::prepared::Prepared;
use super::{Digest, PictureError, SETTLE};
use crate::manifest::{Manifest, Processing};
use crate::outcome::{LocalKind, LocalProblem};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Which distinct picture (file and options) each instance of one manifest shows. Found
/// once per manifest, so that a pass looks at each distinct picture once and reaches an
/// instance's only through an index: at fleet size, thousands of instances share one.
#[derive(Debug, Default)]
pub(crate) struct Uses {
    /// For each distinct picture file, an instance that names it.
    files: Vec<usize>,
    /// Each distinct (file, options): the file's place in `files`, and the options.
    pictures: Vec<(usize, Processing)>,
    /// Per instance, its place in `pictures` (none when it is suspended or its path is an
    /// error).
    of_instance: Vec<Option<usize>>,
}

impl Uses {
    /// The pictures `manifest`'s instances show.
    pub(crate) fn of(manifest: &Manifest) -> Self {
        let mut uses = Self::default();
        let mut file_at: HashMap<&std::ffi::OsStr, usize> = HashMap::new();
        let mut picture_at: HashMap<(usize, Processing), usize> = HashMap::new();
        for (index, instance) in manifest.instances.iter().enumerate() {
            let path = match &instance.picture.path {
                Ok(path) if !instance.suspend => path,
                _ => {
                    uses.of_instance.push(None);
                    continue;
                }
            };
            let file = *file_at.entry(path.as_os_str()).or_insert_with(|| {
                uses.files.push(index);
                uses.files.len() - 1
            });
            let picture = *(picture_at.entry((file, instance.processing))).or_insert_with(|| {
                uses.pictures.push((file, instance.processing));
                uses.pictures.len() - 1
            });
            uses.of_instance.push(Some(picture));
        }
        uses
    }

    /// Which distinct picture instance `index` shows (its place in what [`digests`]
    /// returns), if any.
    pub(crate) fn picture_of(&self, index: usize) -> Option<usize> {
        self.of_instance.get(index).copied().flatten()
    }

    /// The distinct picture files of `manifest` (the one these uses were found in).
    pub(crate) fn files<'m>(&self, manifest: &'m Manifest) -> impl Iterator<Item = &'m Path> {
        self.files
            .iter()
            .filter_map(|&index| file_of(manifest, index))
    }

    /// Each distinct (file, options) of `manifest`, in order.
    fn pictures<'m>(
        &self,
        manifest: &'m Manifest,
    ) -> impl Iterator<Item = (Option<&'m Path>, Processing)> {
        (self.pictures.iter())
            .map(|&(place, options)| (file_of(manifest, self.files[place]), options))
    }
}

/// The picture file of instance `index` of `manifest`, if its path could be had.
fn file_of(manifest: &Manifest, index: usize) -> Option<&Path> {
    manifest.instances.get(index)?.picture.path.as_deref().ok()
}

/// The digest of the JPEG to upload for each distinct picture of `uses` (found in
/// `manifest`), in their order: each file looked at once, each (file, options) prepared
/// once.
pub(crate) fn digests(
    manifest: &Manifest,
    uses: &Uses,
    caches: &mut Caches,
) -> Vec<Result<Digest, LocalProblem>> {
    debug_assert_eq!(uses.of_instance.len(), manifest.instances.len());
    let sources = caches.hashes.digest_all(uses.files(manifest));
    prepare_ahead(manifest, uses, &sources, &mut caches.prepared);
    let mut pictures = Pictures::new(&sources, &mut caches.prepared);
    (uses.pictures(manifest))
        .map(|(file, options)| match file {
            Some(path) => pictures.upload_digest(path, &options),
            None => Err(not_read(Path::new(""))),
        })
        .collect()
}

/// Prepares every distinct (picture, options) of `manifest` that is not prepared yet, on
/// every core, before the instances are looked at one by one.
fn prepare_ahead(manifest: &Manifest, uses: &Uses, sources: &Sources, prepared: &mut Prepared) {
    let jobs = uses.pictures(manifest).filter_map(|(file, options)| {
        let path = file?;
        let source = sources.get(path)?.as_ref().ok()?;
        Some((path, *source, options))
    });
    prepared.prepare_all(jobs);
}

/// How many times a picture still being written is waited for ([`SETTLE`] each) by a run
/// with no state directory, before it is reported as changing.
const SETTLE_TRIES: u32 = 20;

/// The source digests of every picture of `manifest`, hashed and prepared in memory with
/// no state directory (`--check`, `--preview`); `keep` keeps the prepared bytes. As for an
/// upload, a picture is taken only once it has been still for [`SETTLE`]: one being written
/// is waited for (at most [`SETTLE_TRIES`] times), never shown torn.
pub(crate) fn prepare_in_memory(manifest: &Manifest, keep: bool) -> (Sources, Prepared) {
    let uses = Uses::of(manifest);
    let mut hashes = Hashes::default();
    hashes.require_settled(SETTLE);
    let mut sources = hashes.digest_all(uses.files(manifest));
    for _ in 0..SETTLE_TRIES {
        let changing: Vec<PathBuf> = (sources.iter())
            .filter(|(_, digest)| matches!(digest, Err(PictureError::Changing { .. })))
            .map(|(path, _)| path.clone())
            .collect();
        if changing.is_empty() {
            break;
        }
        std::thread::sleep(SETTLE);
        sources.extend(hashes.digest_all(changing.iter().map(PathBuf::as_path)));
    }
    let mut prepared = Prepared::in_memory(keep);
    prepare_ahead(manifest, &uses, &sources, &mut prepared);
    (sources, prepared)
}

/// The source digest of each picture file of a pass (or why it could not be had).
pub(crate) type Sources = HashMap<PathBuf, Result<Digest, PictureError>>;

/// The pictures of one pass: source digests, and what each (picture, options) prepares to.
pub(crate) struct Pictures<'a> {
    /// The source digest of each picture file of the pass.
    pub sources: &'a Sources,
    /// Where prepared pictures come from.
    pub prepared: &'a mut Prepared,
    /// Each distinct (picture, options) is prepared once per pass (by the path's bytes: a
    /// lookup neither allocates nor walks the path's components).
    pub memo: HashMap<Processing, HashMap<OsString, Result<Digest, LocalProblem>>>,
}

impl<'a> Pictures<'a> {
    /// The pictures of a pass whose sources are `sources`, prepared through `prepared`.
    pub(crate) fn new(sources: &'a Sources, prepared: &'a mut Prepared) -> Self {
        Self {
            sources,
            prepared,
            memo: HashMap::new(),
        }
    }

    /// The digest of the JPEG to upload for `path` under `options`.
    pub fn upload_digest(
        &mut self,
        path: &Path,
        options: &Processing,
    ) -> Result<Digest, LocalProblem> {
        if let Some(known) = (self.memo.get(options)).and_then(|m| m.get(path.as_os_str())) {
            return known.clone();
        }
        let result = match self.sources.get(path) {
            Some(Ok(source)) => self.prepared.digest(path, *source, options),
            Some(Err(e)) => Err(LocalProblem::new(e.kind(), e.to_string())),
            None => Err(not_read(path)),
        };
        (self.memo.entry(*options).or_default())
            .insert(path.as_os_str().to_owned(), result.clone());
        result
    }
}

/// The problem of a picture that was not read in this pass.
pub(crate) fn not_read(path: &Path) -> LocalProblem {
    LocalProblem::new(
        LocalKind::PictureUnreadable,
        format!("picture {} was not read", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_name_each_distinct_picture_once_and_every_instance_by_index() {
        let text = "\
instances:
  - {idInstance: \"1\", apiTokenEnv: T, picture: a.jpg}
  - {idInstance: \"2\", apiTokenEnv: T, picture: ./b.jpg}
  - {idInstance: \"3\", apiTokenEnv: T, picture: a.jpg}
  - {idInstance: \"4\", apiTokenEnv: T, picture: a.jpg, size: 320}
  - {idInstance: \"5\", apiTokenEnv: T, picture: a.jpg, suspend: true}
  - {idInstance: \"6\", apiTokenEnv: T, picture: \"${UNSET}.jpg\"}
  - {idInstance: \"7\", apiTokenEnv: T, picture: ./b.jpg}
";
        let manifest = crate::manifest::parse(text, Path::new("m/manifest.yaml"), &|_| None);
        let manifest = manifest.unwrap();
        let uses = Uses::of(&manifest);
        let files: Vec<&Path> = uses.files(&manifest).collect();
        assert_eq!(files, [Path::new("m/a.jpg"), Path::new("m/./b.jpg")]);
        // a.jpg at two sizes, b.jpg at one.
        assert_eq!(uses.pictures.len(), 3);
        let (a, b, a320) = (Some(0), Some(1), Some(2));
        assert_eq!(uses.of_instance, [a, b, a, a320, None, None, b]);
    }
}
