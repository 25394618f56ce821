//! The annotated example manifest is parsed and checked, so it never rots.

use crate::util::{BIN, to_run};
use avatar_sync::manifest::{self, TokenSource};
use std::path::Path;
use std::process::Command;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/manifest.yaml");

#[test]
fn the_example_manifest_parses_into_what_its_comments_say() {
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    let env = |name: &str| {
        (name == "CREDENTIALS_DIRECTORY").then(|| "/run/credentials/avatar-sync.service".to_owned())
    };
    let m = manifest::parse(&text, Path::new(EXAMPLE), &env).unwrap();
    assert_eq!(m.min_interval, std::time::Duration::from_secs(10));
    assert_eq!(m.resync_interval, std::time::Duration::from_secs(600));
    let ids: Vec<&str> = m.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        ["1101000001", "1101000002", "1101000003", "1101000004"]
    );
    assert_eq!(
        m.instances[0].api_url.as_str(),
        "https://7103.api.greenapi.com"
    );
    assert_eq!(m.instances[1].api_url.as_str(), "https://api.green-api.com");
    match &m.instances[0].token {
        TokenSource::File(Ok(path)) => {
            assert_eq!(
                path,
                Path::new("/run/credentials/avatar-sync.service/support.token")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&m.instances[1].token, TokenSource::Env(name) if name == "SALES_TOKEN"));
    assert!(matches!(&m.instances[2].token, TokenSource::Inline(_)));
    assert!(m.instances[3].suspend);
    assert!(m.instances[0].canary && !m.instances[1].canary);
    let rollout = m.rollout.as_ref().unwrap();
    assert_eq!(rollout.waves.len(), 3);
    assert!(rollout.verify);
    assert_eq!(rollout.pause, std::time::Duration::from_secs(600));
    assert_eq!(m.windows.0.len(), 1);
    assert_eq!(m.windows.0[0].zone_name, "Europe/Berlin");
    use avatar_sync::picture::process::Fit;
    assert_eq!(m.instances[0].processing.fit, Fit::None);
    assert_eq!(m.instances[1].processing.fit, Fit::Cover);
    assert_eq!(m.instances[1].processing.size, 640);
    assert_eq!(m.instances[1].processing.background, [255, 255, 255]);
    assert_eq!(m.instances[1].processing.quality, 90);
    assert_eq!(m.warnings.len(), 1, "the inline token is warned about");
    let support = m.instances[0].picture.path.as_ref().unwrap();
    assert!(
        support.ends_with("examples/pictures/support.jpg"),
        "{}",
        support.display()
    );
}

#[test]
fn the_example_manifest_passes_check_where_secrets_are_absent() {
    let output = Command::new(BIN)
        .env_clear()
        .args(["--check", "--json", "--manifest", EXAMPLE])
        .output()
        .unwrap();
    let run = to_run(output);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["summary"]["valid"], 3, "{doc:#}");
    assert_eq!(doc["summary"]["suspended"], 1, "{doc:#}");
    assert_eq!(doc["summary"]["failed"], 0, "{doc:#}");
    // The inline token, and two token sources absent here (CI has no secrets).
    assert_eq!(doc["summary"]["warnings"], 3, "{doc:#}");
    assert!(
        doc["warnings"][0]
            .as_str()
            .unwrap()
            .contains("manifest.yaml:78"),
        "{doc:#}"
    );
}

/// Every `avatar-sync` command line of the CI examples (`examples/ci/`), its variables
/// given a value, is one the binary's parser takes: the examples cannot name a flag that
/// does not exist.
#[test]
fn the_ci_examples_run_command_lines_avatar_sync_accepts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci");
    let mut seen = 0;
    for file in ["github-actions.yml", "gitlab-ci.yml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut modes = Vec::new();
        for line in text.lines() {
            let Some(at) = line.find("avatar-sync --") else {
                continue;
            };
            // GitHub's `${{ expression }}` holds spaces: one word, as the runner makes it.
            let mut line = line[at..].to_owned();
            while let Some(start) = line.find("${{") {
                let end = line[start..]
                    .find("}}")
                    .map_or(line.len(), |e| start + e + 2);
                line.replace_range(start..end, "$X");
            }
            // The words up to a redirection or another command.
            let words: Vec<String> = (line.split_whitespace())
                .take_while(|w| !matches!(*w, ">" | "||" | "|" | "&&"))
                .map(|w| w.trim_matches('"').to_owned())
                .map(|w| {
                    if w.contains('$') {
                        "main..HEAD".to_owned()
                    } else {
                        w
                    }
                })
                .collect();
            let args = avatar_sync::cli::Args::parse_from_args(&words)
                .unwrap_or_else(|e| panic!("{file}: {line}\n{e}"));
            modes.push(args.mode());
            seen += 1;
        }
        use avatar_sync::cli::Mode;
        assert_eq!(modes, [Mode::Check, Mode::Plan], "{file}");
    }
    assert_eq!(seen, 4);
}
