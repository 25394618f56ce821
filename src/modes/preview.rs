//! `--preview DIR`: writes, for each instance, exactly the JPEG that would be uploaded
//! (`<idInstance>.jpg`), so people can look before they push. No network, no state.

use crate::Error;
use crate::manifest::Manifest;
use crate::outcome::{LocalKind, LocalProblem};
use crate::picture::pass::{Pictures, prepare_in_memory};
use crate::report::{Render, Row, Table, short_sha};
use serde::Serialize;
use std::path::Path;
use std::time::SystemTime;

/// One instance's preview: `written`, `failed` or `suspended`.
pub(crate) type PreviewRow = Row<&'static str, Previewed>;

/// What `--preview` wrote for an instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Previewed {
    /// The file written.
    pub file: Option<String>,
    /// SHA-256 of the JPEG that would be uploaded.
    pub sha256: Option<String>,
    /// Its size in bytes.
    pub bytes: Option<usize>,
}

/// The result of `--preview`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct PreviewReport {
    /// One row per instance, in manifest order.
    pub instances: Vec<PreviewRow>,
}

/// Prepares every instance's picture and writes it into `out` as `<idInstance>.jpg`.
pub(crate) fn preview(manifest: &Manifest, out: &Path) -> Result<PreviewReport, Error> {
    std::fs::create_dir_all(out).map_err(|source| Error::Host {
        what: format!("cannot create {}", out.display()),
        source,
    })?;
    let (sources, mut prepared) = prepare_in_memory(manifest, true);
    let mut pictures = Pictures::new(&sources, &mut prepared);
    let mut digests = Vec::with_capacity(manifest.instances.len());
    for instance in &manifest.instances {
        let digest = match (&instance.picture.path, instance.suspend) {
            (_, true) => None,
            (Ok(path), false) => Some(pictures.upload_digest(path, &instance.processing)),
            (Err(why), false) => Some(Err(LocalProblem::new(
                LocalKind::PicturePath,
                format!("picture: {why}"),
            ))),
        };
        digests.push(digest);
    }
    let mut rows = Vec::with_capacity(manifest.instances.len());
    for (instance, digest) in manifest.instances.iter().zip(digests) {
        let mut row = PreviewRow::of(instance, "suspended");
        match digest {
            None => {}
            Some(Err(problem)) => {
                row.status = "failed";
                row.trouble(problem.kind.label(), problem.message);
            }
            Some(Ok(digest)) => {
                let bytes = prepared.bytes(digest).unwrap_or_default();
                let file = out.join(format!("{}.jpg", instance.id));
                match crate::fsio::write_new_file(&file, bytes) {
                    Ok(()) => {
                        row.status = "written";
                        row.detail.file = Some(file.display().to_string());
                        row.detail.sha256 = Some(digest.to_string());
                        row.detail.bytes = Some(bytes.len());
                    }
                    Err(e) => {
                        row.status = "failed";
                        row.trouble(
                            "preview-write",
                            format!("cannot write {}: {e}", file.display()),
                        );
                    }
                }
            }
        }
        rows.push(row);
    }
    Ok(PreviewReport { instances: rows })
}

impl Render for PreviewReport {
    /// 0 when every instance has its preview, 1 when any failed.
    fn exit_code(&self) -> u8 {
        u8::from(self.instances.iter().any(|r| r.status == "failed"))
    }

    fn table(&self, _now: SystemTime) -> Table {
        let mut table = Table::new(&["INSTANCE", "STATUS", "DETAIL"]);
        table.rows = (self.instances.iter())
            .map(|row| {
                let detail = match (&row.detail.file, &row.error_kind, &row.error) {
                    (Some(file), _, _) => format!(
                        "{file} ({} bytes, sha256 {})",
                        row.detail.bytes.unwrap_or(0),
                        row.detail.sha256.as_deref().map(short_sha).unwrap_or("")
                    ),
                    (None, Some(kind), Some(error)) => format!("{kind}: {error}"),
                    _ => String::new(),
                };
                vec![row.id_instance.clone(), row.status.to_owned(), detail]
            })
            .collect();
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(n: u8) -> Vec<u8> {
        let image = image::RgbImage::from_pixel(16, 16, image::Rgb([n * 100, 90, 200]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&image)
            .unwrap();
        out
    }

    #[test]
    fn n12_a_picture_being_rewritten_is_previewed_once_it_is_still() {
        let dir = tempfile::tempdir().unwrap();
        let picture = dir.path().join("a.jpg");
        let manifest_path = dir.path().join("manifest.yaml");
        let text = "instances:\n  - idInstance: \"1101000001\"\n    apiTokenInstance: abc123\n    picture: a.jpg\n";
        let manifest = crate::manifest::parse(text, &manifest_path, &|_| None).unwrap();
        // A writer rewrites the picture in place, in two writes 100 ms apart: between them
        // the file is a complete, valid JPEG, but not the one being written.
        assert_ne!(jpeg(1), jpeg(2));
        std::fs::write(&picture, jpeg(1)).unwrap();
        let writer = {
            let picture = picture.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                std::fs::write(&picture, jpeg(2)).unwrap();
            })
        };
        let out = dir.path().join("out");
        let report = preview(&manifest, &out).unwrap();
        writer.join().unwrap();
        assert_eq!(report.instances[0].status, "written", "{report:?}");
        // Sent as it is (a small JPEG with no metadata): the bytes of the finished write.
        assert_eq!(std::fs::read(out.join("1101000001.jpg")).unwrap(), jpeg(2));
    }
}
