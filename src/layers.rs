//! The architecture, checked: every `crate::` path in `src/` points at a module of the same
//! layer or of a layer before it in the data flow (the list in `lib.rs`), so no module
//! imports back up the flow and no cycle can form between stages.

use std::path::Path;

/// The layers, first to last; a module may use its own layer and the ones before it.
const LAYERS: &[&[&str]] = &[
    &["clock", "fsio", "layout", "outcome", "usage", "testing"],
    &["manifest"],
    &["picture"],
    &["state"],
    &["plan"],
    &["gateway"],
    &["report", "metrics"],
    &["reconcile"],
    &["daemon"],
    &["modes", "error", "cli", "logging", "layers", "lib", "main"],
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
        for target in crate_paths(&text) {
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
    assert_eq!(layer_of("state"), Some(3));
    assert_eq!(layer_of("nowhere"), None);
}
