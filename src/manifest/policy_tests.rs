//! `rollout:`, `windows:` and `canary:` as the contract writes them (section 12), and each
//! mistake named with its line.

use super::*;
use std::time::Duration;

const PATH: &str = "/srv/avatar/manifest.yaml";

fn read(text: &str) -> Result<Manifest, ManifestError> {
    parse(text, Path::new(PATH), &|_| None)
}

/// Each problem as `line: message`.
fn problems(text: &str) -> Vec<String> {
    match read(text) {
        Ok(_) => panic!("expected problems"),
        Err(e) => (e.problems.iter())
            .map(|p| format!("{}: {}", p.line.unwrap_or(0), p.message))
            .collect(),
    }
}

const INSTANCES: &str = "\
instances:
  - idInstance: \"1101000001\"
    apiTokenFile: t
    picture: a.png
    canary: true
  - idInstance: \"1101000002\"
    apiTokenFile: t
    picture: a.png
";

#[test]
fn the_contracts_rollout_and_windows_are_read_into_types() {
    let text = format!(
        "\
rollout:
  waves: [1, 10%, 100%]
  verify: true
  maxFailures: 5%
  pause: 10m
windows:
  - deny: \"0 9 * * 1-5\"
    duration: 8h
    timezone: Europe/Berlin
  - allow: \"0 22 * * *\"
    duration: 8h
{INSTANCES}"
    );
    let manifest = read(&text).unwrap();
    let rollout = manifest.rollout.unwrap();
    assert_eq!(
        rollout.waves,
        vec![Amount::Count(1), Amount::Percent(10), Amount::Percent(100)]
    );
    assert!(rollout.verify);
    assert_eq!(rollout.max_failures, Amount::Percent(5));
    assert_eq!(rollout.pause, Duration::from_secs(600));
    let windows = &manifest.windows.0;
    assert_eq!(windows.len(), 2);
    assert_eq!(windows[0].kind, WindowKind::Deny);
    assert_eq!(windows[0].zone_name, "Europe/Berlin");
    assert_eq!(windows[0].duration, Duration::from_secs(8 * 3600));
    assert_eq!(windows[1].kind, WindowKind::Allow);
    assert_eq!(windows[1].zone_name, "UTC");
    assert!(manifest.instances[0].canary);
    assert!(!manifest.instances[1].canary);
}

#[test]
fn without_rollout_and_windows_nothing_changes() {
    let manifest = read(INSTANCES).unwrap();
    assert!(manifest.rollout.is_none());
    assert!(manifest.windows.is_empty());
}

#[test]
fn rollout_defaults_are_one_wave_no_verify_no_failure_no_pause() {
    let manifest = read(&format!("rollout:\n  verify: true\n{INSTANCES}")).unwrap();
    let rollout = manifest.rollout.unwrap();
    assert_eq!(rollout.waves, vec![Amount::Percent(100)]);
    assert_eq!(rollout.max_failures, Amount::Count(0));
    assert_eq!(rollout.pause, Duration::ZERO);
}

#[test]
fn each_rollout_mistake_is_named_at_its_line() {
    let text = format!(
        "\
rollout:
  waves: [10%, 5%, ten]
  maxFailures: lots
  pause: soon
  verfy: true
{INSTANCES}"
    );
    let found = problems(&text);
    assert_eq!(found.len(), 5, "{found:#?}");
    assert!(
        found[0].starts_with("2: ") && found[0].contains("`ten` is neither"),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("2: ") && p.contains("cumulative")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("3: ") && p.contains("maxFailures")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("4: ") && p.contains("rollout.pause")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("5: ") && p.contains("did you mean `verify`")),
        "{found:#?}"
    );
    let found = problems(&format!("rollout: [1, 2]\n{INSTANCES}"));
    assert!(
        found[0].starts_with("1: `rollout` must be a mapping of waves"),
        "{found:#?}"
    );
    let found = problems(&format!("rollout:\n  waves: [0, 100%]\n{INSTANCES}"));
    assert!(found[0].contains("would upload nothing"), "{found:#?}");
}

#[test]
fn each_window_mistake_is_named_at_its_line() {
    let text = format!(
        "\
windows:
  - deny: \"0 9 * *\"
    duration: 8h
  - allow: \"0 9 * * *\"
    deny: \"0 9 * * *\"
    duration: 1h
  - deny: \"0 9 * * *\"
    duration: 1h
    timezone: Mars/Olympus
  - deny: \"0 9 * * *\"
  - duration: 1h
{INSTANCES}"
    );
    let found = problems(&text);
    assert_eq!(found.len(), 5, "{found:#?}");
    assert!(
        found[0].starts_with("2: windows: deny: `0 9 * *`") && found[0].contains("five fields")
    );
    assert!(found[1].starts_with("4: a window is either `allow` or `deny`"));
    assert!(found[2].starts_with("9: windows: deny: timezone `Mars/Olympus`"));
    assert!(
        found[3].starts_with("10: `windows` has no `duration`"),
        "{found:#?}"
    );
    assert!(
        found[4].starts_with("11: a window needs `allow` or `deny`"),
        "{found:#?}"
    );
}

#[test]
fn canary_is_a_boolean() {
    let text = INSTANCES.replace("canary: true", "canary: \"yes\"");
    let found = problems(&text);
    assert!(
        found[0].starts_with("5: `canary` must be true or false"),
        "{found:#?}"
    );
}
