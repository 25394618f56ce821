//! The daemon's status page (`/`): one self-contained HTML page, no JavaScript, no outside
//! assets, readable on a phone. Counts per status first, then the instances that need
//! attention, then each picture as WhatsApp shows it (a circle of the exact upload) with
//! how many instances show it and which are not in sync yet. Pure: a report in, text out.

use super::{Report, Row, Status, plural, short_sha, thousands};
use crate::clock::rfc3339;
use crate::manifest::Revision;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

/// At most this many instances are listed under "needs attention" (the rest are counted),
/// so a fleet in trouble still gets a page of a few hundred KB.
pub(crate) const MAX_ATTENTION_ROWS: usize = 200;
/// At most this many ids are named under each picture.
const MAX_IDS_PER_PICTURE: usize = 20;

/// What the page says besides the report.
pub(crate) struct PageContext<'a> {
    /// The manifest file.
    pub manifest: &'a str,
    /// The git revision it was read from, if known.
    pub revision: Option<&'a Revision>,
    /// When the report was made.
    pub at: SystemTime,
    /// Where each upload (by SHA-256) was cut from its source (`fit: cover`, `fit: face`):
    /// the circle WhatsApp shows is cut from that square.
    pub cuts: &'a std::collections::HashMap<String, String>,
}

const STYLE: &str = "\
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;color:#1b1b1b}\
h1{font-size:1.4rem;margin:0}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}\
.meta{color:#555;margin:.2rem 0 1rem;word-break:break-all}\
.counts{display:flex;flex-wrap:wrap;gap:.5rem}\
.count{border-radius:.5rem;padding:.4rem .8rem;background:#eee}.count b{font-size:1.3rem;display:block}\
.failed,.halted li{background:#fde2e1}.held{background:#e1effd}.throttled,.pending,.unreachable{background:#fff3cd}.in-sync{background:#dcf5e3}.drifted{background:#e7e1fd}\
.attention{list-style:none;padding:0;margin:0}\
.attention li{border-top:1px solid #ddd;padding:.5rem 0;overflow-wrap:anywhere}\
.badge{border-radius:.3rem;padding:0 .4rem;margin-left:.3rem}.when{color:#555}\
.pictures{list-style:none;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(15rem,1fr));gap:1rem}\
.pictures li{display:flex;gap:.8rem;align-items:center}\
img.avatar{width:96px;height:96px;border-radius:50%;object-fit:cover;background:#ddd;flex:none}\
code{font-size:.9em}.dirty{color:#8a4b00}";

/// The whole page.
pub(crate) fn page(report: &Report, context: &PageContext<'_>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    out.push_str("<!doctype html><html lang=en><head><meta charset=utf-8>");
    out.push_str("<meta name=viewport content=\"width=device-width,initial-scale=1\">");
    out.push_str("<title>avatar-sync</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body><h1>avatar-sync</h1><p class=meta>manifest <code>");
    out.push_str(&escape(context.manifest));
    out.push_str("</code>");
    if let Some(revision) = context.revision {
        let commit = revision.commit.as_deref().unwrap_or("none yet");
        let _ = write!(out, " at revision <code>{}</code>", escape(commit));
        if let Some(branch) = &revision.branch {
            let _ = write!(out, " ({})", escape(branch));
        }
        if let Some(signer) = &revision.signer {
            let _ = write!(out, " signed by {}", escape(signer));
        }
        if let Some(newer) = &revision.unverified {
            let _ = write!(
                out,
                " <span class=dirty>newer revision not applied: {}</span>",
                escape(newer)
            );
        }
        if !revision.dirty.is_empty() {
            let files: Vec<String> = revision.dirty.iter().map(|f| escape(f)).collect();
            let _ = write!(
                out,
                " <span class=dirty>with changes not committed: <code>{}</code></span>",
                files.join("</code>, <code>")
            );
        }
    }
    let _ = write!(out, " · as of {}</p>", rfc3339(context.at));
    counts(&mut out, report);
    rollout(&mut out, report);
    attention(&mut out, report, context.at);
    pictures(&mut out, report, context.cuts);
    out.push_str("</body></html>\n");
    out
}

fn counts(out: &mut String, report: &Report) {
    let s = &report.summary;
    out.push_str("<section class=counts>");
    // Every status the engine knows, counted as `/metrics` counts them.
    for (status, n) in s.standings() {
        let class = status.label();
        let label = class.replace('-', " ");
        let _ = write!(
            out,
            "<div class=\"count {class}\"><b>{}</b>{label}</div>",
            thousands(n)
        );
    }
    out.push_str("</section>");
}

/// The rollout and the change window, when there are (section 12): the same lines as the
/// table's, a halt in the failure colour.
fn rollout(out: &mut String, report: &Report) {
    let mut lines: Vec<String> = Vec::new();
    if let Some(rollout) = &report.rollout {
        lines.extend(rollout.lines());
    }
    if let Some(window) = &report.window {
        lines.push(window.line());
    }
    if lines.is_empty() {
        return;
    }
    let halted = report.rollout.as_ref().is_some_and(|r| r.halted.is_some());
    out.push_str("<h2>Rollout</h2>");
    let _ = write!(
        out,
        "<ul class=\"attention{}\">",
        if halted { " halted" } else { "" }
    );
    for line in lines {
        let _ = write!(out, "<li>{}</li>", escape(line.trim()));
    }
    out.push_str("</ul>");
}

fn needs_attention(row: &Row) -> bool {
    matches!(
        row.status,
        Status::Failed
            | Status::Throttled
            | Status::Unreachable
            | Status::Pending
            | Status::Drifted
    )
}

fn attention(out: &mut String, report: &Report, now: SystemTime) {
    out.push_str("<h2>Needs attention</h2>");
    let rows: Vec<&Row> = report
        .instances
        .iter()
        .filter(|r| needs_attention(r))
        .collect();
    if rows.is_empty() {
        out.push_str("<p>Nothing: every instance shows its picture or is suspended.</p>");
        return;
    }
    out.push_str("<ul class=attention>");
    for row in rows.iter().take(MAX_ATTENTION_ROWS) {
        let why = match (&row.error_kind, &row.error) {
            (Some(kind), Some(error)) => format!("{kind}: {error}"),
            _ if row.status == Status::Pending => "waiting for its turn".to_owned(),
            _ => "minInterval since the last call".to_owned(),
        };
        let _ = write!(
            out,
            "<li><code>{}</code><span class=\"badge {}\">{}</span><br>{}",
            escape(&row.id_instance),
            row.status.label(),
            row.status.label(),
            escape(&why),
        );
        if let Some(at) = row.detail.next_attempt_at {
            let left = (at.duration_since(now).ok())
                .map(|left| {
                    let left = std::time::Duration::from_secs(left.as_secs());
                    format!(" (in {})", crate::clock::human_duration(left))
                })
                .unwrap_or_default();
            let _ = write!(
                out,
                "<br><small class=when>next attempt {}{left}</small>",
                rfc3339(at)
            );
        }
        out.push_str("</li>");
    }
    out.push_str("</ul>");
    if rows.len() > MAX_ATTENTION_ROWS {
        let _ = write!(
            out,
            "<p>… and {} more: <code>avatar-sync --status</code> lists every instance.</p>",
            thousands(rows.len() - MAX_ATTENTION_ROWS)
        );
    }
}

fn pictures(out: &mut String, report: &Report, cuts: &std::collections::HashMap<String, String>) {
    // Each distinct upload: where it comes from, who should show it, who does not yet.
    let mut by_digest: BTreeMap<&str, (&str, usize, Vec<&str>)> = BTreeMap::new();
    for row in &report.instances {
        let Some(digest) = row.detail.desired_sha256.as_deref() else {
            continue;
        };
        let entry = by_digest
            .entry(digest)
            .or_insert((&row.picture, 0, Vec::new()));
        entry.1 += 1;
        if row.status.standing() != Status::InSync {
            entry.2.push(&row.id_instance);
        }
    }
    out.push_str("<h2>Pictures</h2>");
    if by_digest.is_empty() {
        out.push_str("<p>No picture could be read.</p>");
        return;
    }
    out.push_str("<ul class=pictures>");
    for (digest, (picture, shown_by, waiting)) in &by_digest {
        let _ = write!(
            out,
            "<li><img class=avatar src=\"/pictures/{digest}.jpg\" alt=\"{}\" width=96 height=96 loading=lazy><div><code>{}</code><br>{}",
            escape(picture),
            escape(picture),
            plural(*shown_by, "instance"),
        );
        if waiting.is_empty() {
            out.push_str(", all in sync");
        } else {
            let named: Vec<String> = (waiting.iter().take(MAX_IDS_PER_PICTURE))
                .map(|id| escape(id))
                .collect();
            let more = waiting.len().saturating_sub(MAX_IDS_PER_PICTURE);
            let _ = write!(
                out,
                "; not in sync yet: {}{}",
                named.join(", "),
                if more > 0 {
                    format!(" and {} more", thousands(more))
                } else {
                    String::new()
                }
            );
        }
        if let Some(cut) = cuts.get(*digest) {
            let _ = write!(out, "<br><small class=cut>{}</small>", escape(cut));
        }
        let _ = write!(
            out,
            "<br><small>sha256 {}</small></div></li>",
            short_sha(digest)
        );
    }
    out.push_str("</ul>");
}

/// Text made safe inside HTML elements and quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ReportKind;

    fn row(id: &str, status: Status, sha: &str, error: Option<&str>) -> Row {
        Row {
            id_instance: id.to_owned(),
            picture: "pictures/<a>.jpg".to_owned(),
            status,
            detail: crate::report::Standing {
                desired_sha256: Some(sha.repeat(64)),
                ..Default::default()
            },
            error: error.map(str::to_owned),
            error_kind: error.map(|_| "unauthorized".to_owned()),
        }
    }

    fn context() -> PageContext<'static> {
        PageContext {
            manifest: "/srv/m.yaml",
            revision: Some(Box::leak(Box::new(Revision {
                commit: Some("3f2a".to_owned()),
                branch: Some("main".to_owned()),
                dirty: vec!["avatars/<new>.jpg".to_owned()],
                signer: None,
                unverified: None,
            }))),
            at: SystemTime::UNIX_EPOCH,
            cuts: Box::leak(Box::default()),
        }
    }

    #[test]
    fn every_status_appears_alike_on_the_page_in_json_in_the_table_and_in_metrics() {
        use crate::report::Render as _;
        for status in Status::ALL {
            let report = Report::new(vec![row("1", status, "a", None)], ReportKind::Status);
            let standing = status.standing().label();
            // The page counts it where /metrics does, and lists it when it needs a person.
            let html = page(&report, &context());
            let label = standing.replace('-', " ");
            let count = format!("<div class=\"count {standing}\"><b>1</b>{label}</div>");
            assert!(html.contains(&count), "{status:?}: {html}");
            // Held instances are the rollout's, shown in its section.
            let listed = !matches!(
                status.standing(),
                Status::InSync | Status::Suspended | Status::Held
            );
            assert_eq!(
                html.contains("<span class=\"badge"),
                listed,
                "{status:?}: {html}"
            );
            // --json and the table say its own label.
            let json = report.json();
            assert!(
                json.contains(&format!("\"status\": \"{}\"", status.label())),
                "{json}"
            );
            let table = report.table(SystemTime::UNIX_EPOCH).render();
            assert!(table.contains(status.label()), "{status:?}: {table}");
            // /metrics.
            let metrics = crate::metrics::Metrics::default();
            metrics.set_instances(&report.summary);
            let text = metrics.encode();
            let line = format!("avatar_sync_instances{{status=\"{standing}\"}} 1");
            assert!(text.contains(&line), "{status:?}: {text}");
        }
    }

    #[test]
    fn the_page_counts_lists_trouble_and_shows_each_picture_once() {
        let report = Report::new(
            vec![
                row("1", Status::InSync, "a", None),
                row("2", Status::Failed, "a", Some("bad <token>")),
                row("3", Status::InSync, "b", None),
            ],
            ReportKind::Reconcile,
        );
        let html = page(&report, &context());
        assert!(html.starts_with("<!doctype html>"));
        assert!(
            html.contains("<div class=\"count in-sync\"><b>2</b>in sync</div>"),
            "{html}"
        );
        assert!(
            html.contains("<div class=\"count failed\"><b>1</b>failed</div>"),
            "{html}"
        );
        assert!(
            html.contains("unauthorized: bad &lt;token&gt;"),
            "escaped: {html}"
        );
        assert_eq!(html.matches("<img class=avatar").count(), 2, "{html}");
        assert!(html.contains(&format!("src=\"/pictures/{}.jpg\"", "a".repeat(64))));
        assert!(html.contains("2 instances; not in sync yet: 2"), "{html}");
        assert!(html.contains("1 instance, all in sync"), "{html}");
        assert!(
            html.contains(
                "at revision <code>3f2a</code> (main) <span class=dirty>with changes not \
                 committed: <code>avatars/&lt;new&gt;.jpg</code></span>"
            ),
            "{html}"
        );
        assert!(!html.contains("<script"), "no JavaScript");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no outside assets"
        );
    }

    #[test]
    fn ten_thousand_instances_make_a_page_under_a_megabyte() {
        let rows = (0..10_000)
            .map(|n| {
                let sha = format!("{:064x}", n % 1000);
                let mut row = row(&format!("110100{n:04}"), Status::Failed, "a", Some("x"));
                row.detail.desired_sha256 = Some(sha);
                row.error = Some(
                    "GREEN-API answered 401 Unauthorized: the apiTokenInstance is wrong".to_owned(),
                );
                row
            })
            .collect();
        let html = page(&Report::new(rows, ReportKind::Reconcile), &context());
        assert!(html.len() < 1024 * 1024, "{} bytes", html.len());
        assert!(html.contains("… and 9,800 more"), "the rest is counted");
        assert_eq!(html.matches("<img class=avatar").count(), 1000);
    }

    #[test]
    fn a_picture_says_where_it_was_cut_from() {
        let report = Report::new(
            vec![row("1", Status::InSync, "a", None)],
            ReportKind::Status,
        );
        let digest = report.instances[0].detail.desired_sha256.clone().unwrap();
        let cuts = std::collections::HashMap::from([(
            digest,
            "cut around 1 face: a 812 px square at (1204, 310) of the 4000 × 3000 picture"
                .to_owned(),
        )]);
        let context = PageContext {
            cuts: &cuts,
            ..context()
        };
        let html = page(&report, &context);
        assert!(
            html.contains("<small class=cut>cut around 1 face: a 812 px square at (1204, 310) of the 4000 × 3000 picture</small>"),
            "{html}"
        );
    }
}
