//! `--listen`: the daemon's `/metrics`, `/healthz`, `/readyz` and status page, fetched over
//! real HTTP from the real binary running against the GREEN-API fake.

use crate::util::*;
use std::io::Write as _;
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

/// Four instances against the fake (two in sync, one with a wrong token, one that WhatsApp's
/// rate limit holds back for a minute), their manifest in a git checkout, and a daemon
/// listening on a free port: the daemon and its address.
fn fleet_with_a_failure(world: &World) -> (Daemon, String) {
    world.instance("1101000001");
    world.instance("1101000002");
    world.fake.add_instance("1101000003", "anotherToken123");
    world.instance("1101000004");
    world.fake.script("1101000004", [Answer::RateOverlimit]);
    world.write("a.jpg", &jpeg(1));
    world.write("b.jpg", &jpeg(2));
    let mut yaml = String::from("apiUrl: {url}\nminInterval: 1m\ninstances:\n");
    for (id, picture) in [
        ("1101000001", "a"),
        ("1101000002", "b"),
        ("1101000003", "a"),
        ("1101000004", "b"),
    ] {
        yaml.push_str(&format!(
            "  - idInstance: \"{id}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: {picture}.jpg\n"
        ));
    }
    world.write_manifest(&yaml);
    commit_all(world);
    let daemon = Daemon::start(world, &["--listen", "127.0.0.1:0", "-vv"]);
    let address_file = world.state_dir().join("listen-address");
    daemon.wait_until("the listen address", || address_file.exists());
    let addr = std::fs::read_to_string(&address_file).unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    daemon.wait_for_requests(world, 4);
    daemon.wait_until("the gauges after the pass", || {
        (http(&addr, "GET", "/metrics").1.lines())
            .any(|l| l == "avatar_sync_instances{status=\"failed\"} 1")
    });
    (daemon, addr)
}

/// `git` in the world's folder.
fn git(world: &World, args: &[&str]) -> String {
    crate::util::git(world.dir.path(), args, None)
}

/// Makes the world's folder a git work tree on `main` with the manifest and pictures
/// committed (the state directory left out, as operators keep it).
fn commit_all(world: &World) {
    git(world, &["init", "-q", "-b", "main"]);
    git(world, &["add", "manifest.yaml", "a.jpg", "b.jpg"]);
    git(world, &["commit", "-q", "-m", "pictures"]);
}

/// The commit the world's `main` points at.
fn head_commit(world: &World) -> String {
    git(world, &["rev-parse", "HEAD"])
}

#[test]
fn metrics_count_instances_and_requests_and_the_probes_answer() {
    let world = World::new(Duration::from_secs(60));
    let (daemon, addr) = fleet_with_a_failure(&world);
    daemon.wait_for_requests(&world, 4);
    let failed_line = "avatar_sync_instances{status=\"failed\"} 1";
    daemon.wait_until("the gauges after the pass", || {
        http(&addr, "GET", "/metrics")
            .1
            .lines()
            .any(|l| l == failed_line)
    });
    let (status, metrics) = http(&addr, "GET", "/metrics");
    assert_eq!(status, 200);
    for line in [
        "avatar_sync_instances{status=\"in-sync\"} 2",
        "avatar_sync_instances{status=\"pending\"} 0",
        "avatar_sync_instances{status=\"throttled\"} 1",
        "avatar_sync_instances{status=\"failed\"} 1",
        "avatar_sync_instances{status=\"suspended\"} 0",
        "avatar_sync_requests_total{method=\"setProfilePicture\",outcome=\"applied\"} 2",
        "avatar_sync_requests_total{method=\"setProfilePicture\",outcome=\"unauthorized\"} 1",
        "avatar_sync_requests_total{method=\"setProfilePicture\",outcome=\"rate-overlimit\"} 1",
        "avatar_sync_request_duration_seconds_count{method=\"setProfilePicture\"} 4",
        "avatar_sync_manifest_last_load_success 1",
        "avatar_sync_build_info{version=\"0.1.0\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in\n{metrics}"
        );
    }
    let manifest_sha = sha256(&std::fs::read(world.manifest()).unwrap());
    let info = format!("avatar_sync_manifest_info{{sha256=\"{manifest_sha}\"}} 1");
    assert!(
        metrics.lines().any(|l| l == info),
        "no `{info}` in\n{metrics}"
    );
    assert_eq!(
        metrics.matches("1101000").count(),
        0,
        "no series names an instance:\n{metrics}"
    );

    // The probes: alive and ready, whatever the failing instance says.
    assert_eq!(http(&addr, "GET", "/healthz").0, 200);
    assert_eq!(http(&addr, "GET", "/readyz"), (200, "ready\n".to_owned()));
    assert_eq!(http(&addr, "GET", "/elsewhere").0, 404);
    assert_eq!(http(&addr, "POST", "/metrics").0, 405);
    assert_eq!(http(&addr, "HEAD", "/readyz").0, 200);

    // The status page: counts, the failing instance and why, each picture once.
    let (status, head, page) = fetch(&addr, "GET", "/");
    assert_eq!(status, 200);
    assert!(head.contains("text/html"), "{head}");
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains("<div class=\"count in-sync\"><b>2</b>in sync</div>"),
        "{page}"
    );
    assert!(
        page.contains("<div class=\"count failed\"><b>1</b>failed</div>"),
        "{page}"
    );
    assert!(page.contains("<code>1101000003</code>"), "{page}");
    assert!(
        page.contains("<div class=\"count throttled\"><b>1</b>throttled</div>"),
        "{page}"
    );
    assert!(page.contains("rate-overlimit: WhatsApp"), "{page}");
    assert!(page.contains("unauthorized: GREEN-API answered"), "{page}");
    let commit = head_commit(&world);
    assert!(
        page.contains(&format!("at revision <code>{commit}</code> (main) ·")),
        "{page}"
    );
    let thumbnails: Vec<&str> = (page.split("src=\"").skip(1))
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert_eq!(thumbnails.len(), 2, "two pictures: {page}");
    for src in &thumbnails {
        let (status, head, jpeg) = fetch(&addr, "GET", src);
        assert_eq!(status, 200, "{src}: {head}");
        assert!(
            head.contains("image/jpeg") && head.contains("immutable"),
            "{head}"
        );
        let decoded = image::load_from_memory(&jpeg).unwrap();
        assert_eq!(
            (decoded.width(), decoded.height()),
            (32, 32),
            "never larger than the upload"
        );
    }
    let unknown = format!("/pictures/{}.jpg", "0".repeat(64));
    assert_eq!(http(&addr, "GET", &unknown).0, 404);
    assert_eq!(http(&addr, "GET", "/pictures/../../state.json").0, 404);

    // --status names the revision too, and what is not committed.
    let status = world.run(&["--status"]);
    assert!(
        status
            .stdout
            .contains(&format!("manifest at git revision {commit} (main)\n")),
        "{status:?}"
    );
    world.write("b.jpg", &jpeg(3));
    let status = world.run(&["--status", "--json"]);
    let revision = &status.json()["revision"];
    assert_eq!(revision["commit"], commit.as_str(), "{status:?}");
    assert_eq!(
        revision["dirty"],
        serde_json::json!(["b.jpg"]),
        "{status:?}"
    );
    // The daemon's next pass (the picture changed) reads the revision again.
    let mut page = String::new();
    daemon.wait_until("the page naming b.jpg as not committed", || {
        page = http(&addr, "GET", "/").1;
        page.contains("with changes not committed: <code>b.jpg</code>")
    });

    let logged = daemon.log();
    assert!(
        logged.contains(&format!("listening on http://{addr}/")),
        "{logged}"
    );
    for text in [&metrics, &logged, &page] {
        assert!(!text.contains(TOKEN), "a token leaked:\n{text}");
    }
}

// ---------------------------------------------------------------------------------------
// With the real tools. They need Debian's `prometheus` (promtool too) and `chromium`;
// `.ci/run` installs both and runs these with `--ignored`.

/// Runs `program` with `args`, feeding `input`; its exit code, stdout and stderr.
fn run_tool(program: &str, args: &[&str], input: &[u8]) -> (i32, String, String) {
    use std::process::Command;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is needed for this test: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs promtool (Debian's prometheus); .ci/run runs it"]
fn promtool_accepts_a_real_scrape() {
    let world = World::new(Duration::from_secs(60));
    let (_daemon, addr) = fleet_with_a_failure(&world);
    let (_, metrics) = http(&addr, "GET", "/metrics");
    let (code, stdout, stderr) = run_tool("promtool", &["check", "metrics"], metrics.as_bytes());
    assert_eq!(
        code, 0,
        "promtool check metrics:\n{stdout}{stderr}\n--- scrape\n{metrics}"
    );
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
#[ignore = "needs Debian's prometheus; .ci/run runs it"]
fn a_real_prometheus_scrapes_the_daemon() {
    let world = World::new(Duration::from_secs(60));
    let (_daemon, addr) = fleet_with_a_failure(&world);
    let config = world.write(
        "prometheus.yml",
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: avatar-sync\n    static_configs:\n      - targets: [\"{addr}\"]\n"
        )
        .as_bytes(),
    );
    let web = format!("127.0.0.1:{}", free_port());
    let mut prometheus = std::process::Command::new("prometheus");
    prometheus
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            world.path("tsdb").display()
        ))
        .arg(format!("--web.listen-address={web}"));
    let prometheus = Daemon::spawn(&world, prometheus, "prometheus");
    let query = |q: &str| -> Option<serde_json::Value> {
        let (status, _, body) = try_fetch(&web, "GET", &format!("/api/v1/query?query={q}")).ok()?;
        let doc: serde_json::Value = serde_json::from_slice(&body).ok()?;
        (status == 200).then(|| doc["data"]["result"].clone())
    };
    let value_of = |result: &serde_json::Value| result[0]["value"][1].as_str().map(str::to_owned);
    prometheus.wait_until("Prometheus to scrape the daemon", || {
        query("up").is_some_and(|r| value_of(&r).as_deref() == Some("1"))
    });
    let failed = query("avatar_sync_instances%7Bstatus%3D%22failed%22%7D").unwrap();
    assert_eq!(value_of(&failed).as_deref(), Some("1"), "{failed}");
    let in_sync = query("avatar_sync_instances%7Bstatus%3D%22in-sync%22%7D").unwrap();
    assert_eq!(value_of(&in_sync).as_deref(), Some("2"), "{in_sync}");
    assert_eq!(in_sync[0]["metric"]["job"], "avatar-sync");
}

#[test]
#[ignore = "needs Debian's chromium; .ci/run runs it"]
fn the_status_page_in_a_real_browser() {
    let world = World::new(Duration::from_secs(60));
    let (daemon, addr) = fleet_with_a_failure(&world);
    let shot = world.path("status-page.png");
    let profile = world.path("chromium-profile");
    let (code, stdout, stderr) = run_tool(
        "chromium",
        &[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.display()),
            "--window-size=420,1200",
            "--virtual-time-budget=5000",
            &format!("--screenshot={}", shot.display()),
            &format!("http://{addr}/"),
        ],
        b"",
    );
    assert_eq!(code, 0, "chromium:\n{stdout}{stderr}");
    let png = image::open(&shot).unwrap().to_rgb8();
    assert_eq!((png.width(), png.height()), (420, 1200));
    // The browser fetched every thumbnail, and got a JPEG each time (no broken image).
    let logged = daemon.log();
    let page = http(&addr, "GET", "/").1;
    let thumbnails: Vec<&str> = (page.split("src=\"").skip(1))
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert_eq!(thumbnails.len(), 2);
    for src in thumbnails {
        let served = format!("path=\"{src}\" status=200");
        let served_plain = format!("path={src} status=200");
        assert!(
            logged.contains(&served) || logged.contains(&served_plain),
            "the browser did not load {src}:\n{logged}"
        );
    }
    // A thumbnail is drawn where the first picture goes: not the page's white, not the
    // grey of an image that did not load.
    let painted = png
        .pixels()
        .filter(|p| p.0 != [255, 255, 255] && p.0 != [221, 221, 221]);
    assert!(
        painted.count() > 2 * 40 * 40,
        "the pictures are on the screenshot"
    );
    if let Ok(keep) = std::env::var("AVATAR_SYNC_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

/// The daemon's resident memory, in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    (status.lines())
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn n2_a_flood_of_held_connections_starves_neither_the_probes_nor_the_engine() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    // The daemon gets 1,024 descriptors, as a default shell gives it; the flood is three
    // times that (fewer if this test's own limit is lower).
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    let flood = usize::try_from(hard.saturating_sub(200).min(3_000)).unwrap();
    assert!(
        flood >= 2_000,
        "this test needs 2,200 descriptors; it has {hard}"
    );

    let world = World::new(Duration::from_secs(10));
    world.instance("1101000001");
    world.write("a.jpg", &jpeg(1));
    world.write_manifest(
        "apiUrl: {url}\nminInterval: 10s\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: TOKEN_ENV\n    picture: a.jpg\n",
    );
    let inner = world.command(&["--listen", "127.0.0.1:0"]);
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--nofile=1024:1024")
        .arg("--")
        .arg(inner.get_program())
        .args(inner.get_args())
        .env_clear();
    for (key, value) in inner.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    let daemon = Daemon::spawn(&world, cmd, "daemon");
    let address_file = world.state_dir().join("listen-address");
    daemon.wait_until("the listen address", || address_file.exists());
    let addr = std::fs::read_to_string(&address_file).unwrap();
    daemon.wait_for_requests(&world, 1);
    let before = rss_kb(daemon.pid());

    // Connections that never send a request, held open by this test.
    let target: std::net::SocketAddr = addr.parse().unwrap();
    let held: Vec<TcpStream> = (0..flood)
        .filter_map(|_| TcpStream::connect_timeout(&target, Duration::from_secs(2)).ok())
        .collect();
    assert!(held.len() >= flood / 2, "only {} connected", held.len());

    // The probe is answered in the flood (a held connection gives way to it).
    daemon.wait_until("/healthz to answer in the flood", || {
        try_fetch(&addr, "GET", "/healthz").is_ok_and(|(status, ..)| status == 200)
    });
    // The engine still opens files: an edited picture is read and uploaded.
    world.write("a.jpg", &jpeg(2));
    let requests = daemon.wait_for_requests(&world, 2);
    assert_eq!(requests[1].file_sha256, sha256(&jpeg(2)));
    let during = rss_kb(daemon.pid());
    drop(held);

    let log = daemon.log();
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(
        during < before + 64 * 1024,
        "the flood took the daemon from {before} kB to {during} kB"
    );
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn the_status_page_says_where_each_picture_was_cut_from() {
    let world = World::new(Duration::from_secs(1));
    world.instance("1101000001");
    world.instance("1101000002");
    world.write("wide.jpg", &photo(3));
    world.write_manifest(
        "apiUrl: {url}\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenEnv: TOKEN_ENV\n    \
         picture: wide.jpg\n    fit: face\n  - idInstance: \"1101000002\"\n    apiTokenEnv: TOKEN_ENV\n    \
         picture: wide.jpg\n    fit: cover\n",
    );
    let daemon = Daemon::start(&world, &["--listen", "127.0.0.1:0"]);
    let address_file = world.state_dir().join("listen-address");
    daemon.wait_until("the listen address", || address_file.exists());
    let addr = std::fs::read_to_string(&address_file).unwrap();
    daemon.wait_for_requests(&world, 2);
    daemon.wait_until("both pictures on the page", || {
        http(&addr, "GET", "/")
            .1
            .matches("<small class=cut>")
            .count()
            == 2
    });
    let page = http(&addr, "GET", "/").1;
    // No face in it: `face` falls back to what stands out; `cover` is the centre.
    assert!(
        page.contains("cut from the centre: a 120 px square at (20, 0) of the 160 × 120 picture"),
        "{page}"
    );
    assert!(page.contains("of the 160 × 120 picture</small>"), "{page}");
    assert_eq!(daemon.stop(), 0);
}
