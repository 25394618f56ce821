//! The YAML reader as an operator meets it: every problem of a file in one pass (issue 25),
//! in the manifest's words with invisible characters shown (audit N16), and a shard that
//! keeps only its own instances (audit N15).

use super::*;

const PATH: &str = "/srv/avatar/manifest.yaml";

fn no_env(_: &str) -> Option<String> {
    None
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, Path::new(PATH), &no_env) {
        Ok(manifest) => panic!("expected an error, got {manifest:?}"),
        Err(e) => e.problems,
    }
}

/// `(line, kind label, message)` of each problem, in the order reported.
fn listed(text: &str) -> Vec<(u64, &'static str, String)> {
    problems(text)
        .into_iter()
        .map(|p| (p.line.unwrap_or(0), p.kind.label(), p.message))
        .collect()
}

#[test]
fn every_problem_of_a_manifest_is_listed_in_one_pass_by_line() {
    // Five mistakes of four kinds: three typo keys, a value of the wrong type, a bad id,
    // a duplicate id and a bad value. Before, this took one run per layer.
    let text = "\
minIntreval: 10s
quality: \"90\"
instances:
  - idInstance: 1101000001
    apiTokenEnv: T
    pictrue: a.jpg
  - idInstance: 12ab
    apiTokenEnv: T
    picture: b.jpg
  - idInstance: 1101000003
    apiTokenEnv: T
    picture: c.jpg
    drfit: heal
  - idInstance: 1101000003
    apiTokenEnv: T
    picture: d.jpg
    fit: squash
";
    let all = listed(text);
    let lines: Vec<u64> = all.iter().map(|(line, _, _)| *line).collect();
    assert_eq!(lines, [1, 2, 4, 6, 7, 13, 14, 17], "{all:#?}");
    let expect = [
        (
            "unknown-key",
            "unknown key `minIntreval`; did you mean `minInterval`?",
        ),
        ("yaml", "`quality` must be a whole number from 1 to 100"),
        ("missing-key", "the instance has no `picture`"),
        (
            "unknown-key",
            "unknown key `pictrue`; did you mean `picture`?",
        ),
        ("invalid-id", "idInstance"),
        ("unknown-key", "unknown key `drfit`; did you mean `drift`?"),
        (
            "duplicate-id",
            "duplicate idInstance (first defined at line 10)",
        ),
        ("invalid-option", "fit: `squash` is not a fit"),
    ];
    for ((_, kind, message), (want_kind, want)) in all.iter().zip(expect) {
        assert_eq!(*kind, want_kind, "{message}");
        assert!(message.starts_with(want), "`{message}` is not `{want}…`");
    }
    // The instance a problem is in is named (once its id is known).
    let named: Vec<Option<String>> = problems(text).into_iter().map(|p| p.instance).collect();
    assert_eq!(named[3].as_deref(), Some("1101000001"));
    assert_eq!(named[5].as_deref(), Some("1101000003"));
}

#[test]
fn a_key_far_from_any_known_one_lists_the_keys_of_its_level() {
    let all = listed("colour: red\ninstances: []\n");
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(
        all[0].2.contains("the keys here are apiUrl, minInterval"),
        "{all:#?}"
    );
}

#[test]
fn n16_type_errors_speak_the_manifests_words() {
    let instance = "instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n";
    for (written, want) in [
        (
            "quality: \"90\"",
            "`quality` must be a whole number from 1 to 100, not the quoted text \"90\" \
             (write it without quotes: `quality: 90`)",
        ),
        (
            "quality: 0x5a",
            "`quality` must be a whole number from 1 to 100, not `0x5a`",
        ),
        ("quality: 300", "quality 300 is out of range: 1 to 100"),
        (
            "size: 1_000",
            "`size` must be a whole number from 16 to 4096, not `1_000`",
        ),
        (
            "size: -5",
            "`size` must be a whole number from 16 to 4096, not `-5`",
        ),
        (
            "size: 64.0",
            "`size` must be a whole number from 16 to 4096, not `64.0`",
        ),
        ("adopt: yes", "`adopt` must be true or false, not `yes`"),
        (
            "adopt: \"false\"",
            "`adopt` must be true or false, not the quoted text \"false\" (write it without \
             quotes: `adopt: false`)",
        ),
        (
            "fit: [cover]",
            "`fit` must be one of: none, cover, contain, face, not a list",
        ),
        (
            "apiUrl:",
            "`apiUrl` must be a URL such as https://api.green-api.com, not nothing",
        ),
        (
            "drift: {mode: heal}",
            "`drift` must be one of: off, warn, heal, not a mapping",
        ),
    ] {
        let all = listed(&format!("{written}\n{instance}"));
        assert_eq!(all.len(), 1, "{written}: {all:#?}");
        let (line, _, message) = &all[0];
        assert_eq!(*line, 1, "{written}");
        assert!(message.starts_with(want), "{written}: `{message}`");
        for rust in ["u8", "u32", "Option", "expected", "invalid type", "struct"] {
            assert!(
                !message.contains(rust),
                "{written}: `{message}` speaks Rust"
            );
        }
    }
    // The same values, written as the manifest means them, are taken.
    let good = parse(
        &format!("quality: 90\nsize: 320\nadopt: false\n{instance}"),
        Path::new(PATH),
        &no_env,
    )
    .unwrap();
    assert_eq!(good.instances[0].processing.quality, 90);
    assert!(!good.adopt);
}

#[test]
fn n16_shapes_a_manifest_cannot_have_are_named() {
    let cases = [
        ("", "the manifest is empty"),
        ("- a\n- b\n", "the manifest must be a mapping of keys"),
        (
            "apiUrl: https://x.example\n",
            "no instances: the manifest needs a list `instances:`",
        ),
        ("instances: 5\n", "instances must be a list of instances"),
        (
            "instances:\n  - just text\n",
            "each instance must be a mapping of keys",
        ),
        (
            "instances: []\n---\ninstances: []\n",
            "the manifest holds a second YAML document",
        ),
    ];
    for (text, want) in cases {
        let all = listed(text);
        assert_eq!(all.len(), 1, "{text:?}: {all:#?}");
        assert!(all[0].2.starts_with(want), "{text:?}: `{}`", all[0].2);
    }
}

#[test]
fn n16_invisible_and_bidi_characters_are_shown_escaped() {
    let text = "instances:\n  - id\u{200B}Instance: \"1\"\n    idInstance: \"2\"\n    \
                apiTokenEnv: T\n    picture: \"a\u{202E}gpj.exe\"\n    fit: \"co\u{FEFF}ver\"\n";
    let all = listed(text);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(
        all[0].2,
        "unknown key `id<U+200B>Instance`; did you mean `idInstance`?"
    );
    assert!(
        all[1].2.contains("`co<U+FEFF>ver` is not a fit"),
        "{all:#?}"
    );
    for (_, _, message) in &all {
        assert!(
            !message.contains(['\u{200B}', '\u{202E}', '\u{FEFF}']),
            "{message}"
        );
    }
}

#[test]
fn anchors_aliases_and_merge_keys_work_as_yaml_says() {
    let text = "\
instances:
  - &first
    idInstance: 1101000001
    apiTokenEnv: T
    picture: &logo logo.png
    fit: cover
  - <<: *first
    idInstance: 1101000002
    fit: contain
  - idInstance: 1101000003
    apiTokenEnv: T
    picture: *logo
";
    let manifest = parse(text, Path::new(PATH), &no_env).unwrap();
    let got: Vec<(&str, &str, Fit)> = manifest
        .instances
        .iter()
        .map(|i| (i.id.as_str(), i.picture.written.as_str(), i.processing.fit))
        .collect();
    assert_eq!(
        got,
        [
            ("1101000001", "logo.png", Fit::Cover),
            ("1101000002", "logo.png", Fit::Contain),
            ("1101000003", "logo.png", Fit::None),
        ]
    );
}

/// A manifest of `n` instances with ids from 1101000001.
fn fleet(n: u32, extra: &str) -> String {
    let mut text = String::from("instances:\n");
    for i in 1..=n {
        text.push_str(&format!(
            "  - idInstance: {}\n    apiTokenEnv: T\n    picture: p{i}.png\n{extra}",
            1_101_000_000 + i
        ));
    }
    text
}

#[test]
fn n15_a_shard_keeps_only_its_own_instances_and_counts_them_all() {
    let text = fleet(300, "");
    let path = Path::new(PATH);
    let all = from_bytes_in(text.as_bytes(), path, None, &no_env).unwrap();
    assert_eq!((all.instances.len(), all.written), (300, 300));
    let mut seen = 0;
    for index in 0..3 {
        let shard: Shard = format!("{index}/3").parse().unwrap();
        let mine = from_bytes_in(text.as_bytes(), path, Some(shard), &no_env).unwrap();
        assert_eq!(mine.written, 300);
        assert!(mine.instances.iter().all(|i| shard.contains(&i.id)));
        let expected = all
            .instances
            .iter()
            .filter(|i| shard.contains(&i.id))
            .count();
        assert_eq!(mine.instances.len(), expected);
        assert!(expected > 50, "a fair share: {expected}");
        seen += expected;
    }
    assert_eq!(seen, 300);
}

#[test]
fn n15_every_shard_refuses_a_misshapen_manifest_and_checks_its_own_values() {
    let path = Path::new(PATH);
    let shard = |index: u32| -> Shard { format!("{index}/2").parse().unwrap() };
    let owner = |id: &str| shard_of(id, 2);
    // A typo key in one instance: every shard refuses the manifest, as a whole run does.
    let typo = fleet(4, "").replacen("picture: p4.png", "pictrue: p4.png", 1);
    for index in 0..2 {
        let err = from_bytes_in(typo.as_bytes(), path, Some(shard(index)), &no_env).unwrap_err();
        assert!(err.has(ProblemKind::UnknownKey), "shard {index}: {err}");
    }
    // A bad value is the business of the shard that holds the instance.
    let bad = fleet(4, "").replacen(
        "picture: p4.png\n",
        "picture: p4.png\n    drift: sometimes\n",
        1,
    );
    let holder = owner("1101000004");
    let other = 1 - holder;
    assert!(from_bytes_in(bad.as_bytes(), path, Some(shard(holder)), &no_env).is_err());
    let fine = from_bytes_in(bad.as_bytes(), path, Some(shard(other)), &no_env).unwrap();
    assert_eq!(fine.written, 4);
}
