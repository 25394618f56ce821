//! Shared by the integration tests: a temporary world (manifest, pictures, state
//! directory) beside a GREEN-API fake on loopback, a runner for the real binary, and
//! [`Daemon`], the one wrapper for a child that runs in the background.

pub use fake_green_api::{Answer, FakeGreenApi, Request};
use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use avatar_sync::picture::SETTLE;

/// How long a test waits for something that should happen. Generous, as CI is a loaded
/// two-core machine; a wait ends as soon as the thing happens, so it costs nothing when
/// all is well.
pub const GENEROUS: Duration = Duration::from_secs(30);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_avatar-sync");

/// A token the fake accepts for every instance a test registers with [`World::instance`].
pub const TOKEN: &str = "a1b2c3d4e5f6SeCrEt7890token";

/// A small, complete JPEG (64×64).
pub const SUPPORT_JPG: &[u8] = include_bytes!("../examples/pictures/support.jpg");
/// Another small, complete JPEG.
pub const SALES_JPG: &[u8] = include_bytes!("../examples/pictures/sales.jpg");

/// A complete 32×32 JPEG whose pixels (and so bytes) differ for each `n`. It has no
/// metadata, so avatar-sync uploads it byte for byte.
pub fn jpeg(n: u32) -> Vec<u8> {
    let seed = n.to_le_bytes();
    let img = image::RgbImage::from_fn(32, 32, |x, y| {
        let (x, y) = (x as u8, y as u8);
        image::Rgb([
            seed[0] ^ x.wrapping_mul(7),
            seed[1] ^ y.wrapping_mul(5),
            seed[2] ^ x ^ y,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

/// Lowercase hex SHA-256.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A temporary folder with a manifest, pictures and a state directory, and a fake GREEN-API.
pub struct World {
    pub dir: tempfile::TempDir,
    pub fake: FakeGreenApi,
}

/// What a run of the binary did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// The `status` of instance `id` in the `--json` document.
    pub fn status_of(&self, id: &str) -> String {
        self.row(id)["status"].as_str().unwrap().to_owned()
    }

    /// The row of instance `id` in the `--json` document.
    pub fn row(&self, id: &str) -> serde_json::Value {
        let doc = self.json();
        doc["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["idInstance"] == id)
            .unwrap_or_else(|| panic!("no row for {id} in {doc:#}"))
            .clone()
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl World {
    /// A fresh world whose fake enforces WhatsApp's limit over `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        let fake = FakeGreenApi::start();
        fake.set_rate_window(min_interval);
        Self {
            dir: tempfile::tempdir().unwrap(),
            fake,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn manifest(&self) -> PathBuf {
        self.path("manifest.yaml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    /// Registers instance `id` with the fake, with [`TOKEN`].
    pub fn instance(&self, id: &str) {
        self.fake.add_instance(id, TOKEN);
    }

    /// Writes a file (creating folders) relative to the world.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Writes the manifest; `{url}` is replaced by the fake's URL.
    pub fn write_manifest(&self, yaml: &str) {
        self.write(
            "manifest.yaml",
            yaml.replace("{url}", &self.fake.url()).as_bytes(),
        );
    }

    /// A command for the binary with this world's manifest and state directory and a
    /// clean environment (only PATH, HOME and `TOKEN_ENV` = [`TOKEN`]).
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_with(&self.manifest(), &self.state_dir(), args)
    }

    /// [`World::command`] with another manifest or state directory (a shard's, a file).
    pub fn command_with(&self, manifest: &Path, state_dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("TOKEN_ENV", TOKEN)
            .arg("--manifest")
            .arg(manifest)
            .arg("--state-dir")
            .arg(state_dir)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the binary to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        to_run(self.command(args).output().unwrap())
    }

    /// The state as avatar-sync reads it: `state.json` with the records of
    /// `changes.jsonl` replayed over it, line by line.
    pub fn state(&self) -> serde_json::Value {
        self.try_state().expect("a state file")
    }

    /// [`World::state`], or `None` while there is no state file. A torn last line of the
    /// changes (a writer killed or busy appending) is left out, as avatar-sync does.
    pub fn try_state(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.state_dir().join("state.json")).ok()?;
        let mut state: serde_json::Value = serde_json::from_str(&text).unwrap();
        let changes =
            std::fs::read_to_string(self.state_dir().join("changes.jsonl")).unwrap_or_default();
        let complete = &changes[..changes.rfind('\n').map_or(0, |at| at + 1)];
        for line in complete.lines() {
            let change: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = change["idInstance"].as_str().unwrap().to_owned();
            state["instances"][id] = change["record"].clone();
        }
        Some(state)
    }

    /// The bytes of the state on disk (`state.json`, then `changes.jsonl`): to tell that
    /// nothing was written.
    pub fn state_bytes(&self) -> Vec<u8> {
        let mut bytes = std::fs::read(self.state_dir().join("state.json")).unwrap();
        bytes.extend(std::fs::read(self.state_dir().join("changes.jsonl")).unwrap_or_default());
        bytes
    }

    /// Every byte under the world's folder, file by file (for leak checks).
    pub fn all_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
}

pub fn to_run(output: Output) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A child process in the background: the binary as a daemon, a one-shot run a test acts
/// on while it runs, or a real tool beside them. Its stderr goes to `<name>.log` and its
/// stdout to `<name>.out` in the world (read them with [`Daemon::log`] and
/// [`Daemon::stdout`]), and it is killed when dropped, so a failing test leaves no process
/// behind.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    out: PathBuf,
    /// The command line and the environment variables its command set, to run the binary
    /// again on the same manifest ([`Daemon::run_beside`]).
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
}

impl Daemon {
    /// The binary with `args` on the world's manifest and state directory, as `daemon`
    /// (`daemon.log`, `daemon.out`).
    pub fn start(world: &World, args: &[&str]) -> Self {
        Self::spawn(world, world.command(args), "daemon")
    }

    /// Runs `cmd` in the background with no stdin, stderr to `<name>.log` and stdout to
    /// `<name>.out` in the world.
    pub fn spawn(world: &World, mut cmd: Command, name: &str) -> Self {
        let log = world.path(&format!("{name}.log"));
        let out = world.path(&format!("{name}.out"));
        let args = cmd.get_args().map(ToOwned::to_owned).collect();
        let envs = (cmd.get_envs())
            .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
            .collect();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{:?} could not be started: {e}", cmd.get_program()));
        Self {
            child,
            log,
            out,
            args,
            envs,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it has written to stderr so far (the binary's log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What it has written to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Sends the signal `name` (`TERM`, `HUP`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -s {name} {}", self.pid());
    }

    /// The exit code once the process has ended (-1 for a signal), without waiting.
    pub fn exited(&mut self) -> Option<i32> {
        (self.child.try_wait().unwrap()).map(|status| status.code().unwrap_or(-1))
    }

    /// Waits up to `timeout` for the process to end; its exit code (-1 for a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.exited() {
                return Some(code);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the run did, once the process has ended within `timeout`.
    pub fn wait_run(&mut self, timeout: Duration) -> Option<Run> {
        let code = self.wait_exit(timeout)?;
        Some(Run {
            code,
            stdout: self.stdout(),
            stderr: self.log(),
        })
    }

    pub fn assert_running(&mut self) {
        assert_eq!(self.exited(), None, "the process exited:\n{}", self.log());
    }

    /// SIGTERM, then the exit code; panics if the process has not ended within [`GENEROUS`].
    pub fn stop(mut self) -> i32 {
        self.signal("TERM");
        match self.wait_exit(GENEROUS) {
            Some(code) => code,
            None => panic!("the process did not stop:\n{}", self.log()),
        }
    }

    /// SIGKILL, and the process reaped.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Polls `done` until it holds; panics with `what` and the log after [`GENEROUS`].
    pub fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + GENEROUS;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n--- log\n{}",
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the log contains `needle`; the log.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.wait_until(&format!("`{needle}` in the log"), || {
            self.log().contains(needle)
        });
        self.log()
    }

    /// Waits until the fake has recorded at least `n` calls; all of them.
    pub fn wait_for_requests(&self, world: &World, n: usize) -> Vec<Request> {
        let requests = world.fake.wait_for_requests(n, GENEROUS);
        assert!(
            requests.len() >= n,
            "expected {n} requests, got {}: {requests:#?}\n--- log\n{}",
            requests.len(),
            self.log()
        );
        requests
    }

    /// Runs the binary to completion with this child's command line and the environment
    /// variables its command set, plus `args`: `--status --json` on the daemon's manifest.
    pub fn run_beside(&self, args: &[&str]) -> Run {
        let output = Command::new(BIN)
            .env_clear()
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .args(&self.args)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        to_run(output)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that consecutive calls in `requests` are at least `min` apart, counted from the
/// previous answer (or, when there was none, its arrival) to the next arrival.
pub fn assert_spaced(requests: &[Request], min: Duration) {
    for pair in requests.windows(2) {
        let previous_end = pair[0].answered_at.unwrap_or(pair[0].received_at);
        let gap = pair[1].received_at.saturating_duration_since(previous_end);
        assert!(
            gap >= min,
            "two calls of {} only {gap:?} apart (minInterval {min:?}): {requests:#?}",
            pair[1].instance
        );
    }
}

/// Whether `text` shows [`TOKEN`] or any 8-character piece of it, in any case, JSON-escaped
/// (`\u0061`) or split by white space: the forms a hostile server echoes.
pub fn shows_token(text: &str) -> bool {
    let mut decoded = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("\\u") {
        decoded.push_str(&rest[..at]);
        let hex = rest.get(at + 2..at + 6).unwrap_or("");
        match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
            Some(c) if hex.len() == 4 => {
                decoded.push(c);
                rest = &rest[at + 6..];
            }
            _ => {
                decoded.push_str("\\u");
                rest = &rest[at + 2..];
            }
        }
    }
    decoded.push_str(rest);
    let flat: String = decoded
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_lowercase();
    let token: Vec<char> = TOKEN.to_lowercase().chars().collect();
    token
        .windows(8)
        .any(|piece| flat.contains(&piece.iter().collect::<String>()))
}

/// A 160 × 120 picture: a disc and a band on a gradient, laid out differently for each
/// `seed`.
pub fn photo(seed: u32) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(u64::from(seed));
    let (cx, cy, r) = (rng.f32(), rng.f32(), 0.15 + rng.f32() * 0.2);
    let (band, angle) = (rng.f32(), rng.f32() * std::f32::consts::PI);
    let img = image::RgbImage::from_fn(160, 120, |x, y| {
        let (fx, fy) = (x as f32 / 160.0, y as f32 / 120.0);
        let mut c = [fx * 90.0, 60.0, fy * 90.0];
        if (fx - cx).powi(2) + (fy - cy).powi(2) < r * r {
            c = [240.0, 220.0, 40.0];
        }
        if ((fx * angle.cos() + fy * angle.sin()) - band).abs() < 0.08 {
            c = [30.0, 30.0, 200.0];
        }
        image::Rgb(c.map(|v| v as u8))
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

/// `git args` in `dir`, as on a fresh machine (no user or system config), signing commits
/// with the SSH key `signing_key` (its `.pub`) when given; its output, trimmed.
pub fn git(dir: &Path, args: &[&str], signing_key: Option<&Path>) -> String {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args(["-c", "user.name=T", "-c", "user.email=t@example.com"]);
    match signing_key {
        Some(key) => {
            let key = format!("user.signingkey={}", key.display());
            cmd.args([
                "-c",
                "gpg.format=ssh",
                "-c",
                &key,
                "-c",
                "commit.gpgsign=true",
            ]);
        }
        None => {
            cmd.args(["-c", "commit.gpgsign=false"]);
        }
    }
    let out = cmd.args(args).output().expect("git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `GET path` (or another method) over HTTP/1.1; the status and the body as text.
pub fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    let (status, _, body) = fetch(addr, method, path);
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `method path` over HTTP/1.1; the status, the head and the body's bytes.
pub fn fetch(addr: &str, method: &str, path: &str) -> (u16, String, Vec<u8>) {
    try_fetch(addr, method, path).unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"))
}

/// As [`fetch`], or the error when nothing answers.
pub fn try_fetch(addr: &str, method: &str, path: &str) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut stream = std::net::TcpStream::connect(addr)?;
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
    Ok((status, head, body))
}
