//! The manifest as the contract writes it: defaults, paths, `${NAME}`, tokens, and every
//! error naming the file and the line.

use super::expand::expand_vars;
use super::*;
use std::path::PathBuf;
use std::time::Duration;

const PATH: &str = "/srv/avatar/manifest.yaml";
const TOKEN: &str = "SeCrEtToKeN1234567890abcdef";

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn ok(text: &str) -> Manifest {
    match parse(text, Path::new(PATH), &no_env) {
        Ok(manifest) => manifest,
        Err(e) => panic!("expected a valid manifest, got:\n{e}"),
    }
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, Path::new(PATH), &no_env) {
        Ok(manifest) => panic!("expected an error, got {manifest:?}"),
        Err(e) => e.problems,
    }
}

/// The only problem of `text`, checked to be of `kind` and to name the file and `line`,
/// both as a field and at the start of its text.
fn one_problem_at(text: &str, line: u64, kind: ProblemKind) -> Problem {
    let all = problems(text);
    assert_eq!(all.len(), 1, "expected one problem, got {all:#?}");
    let problem = all.into_iter().next().unwrap();
    assert_eq!(problem.kind, kind, "{problem}");
    assert_eq!(problem.path, Path::new(PATH));
    assert_eq!(problem.line, Some(line), "{problem}");
    let shown = problem.to_string();
    assert!(
        shown.starts_with(&format!("{PATH}:{line}: ")),
        "`{shown}` does not start with {PATH}:{line}:"
    );
    assert!(!shown.contains('\n'), "not one line: {shown:?}");
    problem
}

fn inline_token(instance: &Instance) -> &ApiToken {
    match &instance.token {
        TokenSource::Inline(token) => token,
        other => panic!("expected an inline token, got {other:?}"),
    }
}

#[test]
fn an_instance_alone_gets_the_documented_defaults() {
    let manifest = ok(
        "instances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: SUPPORT_TOKEN\n    picture: support.jpg\n",
    );
    assert_eq!(manifest.path, Path::new(PATH));
    assert_eq!(manifest.min_interval, Duration::from_secs(10));
    assert_eq!(manifest.resync_interval, Duration::from_secs(600));
    assert!(manifest.warnings.is_empty(), "{:?}", manifest.warnings);
    assert_eq!(manifest.instances.len(), 1);
    let instance = &manifest.instances[0];
    assert_eq!(instance.id.as_str(), "1101000001");
    assert_eq!(instance.api_url.as_str(), "https://api.green-api.com");
    assert_eq!(instance.api_url.as_str(), DEFAULT_API_URL);
    assert!(!instance.suspend);
    assert_eq!(instance.line, 2);
    assert!(matches!(&instance.token, TokenSource::Env(name) if name == "SUPPORT_TOKEN"));
    assert_eq!(instance.picture.written, "support.jpg");
    assert_eq!(
        instance.picture.path,
        Ok(PathBuf::from("/srv/avatar/support.jpg"))
    );
}

const FULL: &str = r#"# Which picture each GREEN-API instance should show.
apiUrl: https://eu.api.example.com/
minInterval: 15s
resyncInterval: 1h30m
instances:
  - idInstance: "1101000001"
    apiTokenFile: ${CREDENTIALS_DIRECTORY}/support.token
    picture: pictures/support.jpg
    apiUrl: https://7103.api.greenapi.com/
  - idInstance: 1101000002
    apiTokenEnv: SALES_TOKEN
    picture: ${PICTURES}/sales.jpg
    suspend: true
  - idInstance: "1101000003"
    apiTokenFile: tokens/ops.token
    picture: /abs/ops.jpg
    suspend: false
"#;

#[test]
fn a_full_manifest_is_read_into_typed_values() {
    let env = env_of(&[
        (
            "CREDENTIALS_DIRECTORY",
            "/run/credentials/avatar-sync.service",
        ),
        ("PICTURES", "art"),
    ]);
    let manifest = parse(FULL, Path::new(PATH), &env).unwrap();
    assert_eq!(manifest.min_interval, Duration::from_secs(15));
    assert_eq!(manifest.resync_interval, Duration::from_secs(5400));
    assert!(manifest.warnings.is_empty(), "{:?}", manifest.warnings);
    let ids: Vec<&str> = manifest.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["1101000001", "1101000002", "1101000003"]);
    let lines: Vec<u64> = manifest.instances.iter().map(|i| i.line).collect();
    assert_eq!(lines, [6, 10, 14]);

    let support = &manifest.instances[0];
    // The per-instance apiUrl wins over the top-level one; the trailing `/` is dropped.
    assert_eq!(support.api_url.as_str(), "https://7103.api.greenapi.com");
    match &support.token {
        TokenSource::File(Ok(path)) => assert_eq!(
            path,
            Path::new("/run/credentials/avatar-sync.service/support.token")
        ),
        other => panic!("expected a token file, got {other:?}"),
    }
    assert_eq!(support.picture.written, "pictures/support.jpg");
    assert_eq!(
        support.picture.path,
        Ok(PathBuf::from("/srv/avatar/pictures/support.jpg"))
    );
    assert!(!support.suspend);

    let sales = &manifest.instances[1];
    // A YAML integer idInstance is accepted.
    assert_eq!(sales.id, InstanceId::parse("1101000002").unwrap());
    // The top-level apiUrl, trailing `/` dropped.
    assert_eq!(sales.api_url.as_str(), "https://eu.api.example.com");
    assert!(matches!(&sales.token, TokenSource::Env(name) if name == "SALES_TOKEN"));
    assert_eq!(sales.picture.written, "${PICTURES}/sales.jpg");
    assert_eq!(
        sales.picture.path,
        Ok(PathBuf::from("/srv/avatar/art/sales.jpg"))
    );
    assert!(sales.suspend);

    let ops = &manifest.instances[2];
    match &ops.token {
        TokenSource::File(Ok(path)) => {
            assert_eq!(path, Path::new("/srv/avatar/tokens/ops.token"));
        }
        other => panic!("expected a token file, got {other:?}"),
    }
    assert_eq!(ops.picture.path, Ok(PathBuf::from("/abs/ops.jpg")));
    assert!(!ops.suspend);
}

#[test]
fn a_manifest_in_the_current_folder_resolves_paths_against_it() {
    let text = "instances:\n  - idInstance: \"1\"\n    apiTokenFile: t.token\n    picture: p.jpg\n";
    let manifest = parse(text, Path::new("manifest.yaml"), &no_env).unwrap();
    let instance = &manifest.instances[0];
    assert_eq!(instance.picture.path, Ok(PathBuf::from("./p.jpg")));
    assert!(matches!(&instance.token, TokenSource::File(Ok(p)) if p == Path::new("./t.token")));
}

#[test]
fn an_inline_token_is_accepted_with_a_warning_at_its_line() {
    let text = format!(
        "instances:\n  - idInstance: \"1101000001\"\n    apiTokenInstance: {TOKEN}\n    picture: a.jpg\n"
    );
    let manifest = ok(&text);
    assert_eq!(inline_token(&manifest.instances[0]).expose(), TOKEN);
    assert_eq!(manifest.warnings.len(), 1);
    let warning = &manifest.warnings[0];
    assert_eq!(warning.line, Some(3));
    assert_eq!(warning.instance.as_deref(), Some("1101000001"));
    assert!(warning.message.contains("apiTokenInstance"), "{warning}");
    assert!(!warning.to_string().contains(TOKEN));
}

#[test]
fn an_unset_variable_in_picture_is_an_error_of_that_instance_only() {
    let text = "instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: ${UNSET_DIR}/a.jpg\n  - idInstance: \"2\"\n    apiTokenEnv: T\n    picture: b.jpg\n";
    let manifest = ok(text);
    assert_eq!(manifest.instances.len(), 2);
    let why = manifest.instances[0].picture.path.as_ref().unwrap_err();
    assert_eq!(
        why,
        &ExpandError::Unset {
            text: "${UNSET_DIR}/a.jpg".to_owned(),
            name: "UNSET_DIR".to_owned()
        }
    );
    assert_eq!(why.label(), "unset-variable");
    assert!(why.to_string().contains("UNSET_DIR"), "{why}");
    assert_eq!(manifest.instances[0].picture.written, "${UNSET_DIR}/a.jpg");
    assert_eq!(
        manifest.instances[1].picture.path,
        Ok(PathBuf::from("/srv/avatar/b.jpg"))
    );
}

#[test]
fn an_unset_variable_in_api_token_file_keeps_the_instance_with_a_failed_source() {
    let text = "instances:\n  - idInstance: \"1\"\n    apiTokenFile: ${CREDENTIALS_DIRECTORY}/a.token\n    picture: a.jpg\n";
    let manifest = ok(text);
    match &manifest.instances[0].token {
        TokenSource::File(Err(why)) => {
            assert!(
                matches!(why, ExpandError::Unset { name, .. } if name == "CREDENTIALS_DIRECTORY"),
                "{why}"
            );
        }
        other => panic!("expected File(Err), got {other:?}"),
    }
    // Resolving it says so, as "unavailable" (a warning under --check).
    match manifest.instances[0].token.resolve() {
        Err(TokenError::Unavailable(why)) => {
            assert!(why.contains("CREDENTIALS_DIRECTORY"), "{why}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Errors: each names the file and the line.

#[test]
fn yaml_that_does_not_parse_names_the_line() {
    let problem = one_problem_at(
        "minInterval: 10s\ninstances:\n  - idInstance: \"1\"\n    picture: [unclosed\n",
        4,
        ProblemKind::Yaml,
    );
    assert!(problem.instance.is_none());
    assert!(!problem.message.is_empty());
}

#[test]
fn an_unknown_top_level_key_is_an_error_at_its_line() {
    let problem = one_problem_at(
        "minInterval: 10s\ncolour: red\ninstances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n",
        2,
        ProblemKind::UnknownKey,
    );
    assert!(problem.message.contains("colour"), "{problem}");
}

#[test]
fn an_unknown_instance_key_is_an_error_at_its_line() {
    let problem = one_problem_at(
        "instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n    pictrue: b.jpg\n",
        5,
        ProblemKind::UnknownKey,
    );
    assert!(problem.message.contains("pictrue"), "{problem}");
}

#[test]
fn a_duplicate_yaml_key_is_an_error_at_its_line() {
    let problem = one_problem_at(
        "minInterval: 10s\ninstances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\nminInterval: 20s\n",
        6,
        ProblemKind::DuplicateKey,
    );
    assert!(problem.message.contains("minInterval"), "{problem}");
    assert!(
        !problem.message.contains("DuplicateKeyPolicy"),
        "advice for programmers leaked: {problem}"
    );
}

#[test]
fn a_duplicate_key_inside_an_instance_is_an_error_at_its_line() {
    let problem = one_problem_at(
        "instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n    picture: b.jpg\n",
        5,
        ProblemKind::DuplicateKey,
    );
    assert!(problem.message.contains("picture"), "{problem}");
}

#[test]
fn a_duplicate_id_instance_is_reported_at_the_second_and_names_the_first() {
    let text = "instances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: A\n    picture: a.jpg\n  - idInstance: 1101000001\n    apiTokenEnv: B\n    picture: b.jpg\n";
    let problem = one_problem_at(text, 5, ProblemKind::DuplicateId);
    assert_eq!(problem.instance.as_deref(), Some("1101000001"));
    assert!(
        problem.message.contains("duplicate idInstance"),
        "{problem}"
    );
    assert!(problem.message.contains("line 2"), "{problem}");
}

#[test]
fn an_id_instance_that_is_not_digits_is_an_error_at_its_line() {
    let problem = one_problem_at(
        "instances:\n  - apiTokenEnv: T\n    idInstance: \"11010a0001\"\n    picture: a.jpg\n",
        3,
        ProblemKind::InvalidId,
    );
    assert!(problem.message.contains("11010a0001"), "{problem}");
    assert!(problem.message.contains("digits"), "{problem}");
    for bad in ["", "-5", "12 34", "１２３"] {
        assert!(InstanceId::parse(bad).is_err(), "{bad:?} accepted");
    }
    assert_eq!(InstanceId::parse("0042").unwrap().as_str(), "0042");
}

#[test]
fn a_negative_integer_id_instance_is_an_error() {
    let problem = one_problem_at(
        "instances:\n  - idInstance: -1101000001\n    apiTokenEnv: T\n    picture: a.jpg\n",
        2,
        ProblemKind::InvalidId,
    );
    assert!(problem.message.contains("digits"), "{problem}");
    let problem = one_problem_at(
        "instances:\n  - idInstance: 1.5\n    apiTokenEnv: T\n    picture: a.jpg\n",
        2,
        ProblemKind::InvalidId,
    );
    assert!(problem.message.contains("`1.5`"), "{problem}");
}

#[test]
fn an_id_instance_is_its_digits_as_written_never_a_yaml_integer_form() {
    // YAML reads 0x10 as 16 and 1_000 as 1000: the id would silently be another instance.
    for (written, shown) in [
        ("0x10", "0x10"),
        ("1_000", "1_000"),
        ("0o17", "0o17"),
        ("+5", "+5"),
    ] {
        let text = format!(
            "instances:\n  - idInstance: {written}\n    apiTokenEnv: T\n    picture: a.jpg\n"
        );
        let problem = one_problem_at(&text, 2, ProblemKind::InvalidId);
        assert!(problem.message.contains(shown), "{written}: {problem}");
    }
    // Digits as written are kept as written.
    let manifest = ok("instances:\n  - idInstance: 4200\n    apiTokenEnv: T\n    picture: a.jpg\n");
    assert_eq!(manifest.instances[0].id.as_str(), "4200");
}

#[test]
fn n14_an_id_instance_with_a_leading_zero_is_an_error() {
    // `5`, `05` and `005` would be three instances of one number.
    for written in ["05", "\"005\"", "0042", "\"0\""] {
        let text = format!(
            "instances:\n  - idInstance: {written}\n    apiTokenEnv: T\n    picture: a.jpg\n"
        );
        let problem = one_problem_at(&text, 2, ProblemKind::InvalidId);
        assert!(
            problem.message.contains("starts with 0"),
            "{written}: {problem}"
        );
    }
    let problem = one_problem_at(
        "instances:\n  - idInstance: \"0042\"\n    apiTokenEnv: T\n    picture: a.jpg\n",
        2,
        ProblemKind::InvalidId,
    );
    assert!(problem.message.contains("`42`"), "{problem}");
    // A record kept under such an id by an older release is still read.
    assert_eq!(InstanceId::parse("0042").unwrap().as_str(), "0042");
}

#[test]
fn a_missing_picture_is_an_error_naming_a_line() {
    let all = problems("instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n");
    assert_eq!(all.len(), 1, "{all:#?}");
    let problem = &all[0];
    assert_eq!(problem.kind, ProblemKind::MissingKey, "{problem}");
    assert!(problem.message.contains("picture"), "{problem}");
    // The instance is lines 2-3; the parser may point at either end of it.
    let line = problem.line.expect("a line");
    assert!((2..=3).contains(&line), "{problem}");
    assert!(problem.to_string().starts_with(&format!("{PATH}:{line}: ")));
}

#[test]
fn an_empty_picture_is_an_error_at_its_line() {
    let problem = one_problem_at(
        "instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: \"  \"\n",
        4,
        ProblemKind::EmptyPicture,
    );
    assert_eq!(problem.instance.as_deref(), Some("1"));
    assert!(problem.message.contains("picture"), "{problem}");
}

#[test]
fn no_token_source_is_an_error_at_the_instance() {
    let problem = one_problem_at(
        "instances:\n  - idInstance: \"1\"\n    picture: a.jpg\n",
        2,
        ProblemKind::TokenSource,
    );
    assert_eq!(problem.instance.as_deref(), Some("1"));
    assert!(problem.message.contains("no token"), "{problem}");
}

#[test]
fn two_token_sources_are_an_error_at_the_second() {
    let problem = one_problem_at(
        "instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n    apiTokenFile: t.token\n",
        5,
        ProblemKind::TokenSource,
    );
    assert_eq!(problem.instance.as_deref(), Some("1"));
    assert!(
        problem.message.contains("more than one token source"),
        "{problem}"
    );
}

#[test]
fn a_bad_inline_token_is_an_error_that_does_not_show_it() {
    let secret = "SeCrEt/ToKeN1234567890";
    let text = format!(
        "instances:\n  - idInstance: \"1\"\n    picture: a.jpg\n    apiTokenInstance: \"{secret}\"\n"
    );
    let err = parse(&text, Path::new(PATH), &no_env).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert_eq!(err.problems[0].line, Some(4));
    let shown = err.to_string();
    assert!(shown.starts_with(&format!("{PATH}:4: ")), "{shown}");
    assert!(shown.contains("`/`"), "{shown}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(!shown.contains("SeCrEt"), "{shown}");
    assert!(!format!("{err:?}").contains("SeCrEt"));
}

#[test]
fn an_api_token_env_that_is_not_a_variable_name_is_an_error_at_its_line() {
    let problem = one_problem_at(
        "instances:\n  - idInstance: \"1\"\n    picture: a.jpg\n    apiTokenEnv: 9-LIVES\n",
        4,
        ProblemKind::InvalidToken,
    );
    assert!(problem.message.contains("9-LIVES"), "{problem}");
}

#[test]
fn a_bad_api_url_is_an_error_at_its_line() {
    let problem = one_problem_at(
        "apiUrl: not a url\ninstances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n",
        1,
        ProblemKind::InvalidUrl,
    );
    assert!(problem.message.contains("not a url"), "{problem}");
    let problem = one_problem_at(
        "instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n    apiUrl: ftp://api.green-api.com\n",
        5,
        ProblemKind::InvalidUrl,
    );
    assert_eq!(problem.instance.as_deref(), Some("1"));
    assert!(problem.message.contains("https://"), "{problem}");
}

#[test]
fn plain_http_to_a_remote_host_is_refused() {
    let problem = one_problem_at(
        "instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n    apiUrl: http://api.green-api.com\n",
        5,
        ProblemKind::InvalidUrl,
    );
    assert!(problem.message.contains("loopback"), "{problem}");
    for remote in [
        "http://api.green-api.com",
        "http://10.0.0.1:8080",
        "http://localhost.evil.example",
        "http://[2001:db8::1]",
    ] {
        let err = ApiUrl::parse(remote).unwrap_err();
        assert!(err.contains("https://"), "{remote}: {err}");
    }
}

#[test]
fn plain_http_to_loopback_is_accepted() {
    for (written, kept) in [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://localhost", "http://localhost"),
        ("http://[::1]:9", "http://[::1]:9"),
        ("https://api.green-api.com/", "https://api.green-api.com"),
        ("https://host.example/base/", "https://host.example/base"),
    ] {
        assert_eq!(
            ApiUrl::parse(written).map(|u| u.to_string()),
            Ok(kept.to_owned()),
            "{written}"
        );
    }
    let manifest = ok(
        "apiUrl: http://[::1]:9/\ninstances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n",
    );
    assert_eq!(manifest.instances[0].api_url.as_str(), "http://[::1]:9");
}

#[test]
fn an_api_url_with_credentials_or_a_query_is_refused() {
    assert!(ApiUrl::parse("https://user:pw@api.green-api.com").is_err());
    assert!(ApiUrl::parse("https://api.green-api.com/?x=1").is_err());
    assert!(ApiUrl::parse("https://api.green-api.com/#frag").is_err());
}

#[test]
fn a_bad_min_interval_is_an_error_at_its_line() {
    let problem = one_problem_at(
        "instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\nminInterval: soon\n",
        5,
        ProblemKind::InvalidDuration,
    );
    assert!(problem.message.starts_with("minInterval"), "{problem}");
    assert!(problem.message.contains("soon"), "{problem}");
    let problem = one_problem_at(
        "minInterval: 0s\ninstances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n",
        1,
        ProblemKind::InvalidDuration,
    );
    assert!(problem.message.contains("more than 0"), "{problem}");
}

#[test]
fn a_bad_resync_interval_is_an_error_at_its_line() {
    let problem = one_problem_at(
        "resyncInterval: 10\ninstances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n",
        1,
        ProblemKind::InvalidDuration,
    );
    assert!(problem.message.starts_with("resyncInterval"), "{problem}");
}

#[test]
fn a_too_short_resync_interval_is_an_error_at_its_line() {
    let problem = one_problem_at(
        "instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\nresyncInterval: 500ms\n",
        5,
        ProblemKind::InvalidDuration,
    );
    assert!(problem.message.contains("resyncInterval"), "{problem}");
}

#[test]
fn several_problems_are_reported_together_in_line_order() {
    let text = "\
minInterval: never
instances:
  - idInstance: \"1\"
    picture: a.jpg
  - idInstance: \"x2\"
    apiTokenEnv: T
    picture: b.jpg
  - idInstance: \"3\"
    apiTokenEnv: T
    picture: c.jpg
    apiUrl: http://api.green-api.com
";
    let err = parse(text, Path::new(PATH), &no_env).unwrap_err();
    let lines: Vec<Option<u64>> = err.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [Some(1), Some(3), Some(5), Some(11)], "{err}");
    let kinds: Vec<ProblemKind> = err.problems.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            ProblemKind::InvalidDuration,
            ProblemKind::TokenSource,
            ProblemKind::InvalidId,
            ProblemKind::InvalidUrl
        ],
        "{err}"
    );
    assert_eq!(err.label(), "invalid-duration");
    assert!(err.has(ProblemKind::InvalidUrl) && !err.has(ProblemKind::Yaml));
    assert!(err.problems[0].message.contains("minInterval"));
    assert!(err.problems[1].message.contains("no token"));
    assert!(err.problems[2].message.contains("x2"));
    assert!(err.problems[3].message.contains("loopback"));
    let shown = err.to_string();
    let shown_lines: Vec<&str> = shown.lines().collect();
    assert_eq!(shown_lines.len(), 4, "{shown}");
    for (text, line) in shown_lines.iter().zip([1, 3, 5, 11]) {
        assert!(text.starts_with(&format!("{PATH}:{line}: ")), "{text}");
    }
    assert!(shown_lines[1].contains("instance 1: "), "{shown}");
}

#[test]
fn a_numeric_inline_token_is_taken_as_text() {
    // Written unquoted, a digits-only token is a YAML integer; it is still the token.
    let secret = "987654321987654321";
    let text = format!(
        "instances:\n  - idInstance: \"1\"\n    picture: a.jpg\n    apiTokenInstance: {secret}\n"
    );
    let manifest = ok(&text);
    assert_eq!(inline_token(&manifest.instances[0]).expose(), secret);
    assert!(!format!("{manifest:?}").contains(secret));
}

#[test]
fn a_non_scalar_inline_token_is_an_error_that_does_not_show_it() {
    let problem = one_problem_at(
        "instances:\n  - idInstance: \"1\"\n    apiTokenInstance: [SeCrEtToKeN\n    picture: a.jpg\n",
        // Where the parser finds the flow list broken: the line after the `[`.
        4,
        ProblemKind::Yaml,
    );
    assert!(!problem.to_string().contains("SeCrEt"), "{problem}");
}

// ---------------------------------------------------------------------------------------
// `${NAME}` expansion.

#[test]
fn expand_vars_replaces_each_variable() {
    let env = env_of(&[("A", "one"), ("B_2", "two"), ("EMPTY", "")]);
    assert_eq!(
        expand_vars("${A}/${B_2}/x", &env),
        Ok("one/two/x".to_owned())
    );
    assert_eq!(expand_vars("${A}${A}", &env), Ok("oneone".to_owned()));
    // Set to nothing is an error, as unset is (audit N16).
    assert!(expand_vars("pre${EMPTY}post", &env).is_err());
    assert_eq!(expand_vars("no vars", &env), Ok("no vars".to_owned()));
    assert_eq!(expand_vars("", &env), Ok(String::new()));
}

#[test]
fn expand_vars_keeps_a_lone_dollar() {
    let env = env_of(&[("A", "one")]);
    assert_eq!(expand_vars("$", &env), Ok("$".to_owned()));
    assert_eq!(expand_vars("a$b", &env), Ok("a$b".to_owned()));
    assert_eq!(expand_vars("$A/x", &env), Ok("$A/x".to_owned()));
    assert_eq!(expand_vars("cost$", &env), Ok("cost$".to_owned()));
    assert_eq!(expand_vars("$${A}", &env), Ok("$one".to_owned()));
}

#[test]
fn expand_vars_does_not_expand_a_value_again() {
    let env = env_of(&[("A", "${B}"), ("B", "no")]);
    assert_eq!(expand_vars("${A}", &env), Ok("${B}".to_owned()));
}

#[test]
fn expand_vars_refuses_an_unclosed_brace() {
    let err = expand_vars("dir/${NAME/x", &no_env).unwrap_err();
    assert_eq!(
        err,
        ExpandError::Unclosed {
            text: "dir/${NAME/x".to_owned()
        }
    );
    assert!(err.to_string().contains("closing"), "{err}");
    let env = env_of(&[("A", "one")]);
    assert!(expand_vars("${A}/${", &env).is_err());
}

#[test]
fn expand_vars_refuses_a_bad_name() {
    for text in ["${}", "${1A}", "${A-B}", "${A B}", "${Ä}"] {
        let err = expand_vars(text, &|_: &str| Some("value".to_owned())).unwrap_err();
        assert!(
            matches!(&err, ExpandError::BadName { text: t, .. } if t == text),
            "{text}: {err}"
        );
        assert_eq!(err.label(), "bad-variable");
    }
}

#[test]
fn expand_vars_names_an_unset_variable() {
    let err = expand_vars("${HOME_DIR}/a.jpg", &no_env).unwrap_err();
    assert!(
        matches!(&err, ExpandError::Unset { name, .. } if name == "HOME_DIR"),
        "{err}"
    );
    assert!(err.to_string().contains("HOME_DIR"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Tokens.

fn file_with(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn a_token_file_is_read_with_surrounding_whitespace_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(&dir, "a.token", &format!("  \t{TOKEN}\n\n"));
    let token = TokenSource::File(Ok(path)).resolve().unwrap();
    assert_eq!(token.expose(), TOKEN);
}

#[test]
fn an_unreadable_token_file_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.token");
    match TokenSource::File(Ok(missing.clone())).resolve() {
        Err(e @ TokenError::Unavailable(_)) => {
            assert_eq!(e.label(), "token-unavailable");
            assert!(
                e.to_string().contains(&missing.display().to_string()),
                "{e}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // A folder is not a token file either.
    assert!(matches!(
        TokenSource::File(Ok(dir.path().to_owned())).resolve(),
        Err(TokenError::Unavailable(_))
    ));
}

#[test]
fn a_token_file_with_a_bad_token_is_invalid_and_does_not_show_it() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content, shown) in [
        ("slash.token", "SeCrEtToKeN12/34567890\n", "`/`"),
        ("space.token", "SeCrEtToKeN12 34567890\n", "` `"),
        ("utf8.token", "SeCrEtToKeN12é34567890\n", "U+00E9"),
    ] {
        let path = file_with(&dir, name, content);
        match TokenSource::File(Ok(path)).resolve() {
            Err(e @ TokenError::Invalid(_)) => {
                assert_eq!(e.label(), "token-invalid");
                let text = e.to_string();
                assert!(text.contains(shown), "{text}");
                assert!(text.contains(name), "{text}");
                assert!(!text.contains("SeCrEt"), "{text}");
                assert!(!text.contains("34567890"), "{text}");
                assert!(!format!("{e:?}").contains("SeCrEt"));
            }
            other => panic!("{name}: expected Invalid, got {other:?}"),
        }
    }
    let path = file_with(&dir, "empty.token", " \n");
    assert!(matches!(
        TokenSource::File(Ok(path)).resolve(),
        Err(TokenError::Invalid(e)) if e.contains("empty")
    ));
}

#[test]
fn an_unset_token_variable_is_unavailable() {
    let name = "AVATAR_SYNC_TEST_TOKEN_THAT_IS_NEVER_SET_7F3A";
    assert!(std::env::var_os(name).is_none());
    match TokenSource::Env(name.to_owned()).resolve() {
        Err(TokenError::Unavailable(why)) => assert!(why.contains(name), "{why}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn a_token_variable_is_read_and_checked() {
    // The test process cannot set variables (unsafe), so use what cargo sets for tests.
    assert_eq!(
        std::env::var("CARGO_PKG_VERSION_MAJOR").as_deref(),
        Ok(env!("CARGO_PKG_VERSION_MAJOR"))
    );
    let token = TokenSource::Env("CARGO_PKG_VERSION_MAJOR".to_owned())
        .resolve()
        .unwrap();
    assert_eq!(token.expose(), env!("CARGO_PKG_VERSION_MAJOR"));

    // "avatar-sync" has a `-`: not a token.
    assert_eq!(
        std::env::var("CARGO_PKG_NAME").as_deref(),
        Ok("avatar-sync")
    );
    match TokenSource::Env("CARGO_PKG_NAME".to_owned()).resolve() {
        Err(TokenError::Invalid(why)) => {
            assert!(why.contains("CARGO_PKG_NAME"), "{why}");
            assert!(why.contains("`-`"), "{why}");
            assert!(!why.contains("avatar-sync"), "{why}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn an_inline_token_resolves_to_itself() {
    let token = ApiToken::parse(TOKEN).unwrap();
    assert_eq!(
        TokenSource::Inline(token).resolve().unwrap().expose(),
        TOKEN
    );
}

#[test]
fn a_token_is_ascii_letters_and_digits_only() {
    assert_eq!(
        ApiToken::parse(&format!(" {TOKEN}\n")).unwrap().expose(),
        TOKEN
    );
    for bad in [
        "a/b",
        "a b",
        "a-b",
        "a_b",
        "a%2Fb",
        "a?b",
        "a#b",
        "ab\u{0}",
        "ab\u{7f}c",
    ] {
        let err = ApiToken::parse(bad).unwrap_err();
        assert!(!err.contains(bad), "{bad:?}: {err}");
    }
    assert!(ApiToken::parse("").is_err());
    assert!(ApiToken::parse("  \n").is_err());
}

#[test]
fn a_token_prints_as_redacted() {
    let token = ApiToken::parse(TOKEN).unwrap();
    assert_eq!(format!("{token:?}"), "[redacted]");
    assert_eq!(format!("{token:#?}"), "[redacted]");
    assert_eq!(token.to_string(), "[redacted]");
    let source = TokenSource::Inline(token);
    assert!(!format!("{source:?}").contains(TOKEN));
}

#[test]
fn a_manifest_with_an_inline_token_does_not_print_it() {
    let text = format!(
        "instances:\n  - idInstance: \"1101000001\"\n    apiTokenInstance: {TOKEN}\n    picture: a.jpg\n"
    );
    let manifest = ok(&text);
    let debug = format!("{manifest:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains("[redacted]"), "{debug}");
    assert!(!format!("{manifest:#?}").contains(TOKEN));
}

#[test]
fn the_credentials_fingerprint_tells_credentials_apart_without_showing_them() {
    let url = ApiUrl::parse("https://api.green-api.com").unwrap();
    let other_url = ApiUrl::parse("https://7103.api.greenapi.com").unwrap();
    let token = ApiToken::parse(TOKEN).unwrap();
    let other_token = ApiToken::parse("SeCrEtToKeN1234567890abcdeg").unwrap();

    let print = credentials_fingerprint(&url, &token);
    assert_eq!(print.len(), 16, "{print}");
    assert!(
        print
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{print}"
    );
    assert_eq!(print, credentials_fingerprint(&url, &token));
    assert_ne!(print, credentials_fingerprint(&url, &other_token));
    assert_ne!(print, credentials_fingerprint(&other_url, &token));
    assert!(!print.contains(TOKEN));
    assert!(!print.contains(&TOKEN[..8].to_ascii_lowercase()));
}

// ---------------------------------------------------------------------------------------
// Size limits.

#[test]
fn a_manifest_larger_than_the_default_yaml_budget_loads() {
    // 40,000 instances make about 280,000 YAML nodes: more than the library's default
    // budget (250,000), which scales with the file here.
    let mut text = String::from("instances:\n");
    for n in 0..40_000u64 {
        text.push_str(&format!(
            "  - idInstance: \"{}\"\n    apiTokenEnv: T\n    picture: a.jpg\n",
            1_100_000_000 + n
        ));
    }
    assert_eq!(ok(&text).instances.len(), 40_000);
}

#[test]
fn a_token_pasted_into_api_token_env_is_not_echoed() {
    let pasted = "d75b3a66374942c5b3c019c698abc2067e151558acbd451f9d";
    let Err(e) = TokenSource::Env(pasted.to_owned()).resolve() else {
        panic!("a variable named like a token is set");
    };
    assert!(!e.to_string().contains(&pasted[..8]), "{e}");
    assert!(e.to_string().contains("looks like a token"), "{e}");
    // An ordinary variable name is named.
    let Err(e) = TokenSource::Env("GREEN_API_TOKEN_SUPPORT_1".to_owned()).resolve() else {
        panic!("GREEN_API_TOKEN_SUPPORT_1 is set");
    };
    assert!(
        e.to_string()
            .contains("GREEN_API_TOKEN_SUPPORT_1 is not set"),
        "{e}"
    );
}

#[test]
fn adopt_is_on_unless_the_manifest_turns_it_off() {
    let base = "instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n";
    assert!(ok(base).adopt);
    assert!(!ok(&format!("adopt: false\n{base}")).adopt);
    let problem = one_problem_at(&format!("adopt: maybe\n{base}"), 1, ProblemKind::Yaml);
    assert!(problem.message.contains("true or false"), "{problem}");
}

#[test]
fn fleet_ids_spread_evenly_over_a_map_s_buckets() {
    use std::hash::BuildHasher as _;
    let hasher = std::hash::BuildHasherDefault::<IdHasher>::default();
    // 100,000 ids that differ only in their last digits, as generated fleets do, over the
    // 2^17 buckets a map of them has: no bucket holds more than a handful.
    let buckets = 1usize << 17;
    let mut load = vec![0u8; buckets];
    let mut seen = std::collections::HashSet::new();
    for n in 0..100_000u64 {
        let id = InstanceId::parse(&format!("{}", 1_100_000_000 + n)).unwrap();
        let hash = hasher.hash_one(&id);
        assert!(seen.insert(hash), "two ids hash alike");
        let bucket = &mut load[(hash as usize) & (buckets - 1)];
        *bucket = bucket.saturating_add(1);
    }
    let worst = load.iter().max().copied().unwrap_or(0);
    assert!(worst <= 8, "a bucket holds {worst} ids");
    // The top 7 bits (the map's tag) vary too.
    let tags: std::collections::HashSet<u64> = (0..1000u64)
        .map(|n| {
            hasher.hash_one(InstanceId::parse(&format!("{}", 1_100_000_000 + n)).unwrap()) >> 57
        })
        .collect();
    assert!(tags.len() > 64, "{} tags", tags.len());
}

#[test]
fn n16_a_variable_set_to_nothing_is_an_error_like_an_unset_one() {
    let env = |name: &str| (name == "EMPTY").then(String::new);
    let err = expand_vars("${EMPTY}/support.token", &env).unwrap_err();
    assert_eq!(err.label(), "unset-variable");
    assert!(err.to_string().contains("${EMPTY}"), "{err}");
    assert!(err.to_string().contains("empty"), "{err}");
    // In a picture path: an error of that instance, never `/support.jpg`.
    let text = "instances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: ${EMPTY}/support.jpg\n";
    let manifest = parse(text, Path::new(PATH), &env).unwrap();
    assert!(manifest.instances[0].picture.path.is_err());
}

const RECEIVERS: &str = "notify:\n  - url: https://hooks.slack.com/services/T0/B0/XYZ\n    format: slack\n    events: [failed, drifted, halted, rollout]\n    after: 3\n  - url: http://127.0.0.1:8080/hook\n    secretFile: ${CREDENTIALS_DIRECTORY}/hook.secret\ninstances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n";

#[test]
fn receivers_are_read_with_their_defaults_and_a_secret_file_beside_the_manifest() {
    let env = env_of(&[(
        "CREDENTIALS_DIRECTORY",
        "/run/credentials/avatar-sync.service",
    )]);
    let manifest = parse(RECEIVERS, Path::new(PATH), &env).unwrap();
    let [slack, json] = &manifest.notify[..] else {
        panic!("{:?}", manifest.notify)
    };
    assert_eq!(slack.format, NotifyFormat::Slack);
    assert_eq!(slack.after, 3);
    assert_eq!(
        slack.events,
        [
            EventName::Failed,
            EventName::Drifted,
            EventName::Halted,
            EventName::Rollout
        ]
    );
    // The secret part of a Slack URL never shows.
    assert!(!format!("{:?}", manifest.notify).contains("XYZ"));
    assert_eq!(json.format, NotifyFormat::Json);
    assert_eq!(json.after, 1);
    assert!(!json.tells(EventName::Applied) && json.tells(EventName::Failed));
    assert_eq!(
        json.secret_file.as_deref(),
        Some(Path::new(
            "/run/credentials/avatar-sync.service/hook.secret"
        ))
    );
    assert_eq!(json.line, 6);
}

#[test]
fn a_receiver_is_held_to_the_api_url_rules_and_its_own_keys() {
    let with = |receiver: &str| {
        format!(
            "notify:\n  - {receiver}\ninstances:\n  - idInstance: \"1\"\n    apiTokenEnv: T\n    picture: a.jpg\n"
        )
    };
    let problem = one_problem_at(
        &with("url: http://hooks.example.com/x"),
        2,
        ProblemKind::InvalidUrl,
    );
    assert!(problem.message.contains("loopback"), "{problem}");
    let problem = one_problem_at(
        &with("url: https://h.example/x\n    events: [failed, sent]"),
        3,
        ProblemKind::InvalidOption,
    );
    assert!(
        problem
            .message
            .contains("applied, failed, drifted, halted, rollout"),
        "{problem}"
    );
    let problem = one_problem_at(
        &with("url: https://h.example/x\n    events: [failed, failed]"),
        3,
        ProblemKind::InvalidOption,
    );
    assert!(problem.message.contains("twice"), "{problem}");
    let problem = one_problem_at(
        &with("url: https://h.example/x\n    aftr: 3"),
        3,
        ProblemKind::UnknownKey,
    );
    assert!(
        problem.message.contains("did you mean `after`?"),
        "{problem}"
    );
    one_problem_at(&with("format: slack"), 2, ProblemKind::MissingKey);
    one_problem_at(
        &with("url: https://h.example/x\n    after: 0"),
        3,
        ProblemKind::InvalidOption,
    );
    one_problem_at(
        &with("url: https://h.example/x\n    format: teams"),
        3,
        ProblemKind::InvalidOption,
    );
}
