//! Fuzzing the manifest parser on stable Rust: thousands of damaged variants of real
//! manifests (bytes flipped, cut, spliced with YAML's own syntax and known troublemakers)
//! must each give a manifest or problems that name a line, never a panic.

use super::*;
use crate::testing::{Mutator, cases};

const SEEDS: &[&str] = &[
    include_str!("../../examples/manifest.yaml"),
    "apiUrl: http://127.0.0.1:8080\nminInterval: 1s\ndefaults: &d\n  fit: cover\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: T\n    picture: a.jpg\n    suspend: false\n  - {idInstance: 2, apiTokenFile: t.token, picture: \"${P}/b.png\", size: 96}\n",
];

const YAML: &[&str] = &[
    "&a ",
    "*a",
    "<<: *a\n",
    "\n  - ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "!!binary ",
    "!!int ",
    "0x10",
    "1_000",
    "~",
    "null",
    "\t",
    "---\n",
    "...\n",
    "idInstance: ",
    "apiTokenEnv: ",
    "apiTokenInstance: ",
    "picture: ",
    "minInterval: ",
    "1000y",
    "${X}",
    "# c\n",
    "|\n",
    ">-\n",
    "? ",
    "%YAML 1.2\n",
    "\u{feff}",
    "\u{0}",
    "&x [*x, *x, *x]",
    "99999999999999999999999",
    "-1",
    "instances:\n",
    "\r\n",
    "\u{ff}",
];

#[test]
fn damaged_manifests_give_problems_with_lines_never_a_panic() {
    let path = Path::new("/srv/manifest.yaml");
    let env = |name: &str| (name == "P" || name == "T").then(|| "x".to_owned());
    let mut mutator = Mutator::new(0x6d61_6e69, YAML);
    let (mut valid, mut refused) = (0, 0);
    for case in 0..cases(3_000) {
        let seed = SEEDS[case % SEEDS.len()].as_bytes();
        let bytes = mutator.mutate(seed);
        let lines = bytes.split(|&b| b == b'\n').count() as u64;
        match from_bytes(&bytes, path, &env) {
            Ok(manifest) => {
                valid += 1;
                for instance in &manifest.instances {
                    assert!(instance.id.as_str().bytes().all(|b| b.is_ascii_digit()));
                    assert!(instance.line >= 1 && instance.line <= lines);
                }
            }
            Err(e) => {
                refused += 1;
                assert!(!e.problems.is_empty(), "case {case}: no problem given");
                for problem in &e.problems {
                    assert!(!problem.message.is_empty(), "case {case}: {problem:?}");
                    assert!(
                        problem.line.is_none_or(|l| l <= lines + 1),
                        "case {case}: {problem}"
                    );
                }
            }
        }
    }
    // Both outcomes were reached: the variants are neither all broken nor all harmless.
    assert!(valid > 0 && refused > 0, "{valid} valid, {refused} refused");
}
