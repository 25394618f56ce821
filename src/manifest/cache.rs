//! The last parsed manifest, kept in the state directory so that a run whose manifest did
//! not change skips parsing YAML (most of a no-op run's time at fleet size).
//!
//! The file's first line is the key: this format, this program's version and the SHA-256
//! of the manifest's bytes. The rest is the [`ParsedManifest`] as JSON (its top-level keys,
//! how many instances, the instances): the parse, not the validation, so `${NAME}`, token
//! sources and warnings are checked afresh on every run exactly as for a parse from YAML.
//! Each instance is validated as it is read, so a fleet's parse is never held whole. A
//! manifest that writes a token (`apiTokenInstance`) is never cached, and a cache that
//! cannot be read or does not match is ignored. The cache decides where tokens are sent
//! (`apiUrl`), so it is trusted only as this process's own: a regular file in a folder that
//! only this user (or root) owns and can write.

use super::parsed::{At, ParsedInstance, ParsedManifest, ParsedTop};
use super::problem::ManifestError;
use super::validate::{Building, Validator};
use super::{MAX_MANIFEST_BYTES, Manifest, Shard};
use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use crate::layout::MANIFEST_CACHE_FILE as CACHE_FILE;
/// Bump when [`Cached`]'s JSON changes.
const FORMAT: u32 = 3;
/// The fewest bytes of YAML an instance takes (`- idInstance: 1`, a token, a picture): caps
/// the room a damaged cache's `instanceCount` can ask for.
const MIN_INSTANCE_BYTES: u64 = 32;

/// The first line of the cache of the manifest `bytes`, as `shard` (or all) reads it.
pub(super) fn key(bytes: &[u8], shard: Option<Shard>) -> String {
    key_of(&Sha256::digest(bytes), shard)
}

/// The first line of the cache of the manifest file at `path`, read in pieces (a run that
/// finds its parse cached never holds the manifest's bytes); `None` where the file cannot
/// be read as [`super::read_bytes`] reads it.
pub(super) fn key_of_file(path: &Path, shard: Option<Shard>) -> Option<String> {
    use std::io::Read as _;
    let file = crate::fsio::open_regular(path).ok()?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file.take(MAX_MANIFEST_BYTES + 1), &mut hasher).ok()?;
    (size <= MAX_MANIFEST_BYTES).then(|| key_of(&hasher.finalize(), shard))
}

fn key_of(digest: &sha2::digest::Output<Sha256>, shard: Option<Shard>) -> String {
    let shard = shard.map_or_else(|| "all".to_owned(), |shard| format!("shard {shard}"));
    format!(
        "avatar-sync parsed manifest {FORMAT} {} {digest:x} {shard}\n",
        env!("CARGO_PKG_VERSION"),
    )
}

/// The manifest validated by `validator` from the parse cached in `dir` under `key`, if
/// there is one this process can trust and it reads whole.
pub(super) fn read(
    dir: &Path,
    key: &str,
    validator: Validator<'_>,
) -> Option<Result<Manifest, ManifestError>> {
    // The folder as it really is: a state directory is often reached through a symlink
    // (systemd's `DynamicUser=` links /var/lib/NAME to /var/lib/private/NAME). The file in
    // it is never followed.
    let dir = std::fs::canonicalize(dir).ok()?;
    let file = dir.join(CACHE_FILE);
    if !ours(&dir) || !ours(&file) {
        return None;
    }
    let json = read_after(&file, key)?;
    let mut json = serde_json::Deserializer::from_str(&json);
    let validated = Validated(validator)
        .deserialize(&mut json)
        .and_then(|validated| json.end().map(|()| validated));
    match validated {
        Ok(validated) => Some(validated),
        Err(e) => {
            tracing::debug!(file = %file.display(), error = %e, "manifest cache ignored");
            None
        }
    }
}

/// The text of the cache `file` after its first line, if that line is `key` (else the rest
/// is not read).
fn read_after(file: &Path, key: &str) -> Option<String> {
    use std::io::Read as _;
    let (mut file, metadata) = crate::fsio::open_regular_with_metadata(file).ok()?;
    let mut first = vec![0; key.len()];
    file.read_exact(&mut first).ok()?;
    if first != key.as_bytes() {
        return None;
    }
    let size = metadata.len();
    let mut json = String::with_capacity(usize::try_from(size).ok()?.saturating_sub(key.len()));
    file.take(MAX_MANIFEST_BYTES * 4)
        .read_to_string(&mut json)
        .ok()?;
    Some(json)
}

/// The cache's JSON, as written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cached<'a> {
    top: &'a ParsedTop,
    /// How many instances follow: the reader makes room for them at once.
    instance_count: usize,
    /// How many instances the manifest writes, in every shard.
    written: usize,
    instances: &'a [At<ParsedInstance>],
}

impl<'a> Cached<'a> {
    fn of(parsed: &'a ParsedManifest) -> Self {
        Self {
            top: &parsed.top,
            instance_count: parsed.instances.len(),
            written: parsed.written,
            instances: &parsed.instances,
        }
    }
}

/// The cache's keys, in the order they are written (and must be read).
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Key {
    Top,
    InstanceCount,
    Written,
    Instances,
}

/// Reads [`Cached`] into the validator, one instance at a time.
struct Validated<'a>(Validator<'a>);

impl<'de, 'a> DeserializeSeed<'de> for Validated<'a> {
    type Value = Result<Manifest, ManifestError>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, 'a> Visitor<'de> for Validated<'a> {
    type Value = Result<Manifest, ManifestError>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a cached manifest parse")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        expect_key(&mut map, Key::Top)?;
        let top = map.next_value::<ParsedTop>()?;
        expect_key(&mut map, Key::InstanceCount)?;
        let count = map.next_value::<usize>()?;
        expect_key(&mut map, Key::Written)?;
        let written = map.next_value::<usize>()?;
        expect_key(&mut map, Key::Instances)?;
        let most = usize::try_from(MAX_MANIFEST_BYTES / MIN_INSTANCE_BYTES).unwrap_or(usize::MAX);
        let mut building = self.0.start(top, count.min(most), written);
        map.next_value_seed(Instances(&mut building))?;
        if map.next_key::<Key>()?.is_some() {
            return Err(A::Error::custom("nothing may follow `instances`"));
        }
        Ok(building.finish())
    }
}

/// Reads the next key, which must be `expected` (the cache is read in the order written).
fn expect_key<'de, A: MapAccess<'de>>(map: &mut A, expected: Key) -> Result<(), A::Error> {
    match map.next_key::<Key>()? {
        Some(key) if key == expected => Ok(()),
        _ => Err(A::Error::custom(format_args!("expected {expected:?} next"))),
    }
}

/// The cached `instances`, each validated as it is read.
struct Instances<'b, 'a>(&'b mut Building<'a>);

impl<'de> DeserializeSeed<'de> for Instances<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Instances<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the manifest's instances")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(instance) = seq.next_element::<At<ParsedInstance>>()? {
            self.0.add(instance);
        }
        Ok(())
    }
}

/// Whether `path` (not followed if a symlink) is owned by this process's user or root, and
/// writable by no one else.
fn ours(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    // The process's own user: `/proc/self` belongs to it (no call needs `unsafe`).
    let (Ok(meta), Ok(me)) = (path.symlink_metadata(), Path::new("/proc/self").metadata()) else {
        return false;
    };
    let kind = meta.file_type();
    (kind.is_dir() || kind.is_file())
        && (meta.uid() == me.uid() || meta.uid() == 0)
        && meta.mode() & 0o022 == 0
}

/// A parse to keep, for the state directory's writer to save.
#[derive(Debug)]
pub struct PendingCache {
    file: PathBuf,
    bytes: Vec<u8>,
}

impl PendingCache {
    /// The cache of `parsed` for `dir`, or `None` when the manifest writes a token.
    pub(super) fn new(dir: &Path, key: String, parsed: &ParsedManifest) -> Option<Self> {
        if parsed.has_inline_token() {
            return None;
        }
        let mut bytes = key.into_bytes();
        serde_json::to_writer(&mut bytes, &Cached::of(parsed)).ok()?;
        Some(Self {
            file: dir.join(CACHE_FILE),
            bytes,
        })
    }

    /// Writes the cache (atomically, 0600). Only the state directory's writer saves, while
    /// it holds the lock; a failure costs the next run a parse, nothing else.
    pub fn save(self) {
        if let Err(e) = crate::fsio::write_bytes_atomically(&self.file, &self.bytes) {
            let file = self.file.display();
            tracing::warn!(file = %file, error = %e, "cannot save the manifest cache");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Keep, Manifest, ManifestError, from_bytes, from_bytes_cached};
    use super::*;

    const TEXT: &str = "\
apiUrl: https://gw.example
minInterval: 12s
drift: heal
size: 320
instances:
  - idInstance: \"1101000001\"
    apiTokenFile: ${SECRETS}/one
    picture: ${PICTURES}/one.png
    fit: contain
    background: \"#102030\"
  - idInstance: 1101000002
    apiTokenEnv: TOKEN_TWO
    picture: two.jpg
    apiUrl: https://other.example
    quality: 70
    drift: warn
    suspend: true
";

    fn env(name: &str) -> Option<String> {
        match name {
            "SECRETS" => Some("/run/secrets".to_owned()),
            "PICTURES" => Some("art".to_owned()),
            _ => None,
        }
    }

    fn path() -> &'static Path {
        Path::new("/srv/avatar/manifest.yaml")
    }

    /// The JSON the cache keeps of `parsed`, after its key line.
    fn cached_form(parsed: &ParsedManifest) -> String {
        serde_json::to_string(&Cached::of(parsed)).unwrap()
    }

    /// Loads `text` through the cache in `dir`, saving a fresh parse as the writer does;
    /// says whether the parse came from the cache.
    fn load(
        text: &str,
        dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> (Result<Manifest, ManifestError>, bool) {
        let hit = read(
            dir,
            &key(text.as_bytes(), None),
            Validator::new(path(), env),
        )
        .is_some();
        let loaded = from_bytes_cached(text.as_bytes(), path(), dir, Keep::Parse, None, env);
        let loaded = loaded.map(|(manifest, pending)| {
            assert_eq!(
                pending.is_some(),
                !hit && !text.contains("apiTokenInstance")
            );
            if let Some(pending) = pending {
                pending.save();
            }
            manifest
        });
        (loaded, hit)
    }

    #[test]
    fn a_cached_parse_validates_exactly_as_the_yaml_does() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = format!("{:?}", from_bytes(TEXT.as_bytes(), path(), &env).unwrap());
        let (first, hit) = load(TEXT, dir.path(), &env);
        assert!(!hit, "nothing was cached yet");
        assert_eq!(format!("{:?}", first.unwrap()), fresh);
        let (second, hit) = load(TEXT, dir.path(), &env);
        assert!(hit, "the second load reads the cache");
        assert_eq!(format!("{:?}", second.unwrap()), fresh);
        let file = dir.path().join(CACHE_FILE);
        let mode = std::os::unix::fs::PermissionsExt::mode(&file.metadata().unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_cached_parse_expands_names_and_finds_problems_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let (_, hit) = load(TEXT, dir.path(), &env);
        assert!(!hit);
        // The same bytes in another environment: `${PICTURES}` is unset now.
        let (cached, hit) = load(TEXT, dir.path(), &|_| None);
        assert!(hit);
        let fresh = from_bytes(TEXT.as_bytes(), path(), &|_| None);
        assert_eq!(format!("{cached:?}"), format!("{fresh:?}"));
        let picture = &cached.unwrap().instances[0].picture;
        assert!(picture.path.is_err(), "{picture:?}");

        // A problem found in a cached parse names the same line as the YAML's. (A run stops
        // at a manifest with problems, so it keeps no parse of it: one is put there here.)
        let bad = TEXT.replace("drift: warn", "drift: sometimes");
        let (_, hit) = load(&bad, dir.path(), &env);
        assert!(!hit, "other bytes, another key");
        let parsed = super::super::parse_yaml(&bad, path(), None).unwrap().parsed;
        PendingCache::new(dir.path(), key(bad.as_bytes(), None), &parsed)
            .unwrap()
            .save();
        let (cached, hit) = load(&bad, dir.path(), &env);
        assert!(hit);
        let fresh = from_bytes(bad.as_bytes(), path(), &env);
        let (cached, fresh) = (cached.unwrap_err(), fresh.unwrap_err());
        assert_eq!(cached.to_string(), fresh.to_string());
        assert!(cached.to_string().contains("manifest.yaml:16:"), "{cached}");
    }

    #[test]
    fn a_manifest_that_writes_a_token_is_never_cached() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "SeCrEtToKeN1234567890abcdef";
        let text = TEXT.replace(
            "apiTokenEnv: TOKEN_TWO",
            &format!("apiTokenInstance: {secret}"),
        );
        for _ in 0..2 {
            let (manifest, hit) = load(&text, dir.path(), &env);
            assert!(manifest.is_ok() && !hit);
        }
        assert!(!dir.path().join(CACHE_FILE).exists());
    }

    #[test]
    fn a_manifest_file_read_in_pieces_has_the_key_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("manifest.yaml");
        // Larger than one piece, so the pieces are put together.
        let text = TEXT.repeat(2000);
        std::fs::write(&file, &text).unwrap();
        assert_eq!(key_of_file(&file, None), Some(key(text.as_bytes(), None)));
        assert_ne!(key(text.as_bytes(), None), key(TEXT.as_bytes(), None));
        assert_eq!(key_of_file(&dir.path().join("missing.yaml"), None), None);
        assert_eq!(
            key_of_file(dir.path(), None),
            None,
            "a folder is not a manifest"
        );
    }

    #[test]
    fn a_damaged_or_foreign_cache_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (_, hit) = load(TEXT, dir.path(), &env);
        assert!(!hit);
        let file = dir.path().join(CACHE_FILE);
        let whole = std::fs::read(&file).unwrap();
        // Cut short: the key matches, the JSON does not parse.
        std::fs::write(&file, &whole[..whole.len() - 10]).unwrap();
        let (manifest, hit) = load(TEXT, dir.path(), &env);
        assert!(manifest.is_ok() && !hit);
        // Another program's version (or format) under the same manifest bytes.
        let text = String::from_utf8(std::fs::read(&file).unwrap()).unwrap();
        let foreign = text.replacen(env!("CARGO_PKG_VERSION"), "0.0.0-other", 1);
        std::fs::write(&file, foreign).unwrap();
        let (manifest, hit) = load(TEXT, dir.path(), &env);
        assert!(manifest.is_ok() && !hit);
        let (_, hit) = load(TEXT, dir.path(), &env);
        assert!(hit, "the fresh parse was cached again");
        // Keys in another order than written: not read at all (each instance is validated
        // as it is read, so the top-level keys must come first).
        let text = String::from_utf8(std::fs::read(&file).unwrap()).unwrap();
        let moved = text.replacen(r#""instanceCount":2,"#, "", 1).replacen(
            r#"{"top""#,
            r#"{"instanceCount":2,"top""#,
            1,
        );
        assert_ne!(moved, text);
        std::fs::write(&file, moved).unwrap();
        let (manifest, hit) = load(TEXT, dir.path(), &env);
        assert!(manifest.is_ok() && !hit);
        // A count beyond any manifest is only a hint: the room made for it is capped.
        let huge = text.replacen(
            r#""instanceCount":2"#,
            &format!(r#""instanceCount":{}"#, usize::MAX),
            1,
        );
        std::fs::write(&file, huge).unwrap();
        let (manifest, hit) = load(TEXT, dir.path(), &env);
        assert!(hit);
        assert_eq!(manifest.unwrap().instances.len(), 2);
    }

    #[test]
    fn the_cached_form_is_pinned_so_a_change_bumps_its_format() {
        // If this fails, the cached form changed: bump FORMAT (older caches must not be
        // read as the new form), then update the expected text.
        let parsed = super::super::parse_yaml(TEXT, path(), None).unwrap().parsed;
        let json = cached_form(&parsed);
        let expected = concat!(
            r#"{"top":{"apiUrl":["https://gw.example",1],"minInterval":["12s",2],"#,
            r#""drift":["heal",3],"processing":{"size":[320,4]}},"instanceCount":2,"#,
            r#""written":2,"instances":[[{"#,
            r#""idInstance":["1101000001",6],"apiTokenFile":["${SECRETS}/one",7],"#,
            r#""picture":["${PICTURES}/one.png",8],"processing":{"fit":["contain",9],"#,
            r##""background":["#102030",10]}},6],[{"idInstance":["1101000002",11],"##,
            r#""apiTokenEnv":["TOKEN_TWO",12],"picture":["two.jpg",13],"#,
            r#""apiUrl":["https://other.example",14],"processing":{"quality":[70,15]},"#,
            r#""drift":["warn",16],"suspend":true},11]]}"#
        );
        assert_eq!(json, expected);
        assert_eq!(FORMAT, 3);
    }

    #[test]
    fn a_written_token_never_reaches_the_cached_form() {
        let secret = "SeCrEtToKeN1234567890abcdef";
        let text = TEXT.replace(
            "apiTokenEnv: TOKEN_TWO",
            &format!("apiTokenInstance: {secret}"),
        );
        let parsed = super::super::parse_yaml(&text, path(), None)
            .unwrap()
            .parsed;
        assert!(parsed.has_inline_token());
        let json = cached_form(&parsed);
        assert!(!json.contains(secret), "{json}");
        assert!(PendingCache::new(Path::new("/nowhere"), key(b"x", None), &parsed).is_none());
    }

    #[test]
    fn a_reader_keeps_nothing_and_a_cache_others_could_write_is_not_trusted() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let (manifest, pending) = from_bytes_cached(
            TEXT.as_bytes(),
            path(),
            dir.path(),
            Keep::Nothing,
            None,
            &env,
        )
        .unwrap();
        assert!(!manifest.instances.is_empty() && pending.is_none());
        let (_, hit) = load(TEXT, dir.path(), &env);
        assert!(!hit);
        let cached = || {
            let validator = Validator::new(path(), &env);
            read(dir.path(), &key(TEXT.as_bytes(), None), validator).is_some()
        };
        assert!(cached());
        // Writable by the group: whoever is in it could send the tokens elsewhere.
        let file = dir.path().join(CACHE_FILE);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o620)).unwrap();
        assert!(!cached());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!cached());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        // A symlink to a cache is not followed.
        let elsewhere = tempfile::tempdir().unwrap();
        let moved = elsewhere.path().join("cache");
        std::fs::rename(&file, &moved).unwrap();
        std::os::unix::fs::symlink(&moved, &file).unwrap();
        assert!(!cached());
    }

    #[test]
    fn n6_a_state_directory_reached_through_a_symlink_has_its_cache_read() {
        use std::os::unix::fs::PermissionsExt as _;
        let real = tempfile::tempdir().unwrap();
        let links = tempfile::tempdir().unwrap();
        let link = links.path().join("avatar-sync");
        std::os::unix::fs::symlink(real.path(), &link).unwrap();
        let (_, hit) = load(TEXT, &link, &env);
        assert!(!hit);
        assert!(
            real.path().join(CACHE_FILE).exists(),
            "written through the link"
        );
        let (cached, hit) = load(TEXT, &link, &env);
        assert!(hit, "read through the link");
        assert!(cached.is_ok());
        // What the link points at is held to the same rules.
        std::fs::set_permissions(real.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!load(TEXT, &link, &env).1);
    }
}
