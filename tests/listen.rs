//! `--listen`: the daemon's `/metrics`, `/healthz`, `/readyz` and status page, fetched over
//! real HTTP from the real binary running against the GREEN-API fake.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::*;

const GENEROUS: Duration = Duration::from_secs(30);

/// A daemon child that is killed if the test panics.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` (or another method) over HTTP/1.1; the status and the body as text.
fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    let (status, _, body) = fetch(addr, method, path);
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `method path` over HTTP/1.1; the status, the head and the body's bytes.
fn fetch(addr: &str, method: &str, path: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(GENEROUS)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = (response.windows(4))
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let body = response.get(split + 4..).unwrap_or_default().to_vec();
    let status = (head.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, body)
}

/// Polls `what` until it holds or [`GENEROUS`] passes.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + GENEROUS;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_count_instances_and_requests_and_the_probes_answer() {
    let world = World::new(Duration::from_secs(1));
    world.instance("1101000001");
    world.instance("1101000002");
    world.fake.add_instance("1101000003", "anotherToken123");
    world.write("a.jpg", &jpeg(1));
    world.write("b.jpg", &jpeg(2));
    let mut yaml = String::from("apiUrl: {url}\nminInterval: 1s\ninstances:\n");
    for (id, picture) in [
        ("1101000001", "a"),
        ("1101000002", "b"),
        ("1101000003", "a"),
    ] {
        yaml.push_str(&format!(
            "  - idInstance: \"{id}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: {picture}.jpg\n"
        ));
    }
    world.write_manifest(&yaml);
    // The manifest sits in a git checkout, as in production.
    let commit = "3f2a9c1e0b7d4f6a8c2e1d0b9a8f7e6d5c4b3a21";
    world.write(".git/HEAD", b"ref: refs/heads/main\n");
    world.write(".git/refs/heads/main", format!("{commit}\n").as_bytes());
    let log = world.path("daemon.log");
    let child = world
        .command(&["--listen", "127.0.0.1:0", "-vv"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _daemon = Daemon(child);

    let address_file = world.state_dir().join("listen-address");
    wait_until("the listen address", || address_file.exists());
    let addr = std::fs::read_to_string(&address_file).unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    wait_until("three calls", || world.fake.request_count() >= 3);
    let failed_line = "avatar_sync_instances{status=\"failed\"} 1";
    wait_until("the gauges after the pass", || {
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
        "avatar_sync_instances{status=\"throttled\"} 0",
        "avatar_sync_instances{status=\"failed\"} 1",
        "avatar_sync_instances{status=\"suspended\"} 0",
        "avatar_sync_requests_total{method=\"setProfilePicture\",outcome=\"applied\"} 2",
        "avatar_sync_requests_total{method=\"setProfilePicture\",outcome=\"unauthorized\"} 1",
        "avatar_sync_request_duration_seconds_count{method=\"setProfilePicture\"} 3",
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
    assert!(page.contains("unauthorized: GREEN-API answered"), "{page}");
    assert!(page.contains(&format!("{commit} (main)")), "{page}");
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

    // --status names the revision too.
    let status = world.run(&["--status"]);
    assert!(
        status
            .stdout
            .contains(&format!("manifest at git revision {commit} (main)")),
        "{status:?}"
    );

    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains(&format!("listening on http://{addr}/")),
        "{logged}"
    );
    for text in [&metrics, &logged, &page] {
        assert!(!text.contains(TOKEN), "a token leaked:\n{text}");
    }
}
