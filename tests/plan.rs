//! `--plan BASE..HEAD` on real repositories made with `git`: exactly the instances whose
//! upload the range changes, with the reason, read from the commits and never the disk.

use crate::util::*;
use std::time::Duration;

fn git(world: &World, args: &[&str]) -> String {
    crate::util::git(world.dir.path(), args, None)
}

fn commit(world: &World, message: &str) -> String {
    git(world, &["add", "-A"]);
    git(world, &["commit", "-q", "-m", message]);
    git(world, &["rev-parse", "HEAD"])
}

/// Five instances, each with its own picture `pN.jpg`, committed on `main`.
fn five(world: &World, extra: &[(&str, &str)]) {
    let mut yaml = String::from("instances:\n");
    for n in 1..=5 {
        world.write(&format!("pictures/p{n}.jpg"), &jpeg(n));
        let id = format!("110100000{n}");
        let more = extra
            .iter()
            .filter(|(who, _)| *who == id)
            .map(|(_, line)| format!("    {line}\n"))
            .collect::<String>();
        yaml.push_str(&format!(
            "  - idInstance: \"{id}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: pictures/p{n}.jpg\n{more}"
        ));
    }
    world.write_manifest(&yaml);
}

#[test]
fn a_range_that_changes_two_of_five_pictures_lists_exactly_those_two_and_exits_2() {
    let world = World::new(Duration::from_secs(1));
    git(&world, &["init", "-q", "-b", "main"]);
    five(&world, &[]);
    world.write(".gitignore", b"state/\n");
    let base = commit(&world, "five pictures");
    world.write("pictures/p2.jpg", &jpeg(12));
    world.write("pictures/p4.jpg", &jpeg(14));
    let head = commit(&world, "two new pictures");
    // Edited on the disk after the commit: --plan reads the commits, not the disk.
    world.write("pictures/p1.jpg", &jpeg(21));

    let out = world.path("plan");
    let run = world.run(&["--plan", "main~1..main", "--preview", out.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run:?}");
    let rows: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("| 1101"))
        .collect();
    assert_eq!(rows.len(), 2, "{run:?}");
    for (row, (id, before, after)) in rows
        .iter()
        .zip([("1101000002", 2, 12), ("1101000004", 4, 14)])
    {
        let n = id.chars().last().unwrap();
        assert!(
            row.starts_with(&format!("| {id} | picture | `pictures/p{n}.jpg` · ")),
            "{row}"
        );
        assert!(row.contains(&sha256(&jpeg(before))[..12]), "{row}");
        assert!(row.contains(&sha256(&jpeg(after))[..12]), "{row}");
    }
    assert!(
        run.stdout.starts_with(&format!(
            "### avatar-sync plan: `main~1` ({}) → `main` ({})",
            &base[..12],
            &head[..12]
        )),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("**2 of 5 instances change**: 2 picture."),
        "{run:?}"
    );
    // The pictures, exactly as they would be uploaded, and a page to look at them.
    for (id, before, after) in [("1101000002", 2, 12), ("1101000004", 4, 14)] {
        let read =
            |side: &str| std::fs::read(world.path(&format!("plan/{id}.{side}.jpg"))).unwrap();
        assert_eq!(read("before"), jpeg(before));
        assert_eq!(read("after"), jpeg(after));
    }
    let index = std::fs::read_to_string(world.path("plan/index.html")).unwrap();
    assert_eq!(index.matches("<img ").count(), 4, "{index}");

    // --json for machines; BASE alone means BASE..HEAD; nothing sent, no state.
    let json = world.run(&["--plan", &base, "--json"]);
    assert_eq!(json.code, 2, "{json:?}");
    let doc = json.json();
    assert_eq!(doc["base"]["commit"], base.as_str());
    assert_eq!(doc["head"]["commit"], head.as_str());
    let ids: Vec<&str> = (doc["changes"].as_array().unwrap().iter())
        .map(|c| c["idInstance"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["1101000002", "1101000004"]);
    assert_eq!(
        doc["changes"][0]["before"]["uploadSha256"],
        sha256(&jpeg(2))
    );
    let same = world.run(&["--plan", "main..main"]);
    assert_eq!(same.code, 0, "{same:?}");
    assert!(
        same.stdout.contains("No upload changes: the 5 instances"),
        "{same:?}"
    );
    assert_eq!(world.fake.request_count(), 0);
    assert!(!world.state_dir().exists());
}

#[test]
fn each_reason_is_named_and_a_broken_side_is_an_error() {
    let world = World::new(Duration::from_secs(1));
    git(&world, &["init", "-q", "-b", "main"]);
    five(&world, &[("1101000003", "suspend: true")]);
    commit(&world, "base");
    // 1: processing; 2: suspended; 3: resumed; 5: removed; 6: new; 4: the same picture
    // under another name (a rename changes no upload).
    let mut yaml = std::fs::read_to_string(world.manifest()).unwrap();
    yaml = yaml.replace(
        "picture: pictures/p1.jpg\n",
        "picture: pictures/p1.jpg\n    fit: contain\n    size: 20\n",
    );
    yaml = yaml.replace(
        "picture: pictures/p2.jpg\n",
        "picture: pictures/p2.jpg\n    suspend: true\n",
    );
    yaml = yaml.replace(
        "    suspend: true\n  - idInstance: \"1101000004\"",
        "  - idInstance: \"1101000004\"",
    );
    std::fs::rename(
        world.path("pictures/p4.jpg"),
        world.path("pictures/four.jpg"),
    )
    .unwrap();
    yaml = yaml.replace("pictures/p4.jpg", "pictures/four.jpg");
    let five_at = yaml.find("  - idInstance: \"1101000005\"").unwrap();
    yaml.truncate(five_at);
    yaml.push_str("  - idInstance: \"1101000006\"\n    apiTokenEnv: TOKEN_ENV\n    picture: pictures/p5.jpg\n");
    world.write_manifest(&yaml);
    commit(&world, "every reason");
    let run = world.run(&["--plan", "HEAD~1"]);
    assert_eq!(run.code, 2, "{run:?}");
    let reasons: Vec<(String, String)> = (run.stdout.lines())
        .filter(|l| l.starts_with("| 1101"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].to_owned(), cells[2].to_owned())
        })
        .collect();
    let expected = [
        ("1101000001", "processing"),
        ("1101000002", "suspended"),
        ("1101000003", "resumed"),
        ("1101000006", "new"),
        ("1101000005", "removed"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(reasons, expected, "{run:?}");

    // A picture the head commit lacks: an error of that instance, exit 1.
    git(&world, &["rm", "-q", "pictures/four.jpg"]);
    commit(&world, "lost a picture");
    let run = world.run(&["--plan", "HEAD~1"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("| 1101000004 | error: picture-missing"),
        "{run:?}"
    );
    // A revision git does not know, and a manifest with problems at a revision: exit 1,
    // named.
    let run = world.run(&["--plan", "nowhere..HEAD"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("revision nowhere is not known here"),
        "{run:?}"
    );
    world.write_manifest("instances:\n  - idInstance: \"1101000001\"\n    pictur: a.jpg\n");
    let broken = commit(&world, "a typo");
    let run = world.run(&["--plan", "HEAD~1"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("{}:manifest.yaml:3", &broken[..12])),
        "{run:?}"
    );
}

#[test]
fn a_base_missing_from_a_shallow_clone_says_to_fetch_the_history() {
    let world = World::new(Duration::from_secs(1));
    git(&world, &["init", "-q", "-b", "main"]);
    five(&world, &[]);
    commit(&world, "one");
    world.write("pictures/p1.jpg", &jpeg(11));
    commit(&world, "two");
    // As CI checks out by default: the last commit only.
    let source = format!("file://{}", world.dir.path().display());
    git(&world, &["clone", "-q", "--depth", "1", &source, "shallow"]);
    let manifest = world.path("shallow/manifest.yaml");
    let mut cmd = world.command_with(&manifest, &world.state_dir(), &["--plan", "HEAD~1..HEAD"]);
    let run = to_run(cmd.output().unwrap());
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("revision HEAD~1 is not known here"),
        "{run:?}"
    );
    assert!(run.stderr.contains("this clone is shallow"), "{run:?}");
}
