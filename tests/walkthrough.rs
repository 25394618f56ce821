//! The README's "Try it without an account", as a newcomer types it: the sandbox binary
//! (`fake-green-api`) on a free port, `examples/sandbox.yaml` and its pictures, the tokens
//! and paths from environment variables, then check, preview, reconcile (twice), drift, the
//! daemon and its status page, an edit the daemon uploads, a forced sync through the
//! daemon's `replace` file and through `--reconcile --replace`. Every request is read from
//! what the sandbox prints, as the user would see it.

use crate::util::*;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

const ONE: &str = "1101000001";
const TWO: &str = "1101000002";

/// The sandbox binary, killed when dropped; what it prints, line by line.
struct Sandbox {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Sandbox {
    fn start() -> (Self, String) {
        // Built beside avatar-sync by `cargo test` (the workspace's members).
        let bin = Path::new(BIN).with_file_name("fake-green-api");
        assert!(
            bin.exists(),
            "{} is not built: run the tests from the workspace (cargo test)",
            bin.display()
        );
        let mut child = Command::new(&bin)
            .args(["--port", "0"])
            .args(["--instance", &format!("{ONE}:tokenOne")])
            .args(["--instance", &format!("{TWO}:tokenTwo")])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let sandbox = Self { child, lines };
        let banner = sandbox.until(|line| line.starts_with("time "));
        let url = (banner.iter().flat_map(|l| l.split_whitespace()))
            .find(|word| word.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("no URL in {banner:#?}"))
            .to_owned();
        (sandbox, url)
    }

    /// The lines printed up to and including the first one `wanted` accepts.
    fn until(&self, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(GENEROUS) {
                Ok(line) => {
                    let done = wanted(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(e) => panic!("{e}; the sandbox printed: {seen:#?}"),
            }
        }
    }

    /// The request lines up to the `n`th upload; each upload's instance and answer.
    fn uploads(&self, n: usize) -> (Vec<String>, Vec<(String, String)>) {
        let mut lines = Vec::new();
        let mut uploads = Vec::new();
        while uploads.len() < n {
            let line = self
                .until(|l| l.contains("setProfilePicture"))
                .pop()
                .unwrap();
            let cells: Vec<&str> = line.split_whitespace().collect();
            uploads.push((cells[2].to_owned(), cells[cells.len() - 1].to_owned()));
            lines.push(line);
        }
        (lines, uploads)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The README's terminal: in the folder holding `examples/`, with its two `export` lines.
fn avatar_sync(folder: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(folder)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", folder)
        .env("SANDBOX_TOKEN_1", "tokenOne")
        .env("SANDBOX_TOKEN_2", "tokenTwo")
        .env("AVATAR_SYNC_MANIFEST", "examples/sandbox.yaml")
        .env("AVATAR_SYNC_STATE_DIR", folder.join("state"))
        .args(args)
        .stdin(Stdio::null());
    cmd
}

fn run(folder: &Path, args: &[&str]) -> Run {
    to_run(avatar_sync(folder, args).output().unwrap())
}

/// `GET path` on the daemon's listener: the status and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

#[test]
fn the_readme_walk_through_works_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (sandbox, url) = Sandbox::start();
    // This folder's `examples/`, the manifest pointed at the sandbox's port.
    let world = World::new(GENEROUS);
    let folder = world.dir.path();
    std::fs::create_dir_all(folder.join("examples/pictures")).unwrap();
    for picture in ["support.jpg", "sales.jpg"] {
        let from = root.join("examples/pictures").join(picture);
        std::fs::copy(from, folder.join("examples/pictures").join(picture)).unwrap();
    }
    let manifest: PathBuf = folder.join("examples/sandbox.yaml");
    let yaml = std::fs::read_to_string(root.join("examples/sandbox.yaml")).unwrap();
    assert!(yaml.contains("apiUrl: http://127.0.0.1:7700\n"), "{yaml}");
    let yaml = yaml.replace("http://127.0.0.1:7700", &url);
    std::fs::write(&manifest, &yaml).unwrap();

    // avatar-sync --check: valid, no network, no state.
    let check = run(folder, &["--check"]);
    assert_eq!(check.code, 0, "{check:?}");
    assert!(
        check.stdout.contains("manifest valid: 2 valid"),
        "{check:?}"
    );
    assert!(!folder.join("state").exists());

    // --preview: the uploads, to look at first.
    let preview = run(folder, &["--preview", "preview"]);
    assert_eq!(preview.code, 0, "{preview:?}");
    for id in [ONE, TWO] {
        let jpeg = std::fs::read(folder.join(format!("preview/{id}.jpg"))).unwrap();
        assert_eq!(jpeg[..2], [0xFF, 0xD8], "{id}: a JPEG");
    }

    // --reconcile: two uploads, which the sandbox prints; again: none.
    let first = run(folder, &["--reconcile"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(first.stdout.contains("2 applied"), "{first:?}");
    let (_, uploads) = sandbox.uploads(2);
    let mut sent: Vec<(String, String)> = uploads;
    sent.sort();
    assert_eq!(
        sent,
        [
            (ONE.into(), "applied".into()),
            (TWO.into(), "applied".into())
        ]
    );
    let again = run(folder, &["--reconcile"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("2 in sync"), "{again:?}");

    // --drift: reads what the fake "WhatsApp" shows; the next requests the sandbox prints
    // are those reads (so the second --reconcile sent nothing).
    let drift = run(folder, &["--drift"]);
    assert_eq!(drift.code, 0, "{drift:?}");
    assert!(drift.stdout.contains("2 in sync"), "{drift:?}");
    let mut read: Vec<String> = (0..2)
        .map(|_| {
            let request = |l: &str| l.contains("getWaSettings") || l.contains("setProfilePicture");
            let line = sandbox.until(request).pop().unwrap();
            assert!(line.contains("getWaSettings"), "{line}");
            line.split_whitespace().nth(2).unwrap().to_owned()
        })
        .collect();
    read.sort();
    assert_eq!(read, [ONE, TWO]);

    // The daemon with its status page.
    let cmd = avatar_sync(folder, &["--listen", "127.0.0.1:0"]);
    let daemon = Daemon::spawn(&world, cmd, "daemon");
    let address = folder.join("state/listen-address");
    daemon.wait_until("the listen address", || address.exists());
    let addr = std::fs::read_to_string(&address).unwrap();
    let (status, page) = get(&addr, "/");
    assert!(status.contains(" 200 "), "{status}");
    // Both instances in sync, each picture shown.
    assert!(page.contains("<b>2</b>in sync"), "{page}");
    for picture in ["pictures/support.jpg", "pictures/sales.jpg"] {
        assert!(page.contains(&format!("<code>{picture}</code>")), "{page}");
    }

    // Edit the manifest: 1101000001 shows pictures/sales.jpg; the daemon sends that one
    // upload (the sandbox answers rate-overlimit to anything sooner than 10 s).
    let edited = yaml.replacen(
        "picture: pictures/support.jpg",
        "picture: pictures/sales.jpg",
        1,
    );
    assert_ne!(edited, yaml);
    std::fs::write(&manifest, edited).unwrap();
    let (_, uploads) = sandbox.uploads(1);
    assert_eq!(uploads, [(ONE.into(), "applied".into())]);

    // Force a sync through the daemon: the `replace` file and SIGHUP (systemctl reload).
    std::fs::write(folder.join("state/replace"), format!("{TWO}\n")).unwrap();
    daemon.signal("HUP");
    let (_, uploads) = sandbox.uploads(1);
    assert_eq!(uploads, [(TWO.into(), "applied".into())]);
    daemon.wait_until("the replace file read", || {
        !folder.join("state/replace").exists()
    });
    assert_eq!(daemon.stop(), 0);

    // And from the command line: one upload, after the throttle of that instance.
    let replace = run(folder, &["--reconcile", "--replace", ONE]);
    assert_eq!(replace.code, 0, "{replace:?}");
    assert!(replace.stdout.contains("1 applied"), "{replace:?}");
    let (_, uploads) = sandbox.uploads(1);
    assert_eq!(uploads, [(ONE.into(), "applied".into())]);

    let status = run(folder, &["--status", "--json"]);
    assert_eq!(status.code, 0, "{status:?}");
    for id in [ONE, TWO] {
        assert_eq!(status.status_of(id), "in-sync", "{status:?}");
    }
}
