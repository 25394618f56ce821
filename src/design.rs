//! The design notes' source tree (`docs/design.md`), checked: it lists every source file
//! under `src/` but the tests (`tests.rs`, `fuzz.rs`, `properties.rs`), and nothing that
//! is not there, so the map a newcomer reads is the territory. Likewise the man page's
//! manifest reference (`examples/assets.rs`) names every key the manifest takes, and no other.

use std::collections::BTreeSet;
use std::path::Path;

/// Where the tree is: the design notes, and the heading of the section whose first code
/// block it is.
const DESIGN_NOTES: &str = "docs/design.md";
const TREE_HEADING: &str = "## The data flow and the source tree";

/// Files that only hold tests: not in the tree.
const TEST_FILES: &[&str] = &["tests.rs", "fuzz.rs", "properties.rs"];

/// The source files the design notes' tree names (a folder `x/` names `x/mod.rs`).
fn listed(notes: &str) -> BTreeSet<String> {
    let tree = notes
        .split(TREE_HEADING)
        .nth(1)
        .and_then(|section| section.split("```\n").nth(1))
        .unwrap_or_else(|| panic!("{DESIGN_NOTES} has a source tree under {TREE_HEADING:?}"));
    let mut files = BTreeSet::new();
    // The folder each indentation level is in.
    let mut folders: Vec<String> = Vec::new();
    for line in tree.lines() {
        let depth = (line.len() - line.trim_start().len()) / 2;
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        folders.truncate(depth);
        let path = match (depth, folders.last()) {
            (0, _) if name.starts_with("src/") => name.to_owned(),
            (0, _) => {
                // Outside src/: not this check's.
                folders.clear();
                continue;
            }
            (_, Some(folder)) => format!("{folder}{name}"),
            (_, None) => continue,
        };
        match path.strip_suffix('/') {
            Some(folder) => {
                files.insert(format!("{folder}/mod.rs"));
                folders.push(path);
            }
            None => {
                files.insert(path);
            }
        }
    }
    files
}

/// The source files under `dir` (as `src/...`), tests left out.
fn sources(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            sources(root, &path, out);
        } else if name.ends_with(".rs") && !TEST_FILES.contains(&name.as_str()) {
            let rel = path.strip_prefix(root).unwrap();
            out.insert(rel.to_string_lossy().into_owned());
        }
    }
}

#[test]
fn the_design_tree_is_the_source_tree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let notes = std::fs::read_to_string(root.join(DESIGN_NOTES)).unwrap();
    let listed = listed(&notes);
    let mut found = BTreeSet::new();
    sources(root, &root.join("src"), &mut found);
    assert!(found.len() > 50, "the walk found the sources");
    let missing: Vec<_> = found.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&found).collect();
    assert!(
        missing.is_empty() && gone.is_empty(),
        "{DESIGN_NOTES}'s tree and src/ differ:\n  not in the tree: {missing:?}\n  \
         not in src/: {gone:?}"
    );
}

#[test]
fn the_tree_reader_follows_folders_and_skips_what_is_outside_src() {
    let notes = "## The data flow and the source tree\n\n```\nsrc/main.rs   x\nsrc/a/        y\n  b.rs        z\n  c/          w\n    d.rs      v\nsrc/e.rs      u\ndocs/         t\n  f.md        s\n```\n";
    let expected = [
        "src/a/b.rs",
        "src/a/c/d.rs",
        "src/a/c/mod.rs",
        "src/a/mod.rs",
        "src/e.rs",
        "src/main.rs",
    ];
    assert_eq!(listed(notes).into_iter().collect::<Vec<_>>(), expected);
}

/// The keys the `.TP` tags of one subsection of the man page's manifest reference name
/// (a tag is `key (type; default)`, or `key, key, ...` for keys alike).
fn man_keys(assets: &str, subsection: &str) -> BTreeSet<String> {
    let reference = assets
        .split("const MANIFEST_REFERENCE: &str = \"")
        .nth(1)
        .and_then(|rest| rest.split("\";\n").next())
        .expect("examples/assets.rs has the man page's MANIFEST_REFERENCE");
    let text = (reference.split(&format!("\n.SS {subsection}\n")).nth(1))
        .and_then(|rest| rest.split("\n.SS ").next())
        .unwrap_or_else(|| panic!("the manifest reference has a subsection {subsection:?}"));
    let mut keys = BTreeSet::new();
    let mut tag_next = false;
    for line in text.lines() {
        if tag_next {
            let names = line.split(" (").next().unwrap_or_default();
            keys.extend(names.split(", ").map(str::to_owned));
        }
        tag_next = line == ".TP";
    }
    keys
}

#[test]
fn the_man_page_names_every_manifest_key() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let assets = std::fs::read_to_string(root.join("examples/assets.rs")).unwrap();
    let names = |keys: &[crate::manifest::Key]| -> BTreeSet<String> {
        keys.iter().map(|key| key.name.to_owned()).collect()
    };
    let top = names(&crate::manifest::TOP_KEYS);
    let instance = names(&crate::manifest::INSTANCE_KEYS);
    assert!(top.contains("driftInterval") && instance.contains("idInstance"));
    assert_eq!(man_keys(&assets, "Top-level keys"), top);
    assert_eq!(man_keys(&assets, "Per-instance keys"), instance);
    assert_eq!(
        man_keys(&assets, "Receiver keys (each item of notify)"),
        names(&crate::manifest::NOTIFY_KEYS)
    );
    // The processing keys are the ones both levels take.
    let both: BTreeSet<_> = top.intersection(&instance).cloned().collect();
    let processing = man_keys(&assets, "Processing keys (top level, and per instance)");
    assert!(
        processing.is_subset(&both),
        "{processing:?} not all in {both:?}"
    );
    assert_eq!(
        processing.len(),
        4,
        "fit, size, background, quality: {processing:?}"
    );
}
