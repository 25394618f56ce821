//! `--preview DIR`: writes, for each instance, exactly the JPEG that would be uploaded
//! (`<idInstance>.jpg`), so people can look before they push; beside them the source
//! pictures as they stand (`<idInstance>.source.jpg`, upright and in sRGB) and an
//! `index.html` that shows, for each, the square the upload was cut from and the circle
//! WhatsApp shows of it. No network, no state.

use crate::Error;
use crate::manifest::Manifest;
use crate::outcome::{LocalKind, LocalProblem};
use crate::picture::pass::{Pictures, prepare_in_memory};
use crate::picture::process;
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
    let mut page = Page::default();
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
                        let source = instance.picture.path.as_ref().ok().and_then(|path| {
                            let wanted = sources.get(path)?.as_ref().ok()?;
                            explain_source(path, *wanted, &instance.processing, out, instance)
                        });
                        page.add(instance, source);
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
    let index = out.join("index.html");
    // The page is a convenience: failing to write it fails no instance.
    if let Err(e) = crate::fsio::write_new_file(&index, page.finish().as_bytes()) {
        tracing::warn!("cannot write {}: {e}", index.display());
    }
    Ok(PreviewReport { instances: rows })
}

/// The source picture as the pipeline saw it, written as `<id>.source.jpg`, and where the
/// upload was cut from it; `None` when the file is no longer the one that was prepared.
fn explain_source(
    path: &Path,
    wanted: crate::picture::Digest,
    processing: &crate::manifest::Processing,
    out: &Path,
    instance: &crate::manifest::Instance,
) -> Option<Shown> {
    let picture = crate::picture::read(path).ok()?;
    if picture.digest != wanted {
        return None;
    }
    let explained = process::explain(&picture.bytes, processing, SOURCE_SIDE).ok()?;
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
        .encode_image(&explained.picture)
        .ok()?;
    let name = format!("{}.source.jpg", instance.id);
    crate::fsio::write_new_file(&out.join(&name), &jpeg).ok()?;
    Some(Shown {
        name,
        width: explained.picture.width(),
        height: explained.picture.height(),
        square: explained.square,
    })
}

/// The long side of the source pictures on the preview page, in pixels.
const SOURCE_SIDE: u32 = 480;

/// A source picture on the page.
struct Shown {
    /// Its file name in the preview folder.
    name: String,
    /// Pixels.
    width: u32,
    /// Pixels.
    height: u32,
    /// The square the upload was cut from, in its pixels.
    square: Option<process::Square>,
}

/// `index.html`: one row per written instance.
#[derive(Default)]
struct Page {
    rows: String,
}

impl Page {
    fn add(&mut self, instance: &crate::manifest::Instance, source: Option<Shown>) {
        use std::fmt::Write as _;
        let id = escape(instance.id.as_str());
        let _ = write!(
            self.rows,
            "<tr><td><b>{id}</b><br>fit: {}</td><td>",
            instance.processing.fit
        );
        match source {
            Some(shown) => {
                let (w, h) = (shown.width, shown.height);
                let _ = write!(
                    self.rows,
                    "<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=img \
                     aria-label=\"source\"><image href=\"{}\" width=\"{w}\" height=\"{h}\"/>",
                    escape(&shown.name)
                );
                match shown.square {
                    Some(s) => {
                        let r = f64::from(s.side) / 2.0;
                        let (cx, cy) = (f64::from(s.x) + r, f64::from(s.y) + r);
                        // Everything outside the circle dimmed: what WhatsApp never shows.
                        let _ = write!(
                            self.rows,
                            "<path fill=\"#000\" fill-opacity=\".6\" fill-rule=\"evenodd\" \
                             d=\"M0 0H{w}V{h}H0Z M{:.1} {cy:.1}a{r:.1} {r:.1} 0 1 0 {:.1} 0a{r:.1} \
                             {r:.1} 0 1 0 {:.1} 0Z\"/><rect x=\"{}\" y=\"{}\" width=\"{}\" \
                             height=\"{}\" fill=\"none\" stroke=\"#fff\" stroke-width=\"2\" \
                             stroke-dasharray=\"6 4\"/></svg><br>cut from here ({})",
                            cx - r,
                            2.0 * r,
                            -2.0 * r,
                            s.x,
                            s.y,
                            s.side,
                            s.side,
                            s.found
                        );
                    }
                    None => self.rows.push_str("</svg><br>the whole picture"),
                }
            }
            None => self.rows.push('—'),
        }
        let _ = write!(
            self.rows,
            "</td><td><img class=big src=\"{id}.jpg\" alt=\"upload\"></td><td><img \
             class=small src=\"{id}.jpg\" alt=\"in a chat list\"></td></tr>"
        );
    }

    fn finish(self) -> String {
        format!(
            "<!doctype html><html lang=en><head><meta charset=utf-8><title>avatar-sync \
             preview</title><style>body{{font:15px/1.4 system-ui,sans-serif;margin:1rem}}\
             td,th{{padding:.4rem .8rem;text-align:left;vertical-align:top}}\
             svg{{max-width:480px;height:auto;display:block}}\
             img{{border-radius:50%;object-fit:cover;background:#ddd;display:block}}\
             img.big{{width:192px;height:192px}}img.small{{width:48px;height:48px}}</style>\
             </head><body><h1>avatar-sync preview</h1><p>Left: each source picture, upright \
             and in sRGB, dimmed outside the circle WhatsApp shows, with the square the upload \
             was cut from. Then the upload as WhatsApp shows it, in a profile and in a chat \
             list.</p><table><tr><th>instance</th><th>source</th><th>profile</th>\
             <th>chat list</th></tr>{}</table></body></html>\n",
            self.rows
        )
    }
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
