//! The manifest's JSON Schema (`schema/manifest.schema.json`, made from the reader's key
//! list), checked by an independent validator: `check-jsonschema` from PyPI, which
//! `.ci/run` installs and runs these with `--ignored`. Every example manifest the project
//! ships validates, and each mistake avatar-sync refuses that a schema can see is refused
//! by the schema too, so an editor marks it before `--check` does.

use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn check_jsonschema(files: &[PathBuf]) -> Output {
    Command::new("check-jsonschema")
        .arg("--schemafile")
        .arg(root().join("schema/manifest.schema.json"))
        .args(files)
        .output()
        .expect("check-jsonschema (pip install check-jsonschema)")
}

#[test]
#[ignore = "needs check-jsonschema (PyPI); .ci/run runs it"]
fn the_schema_is_draft_07_and_every_shipped_manifest_validates() {
    let meta = Command::new("check-jsonschema")
        .arg("--check-metaschema")
        .arg(root().join("schema/manifest.schema.json"))
        .output()
        .expect("check-jsonschema");
    assert!(meta.status.success(), "{meta:?}");
    let shipped: Vec<PathBuf> = [
        "examples/manifest.yaml",
        "examples/sandbox.yaml",
        "deploy/kubernetes/overlays/configmap/manifest.yaml",
    ]
    .iter()
    .map(|rel| root().join(rel))
    .collect();
    let out = check_jsonschema(&shipped);
    assert!(out.status.success(), "{out:?}");
}

#[test]
#[ignore = "needs check-jsonschema (PyPI); .ci/run runs it"]
fn the_schema_refuses_what_the_reader_refuses_and_takes_what_it_takes() {
    let world = World::new(Duration::from_secs(10));
    world.write("a.jpg", &jpeg(1));
    let instance =
        "  - idInstance: \"1101000001\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n";
    let good = [
        ("the least manifest", format!("instances:\n{instance}")),
        (
            "an unquoted id, every top key",
            "apiUrl: https://api.green-api.com\nminInterval: 1h 30m\nresyncInterval: 10m\n\
             adopt: false\ndrift: heal\ndriftInterval: 250ms\nfit: cover\nsize: 640\n\
             background: \"#A0b0C0\"\nquality: 90\ninstances:\n  - idInstance: 1101000001\n    \
             apiTokenFile: t.token\n    picture: a.jpg\n    suspend: true\n"
                .to_owned(),
        ),
        (
            "a rollout and windows",
            format!(
                "rollout:\n  waves: [1, 10%, 100%]\n  verify: true\n  maxFailures: 5%\n  \
                 pause: 10m\nwindows:\n  - deny: \"0 9 * * 1-5\"\n    duration: 8h\n    \
                 timezone: Europe/Berlin\n  - allow: \"0 22 * * *\"\n    duration: 8h\n\
                 instances:\n{instance}    canary: true\n"
            ),
        ),
        (
            "receivers",
            format!(
                "notify:\n  - url: https://hooks.slack.com/services/T0/B0/X\n    format: slack\n    \
                 events: [failed, drifted, halted, rollout]\n    after: 3\n  - url: \
                 http://127.0.0.1:8080/hook\n    secretFile: hook.secret\ninstances:\n{instance}"
            ),
        ),
    ];
    for (name, yaml) in good {
        world.write_manifest(&yaml);
        let schema = check_jsonschema(&[world.path("manifest.yaml")]);
        assert!(schema.status.success(), "{name}: {schema:?}");
        let check = world.run(&["--check"]);
        assert_eq!(check.code, 0, "{name}: {check:?}");
    }
    let bad = [
        (
            "a misspelt top key",
            format!("minIntervl: 10s\ninstances:\n{instance}"),
        ),
        (
            "a misspelt instance key",
            format!("instances:\n{instance}    qualty: 90\n"),
        ),
        (
            "no instances",
            "apiUrl: https://api.green-api.com\n".to_owned(),
        ),
        (
            "no picture",
            "instances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: T\n".to_owned(),
        ),
        (
            "no token",
            "instances:\n  - idInstance: \"1101000001\"\n    picture: a.jpg\n".to_owned(),
        ),
        (
            "two tokens",
            format!("instances:\n{instance}    apiTokenFile: t.token\n"),
        ),
        (
            "a quoted number",
            format!("quality: \"90\"\ninstances:\n{instance}"),
        ),
        (
            "a number out of range",
            format!("size: 8\ninstances:\n{instance}"),
        ),
        (
            "a fit that is not one",
            format!("fit: stretch\ninstances:\n{instance}"),
        ),
        (
            "a quoted boolean",
            format!("adopt: \"false\"\ninstances:\n{instance}"),
        ),
        (
            "a colour by name",
            format!("background: red\ninstances:\n{instance}"),
        ),
        (
            "a duration without a unit",
            format!("minInterval: \"10\"\ninstances:\n{instance}"),
        ),
        (
            "an id with a letter",
            "instances:\n  - idInstance: \"11x\"\n    apiTokenEnv: T\n    picture: a.jpg\n"
                .to_owned(),
        ),
        (
            "an id starting with 0",
            "instances:\n  - idInstance: \"0110\"\n    apiTokenEnv: T\n    picture: a.jpg\n"
                .to_owned(),
        ),
        (
            "a URL that is not one",
            format!("apiUrl: api.green-api.com\ninstances:\n{instance}"),
        ),
        (
            "a misspelt rollout key",
            format!("rollout:\n  wave: [1, 100%]\ninstances:\n{instance}"),
        ),
        (
            "a wave that is neither a count nor a percentage",
            format!("rollout:\n  waves: [1, half]\ninstances:\n{instance}"),
        ),
        (
            "a window that neither allows nor denies",
            format!("windows:\n  - duration: 1h\ninstances:\n{instance}"),
        ),
        (
            "a window without a duration",
            format!("windows:\n  - deny: \"0 9 * * *\"\ninstances:\n{instance}"),
        ),
        (
            "a receiver without a url",
            format!("notify:\n  - format: slack\ninstances:\n{instance}"),
        ),
        (
            "an event that is not one",
            format!(
                "notify:\n  - url: https://h.example/x\n    events: [sent]\ninstances:\n{instance}"
            ),
        ),
        (
            "an event named twice",
            format!(
                "notify:\n  - url: https://h.example/x\n    events: [failed, failed]\ninstances:\n{instance}"
            ),
        ),
        (
            "a receiver told after no failure",
            format!("notify:\n  - url: https://h.example/x\n    after: 0\ninstances:\n{instance}"),
        ),
        (
            "a cron schedule of three fields",
            format!("windows:\n  - deny: \"0 9 *\"\n    duration: 1h\ninstances:\n{instance}"),
        ),
    ];
    for (name, yaml) in bad {
        world.write_manifest(&yaml);
        let schema = check_jsonschema(&[world.path("manifest.yaml")]);
        assert!(
            !schema.status.success(),
            "{name}: the schema took it: {schema:?}"
        );
        let check = world.run(&["--check"]);
        assert_eq!(check.code, 1, "{name}: avatar-sync took it: {check:?}");
    }
}

#[test]
#[ignore = "needs check-jsonschema (PyPI); .ci/run runs it"]
fn the_ci_examples_are_valid_github_and_gitlab_pipelines() {
    for (schema, file) in [
        ("vendor.github-workflows", "examples/ci/github-actions.yml"),
        ("vendor.gitlab-ci", "examples/ci/gitlab-ci.yml"),
    ] {
        // check-jsonschema ships both schemas: no network.
        let out = Command::new("check-jsonschema")
            .args(["--builtin-schema", schema])
            .arg(root().join(file))
            .output()
            .expect("check-jsonschema");
        assert!(out.status.success(), "{file}: {out:?}");
    }
}
