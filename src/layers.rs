//! The architecture, checked: every `crate::` path in `src/`, and every `super::` path
//! that climbs to the crate's root, points at a module of the same layer or of a layer
//! before it in the data flow (the list in `lib.rs`), so no module imports back up the
//! flow and no cycle can form between stages.

use std::path::Path;

/// The layers, first to last; a module may use its own layer and the ones before it.
const LAYERS: &[&[&str]] = &[
    &[
        "clock", "fsio", "layout", "outcome", "redact", "usage", "testing",
    ],
    &["manifest"],
    &["picture"],
    &["state"],
    &["plan"],
    &["gateway"],
    &["report", "metrics", "notify"],
    &["reconcile"],
    &["daemon"],
    &[
        "modes", "error", "cli", "logging", "layers", "design", "lib", "main",
    ],
];

/// Items of the crate root that are not modules (usable from anywhere).
const ROOT_ITEMS: &[&str] = &["USER_AGENT", "Error"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `crate::name` in the code of `text` (comments skipped).
fn crate_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

/// The top-level modules named by `super::` paths in `text` that climb to the crate's root
/// from a file `depth` modules deep (`src/a/mod.rs` is 1, `src/a/b.rs` 2; comments skipped).
fn root_paths_via_super(text: &str, depth: usize) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("super::") {
            // Only a path's start: `crate::a::super` is no path of this kind.
            let starts = rest[..at]
                .chars()
                .last()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_' && c != ':');
            let mut climbs = 0;
            let mut path = &rest[at..];
            while let Some(after) = path.strip_prefix("super::") {
                climbs += 1;
                path = after;
            }
            rest = path;
            let name: String = path
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if starts && climbs >= depth && !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

/// How many modules deep the file `path` (below `src`) is: `lib.rs` 0, `a.rs` and
/// `a/mod.rs` 1, `a/b.rs` 2.
fn depth_of(src: &Path, path: &Path) -> usize {
    let rel = path.strip_prefix(src).unwrap();
    let parts = rel.components().count();
    match rel.file_name().and_then(|n| n.to_str()) {
        Some("mod.rs") => parts - 1,
        Some("lib.rs" | "main.rs") if parts == 1 => 0,
        _ => parts,
    }
}

/// `(file, module it belongs to)` for every `.rs` file under `dir`.
fn sources(dir: &Path, top: Option<&str>, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(std::fs::DirEntry::path);
    for entry in entries {
        let path = entry.path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let module = top.map_or_else(|| name.clone(), str::to_owned);
        if path.is_dir() {
            sources(&path, Some(&module), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((path.display().to_string(), module));
        }
    }
}

#[test]
fn no_module_imports_back_up_the_flow() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, None, &mut files);
    assert!(files.len() > 30, "the walk found the sources");
    let mut wrong = Vec::new();
    for (file, module) in &files {
        let from = layer_of(module).unwrap_or_else(|| panic!("{file}: `{module}` has no layer"));
        let text = std::fs::read_to_string(file).unwrap();
        let depth = depth_of(&src, Path::new(file));
        let via_super = root_paths_via_super(&text, depth).into_iter();
        let via_super = via_super.filter(|name| layer_of(name).is_some());
        for target in crate_paths(&text).into_iter().chain(via_super) {
            if ROOT_ITEMS.contains(&target.as_str()) {
                continue;
            }
            let to = layer_of(&target)
                .unwrap_or_else(|| panic!("{file}: crate::{target} names no known module"));
            if to > from {
                wrong.push(format!("{file}: `{module}` uses crate::{target}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports back up the flow:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_paths_and_skips_comments() {
    let text =
        "use crate::plan::{self, Decision};\nlet x = crate::clock::now(); // crate::daemon\n";
    assert_eq!(crate_paths(text), ["plan", "clock"]);
    // `super::` paths that climb to the root name a top-level module; others stay inside.
    let text = "use super::super::daemon::Event;\nuse super::schedule;\n// super::super::modes\n";
    assert_eq!(root_paths_via_super(text, 2), ["daemon"]);
    assert_eq!(root_paths_via_super(text, 1), ["daemon", "schedule"]);
    let src = Path::new("/r/src");
    assert_eq!(depth_of(src, Path::new("/r/src/lib.rs")), 0);
    assert_eq!(depth_of(src, Path::new("/r/src/plan/mod.rs")), 1);
    assert_eq!(depth_of(src, Path::new("/r/src/clock.rs")), 1);
    assert_eq!(
        depth_of(src, Path::new("/r/src/plan/transition/tests.rs")),
        3
    );
    assert_eq!(layer_of("state"), Some(3));
    assert_eq!(layer_of("nowhere"), None);
}
