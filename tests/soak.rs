//! The chaos soak (issue 13): for a bounded time, with a seeded random source, it
//! interleaves GREEN-API answers of every kind (the contract's table, resets, hangs, slow
//! and huge bodies), SIGKILL and SIGTERM of `--reconcile` and of the daemon at random
//! moments, manifest edits, pictures replaced atomically and in place, and damaged cache
//! files. After every round it checks the promises, and at the end that everything
//! converges once the faults stop. `.ci/run` runs it for about two minutes; by hand:
//!
//! ```text
//! AVATAR_SYNC_SOAK_SECONDS=900 AVATAR_SYNC_SOAK_SEED=7 \
//!     cargo test --test tests soak -- --ignored --nocapture
//! ```

use crate::util::*;
use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

const INSTANCES: u32 = 6;
const MIN: Duration = Duration::from_secs(1);
/// The most memory any one run of the binary may take (peak RSS).
const MEMORY_BOUND_MIB: u64 = 256;
/// The longest wait the policy can give an instance: an hour for a used-up quota, plus
/// 20 % jitter, or an unanswered call's 30 s and minInterval; with a minute to spare.
const LONGEST_WAIT: Duration = Duration::from_secs(73 * 60);

fn id(n: u32) -> String {
    format!("110100{n:04}")
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Totals {
    rounds: u64,
    kills: u64,
    stops: u64,
    faults: u64,
}

struct Soak {
    world: World,
    rng: fastrand::Rng,
    /// The picture number each instance shows (its file is `p<i>.jpg` = `jpeg(n)`).
    pictures: Vec<u32>,
    next_picture: u32,
    suspended: HashSet<u32>,
    cover: HashSet<u32>,
    /// Everything the binary printed this round.
    output: String,
    /// The most memory any run took (peak RSS, KiB).
    peak_kib: u64,
    totals: Totals,
}

impl Soak {
    fn new(seed: u64) -> Self {
        let world = World::new(MIN);
        let mut soak = Self {
            world,
            rng: fastrand::Rng::with_seed(seed),
            pictures: Vec::new(),
            next_picture: 1,
            suspended: HashSet::new(),
            cover: HashSet::new(),
            output: String::new(),
            peak_kib: 0,
            totals: Totals::default(),
        };
        for i in 0..INSTANCES {
            soak.world.instance(&id(i));
            let n = soak.fresh_picture();
            soak.world.write(&format!("p{i}.jpg"), &jpeg(n));
            soak.pictures.push(n);
        }
        soak.write_manifest();
        soak
    }

    fn fresh_picture(&mut self) -> u32 {
        self.next_picture += 1;
        // Far apart, so that every picture's bytes differ after the headers.
        self.next_picture * 0x0002_0b05
    }

    fn write_manifest(&self) {
        let mut yaml =
            "apiUrl: {url}\nminInterval: 1s\nresyncInterval: 2s\ninstances:\n".to_owned();
        for i in 0..INSTANCES {
            yaml.push_str(&format!(
                "  - idInstance: \"{}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: p{i}.jpg\n",
                id(i)
            ));
            if self.suspended.contains(&i) {
                yaml.push_str("    suspend: true\n");
            }
            if self.cover.contains(&i) {
                yaml.push_str("    fit: cover\n    size: 24\n");
            }
        }
        self.world.write_manifest(&yaml);
    }

    fn round(&mut self) {
        self.totals.rounds += 1;
        self.output.clear();
        if self.rng.f32() < 0.6 {
            for _ in 0..self.rng.u32(1..=3) {
                let i = self.rng.u32(..INSTANCES);
                let answer = self.fault();
                self.world.fake.script(&id(i), [answer]);
                self.totals.faults += 1;
            }
        }
        // New pictures make calls, which meet the faults.
        for _ in 0..self.rng.u32(0..=2) {
            let kind = self.rng.u8(..2);
            self.disturb_files(kind);
        }
        if self.rng.f32() < 0.4 {
            let kind = self.rng.u8(2..6);
            self.disturb_files(kind);
        }
        match self.rng.u8(..4) {
            0 => self.reconcile_to_the_end(),
            1 => self.reconcile_killed(),
            _ => self.daemon(),
        }
    }

    /// One answer of the contract's table, or a network fault.
    fn fault(&mut self) -> Answer {
        let slow = Duration::from_millis(self.rng.u64(100..2_500));
        match self.rng.u8(..16) {
            0 => Answer::RateOverlimit,
            1 => Answer::NotApplied("some reason".to_owned()),
            2 => Answer::Unauthorized200,
            3 => Answer::Status(400, r#"{"message":"Unsupported media type"}"#.to_owned()),
            4 => Answer::Status(401, String::new()),
            5 => Answer::Status(403, String::new()),
            6 => Answer::Status(429, String::new()),
            // (466, a used-up quota, is left out: it rightly waits an hour, longer than a
            // soak's final convergence; tests/reconcile.rs covers it.)
            7 => Answer::Status(503, String::new()),
            8 => Answer::Status(500, "internal error".to_owned()),
            9 => Answer::Status(502, String::new()),
            // A body far over the cap, and one that is not JSON.
            10 => Answer::Status(200, "x".repeat(300 * 1024)),
            11 => Answer::Status(200, "<html>proxy error</html>".to_owned()),
            12 => Answer::ConnectionReset,
            13 => Answer::Hang,
            _ => Answer::Delay(slow, Box::new(Answer::Normal)),
        }
    }

    /// One disturbance of the files: `kind` 0-1 replace a picture, 2-3 damage a cache,
    /// 4-5 edit the manifest.
    fn disturb_files(&mut self, kind: u8) {
        let i = self.rng.u32(..INSTANCES);
        let path = self.world.path(&format!("p{i}.jpg"));
        match kind {
            // A new picture, saved by rename as editors do.
            0 => {
                let n = self.fresh_picture();
                let tmp = self.world.path(".tmp.jpg");
                std::fs::write(&tmp, jpeg(n)).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
                self.pictures[i as usize] = n;
            }
            // A new picture written in place, in two writes.
            1 => {
                use std::io::{Seek as _, SeekFrom, Write as _};
                let n = self.fresh_picture();
                let bytes = jpeg(n);
                let half = bytes.len() * 3 / 4;
                let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                file.write_all(&bytes[..half]).unwrap();
                std::thread::sleep(Duration::from_millis(self.rng.u64(..250)));
                file.seek(SeekFrom::Start(half as u64)).unwrap();
                file.write_all(&bytes[half..]).unwrap();
                file.set_len(bytes.len() as u64).unwrap();
                self.pictures[i as usize] = n;
            }
            // A prepared picture emptied or overwritten, as a power loss leaves it.
            2 => {
                let folder = self.world.state_dir().join("prepared");
                if let Ok(entries) = std::fs::read_dir(folder) {
                    let files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
                    if !files.is_empty() {
                        let victim = &files[self.rng.usize(..files.len())];
                        let garbage = if self.rng.bool() {
                            &b""[..]
                        } else {
                            b"garbage"
                        };
                        std::fs::write(victim, garbage).unwrap();
                        self.totals.faults += 1;
                    }
                }
            }
            // The hash cache damaged.
            3 => {
                if self.world.state_dir().exists() {
                    self.world
                        .write("state/hashes.json", b"{\"version\": 1, \"files\": [");
                    self.totals.faults += 1;
                }
            }
            // The manifest edited: an instance suspended or resumed, processed differently.
            4 => {
                if !self.suspended.remove(&i) {
                    self.suspended.insert(i);
                }
                self.write_manifest();
            }
            _ => {
                if !self.cover.remove(&i) {
                    self.cover.insert(i);
                }
                self.write_manifest();
            }
        }
    }

    fn reconcile_to_the_end(&mut self) {
        let timeout = format!("{}s", self.rng.u8(1..=4));
        let mut child = self.spawn(&["--reconcile", "--json", "-v", "--timeout", &timeout]);
        let code = loop {
            self.watch_memory(&child);
            if let Some(code) = child.exited() {
                break code;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = logs(&child);
        assert!(code == 0 || code == 1, "exit {code}:\n{log}");
        self.output.push_str(&log);
    }

    /// Notes the peak memory of a running child (Linux's high-water mark, VmHWM).
    fn watch_memory(&mut self, child: &Daemon) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.pid()));
        let kib = status.ok().and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
        self.peak_kib = self.peak_kib.max(kib.unwrap_or(0));
    }

    fn reconcile_killed(&mut self) {
        let child = self.spawn(&["--reconcile", "-vv", "--timeout", "10s"]);
        std::thread::sleep(Duration::from_millis(self.rng.u64(..1_500)));
        self.end(child, false);
    }

    fn daemon(&mut self) {
        let child = self.spawn(&["-v"]);
        std::thread::sleep(Duration::from_millis(self.rng.u64(300..3_000)));
        let gracefully = self.rng.bool();
        self.end(child, gracefully);
    }

    /// One run of the binary in the background (its output in `run.out` and `run.log`).
    fn spawn(&self, args: &[&str]) -> Daemon {
        Daemon::spawn(&self.world, self.world.command(args), "run")
    }

    /// Stops `child`: SIGTERM (a daemon must then exit 0) or SIGKILL.
    fn end(&mut self, mut child: Daemon, gracefully: bool) {
        self.watch_memory(&child);
        if gracefully {
            child.signal("TERM");
            self.totals.stops += 1;
            let code = child.wait_exit(GENEROUS);
            assert_eq!(code, Some(0), "after SIGTERM:\n{}", logs(&child));
        } else {
            child.kill();
            self.totals.kills += 1;
        }
        self.output.push_str(&logs(&child));
    }

    /// The promises, after every round.
    fn check(&self) {
        let round = self.totals.rounds;
        for i in 0..INSTANCES {
            let requests = self.world.fake.requests_for(&id(i));
            // Never two calls of one instance closer than minInterval, across restarts.
            for pair in requests.windows(2) {
                let previous_end = pair[0].answered_at.unwrap_or(pair[0].received_at);
                let gap = pair[1].received_at.saturating_duration_since(previous_end);
                assert!(gap >= MIN, "round {round}: {} called {gap:?} apart", id(i));
            }
            // Refused bytes never sent again.
            let mut refused = HashSet::new();
            for request in &requests {
                assert!(
                    !refused.contains(&request.file_sha256),
                    "round {round}: {} sent refused bytes {} again",
                    id(i),
                    request.file_sha256
                );
                if request.answer == "400" {
                    refused.insert(request.file_sha256.clone());
                }
            }
        }
        // The state is always a valid document, never moved aside as unreadable.
        let state_dir = self.world.state_dir();
        if let Ok(bytes) = std::fs::read(state_dir.join("state.json")) {
            let doc: serde_json::Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("round {round}: state.json is not JSON: {e}"));
            assert_eq!(doc["version"], 3, "round {round}");
            assert!(doc["instances"].is_object(), "round {round}");
        }
        // Every complete line of the changes is a record (only a torn last one may not be).
        let changes = std::fs::read_to_string(state_dir.join("changes.jsonl")).unwrap_or_default();
        let complete = &changes[..changes.rfind('\n').map_or(0, |at| at + 1)];
        for line in complete.lines() {
            let change: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("round {round}: a change is not JSON: {e}: {line}"));
            assert!(change["record"].is_object(), "round {round}: {line}");
        }
        for entry in std::fs::read_dir(&state_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(!name.contains("unreadable"), "round {round}: {name}");
        }
        // No instance waits longer than the policy allows.
        let status = self.world.run(&["--status", "--json"]);
        let now = SystemTime::now();
        for row in status.json()["instances"].as_array().unwrap() {
            if let Some(at) = row["nextAttemptAt"].as_str() {
                let at = humantime::parse_rfc3339(at).unwrap();
                assert!(at <= now + LONGEST_WAIT, "round {round}: {row}");
            }
        }
        // Memory: the largest run so far.
        let peak_mib = self.peak_kib / 1024;
        assert!(
            peak_mib <= MEMORY_BOUND_MIB,
            "round {round}: {peak_mib} MiB"
        );
        // No token anywhere.
        assert!(!shows_token(&self.output), "round {round}: {}", self.output);
        assert!(!shows_token(&status.stdout) && !shows_token(&status.stderr));
        for (path, bytes) in self.world.all_files() {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !shows_token(&text),
                "round {round}: token in {}",
                path.display()
            );
        }
    }

    /// Faults stop; every instance shows a new picture, resumed: everything converges.
    fn converge(&mut self) {
        for i in 0..INSTANCES {
            self.world.fake.clear_script(&id(i));
            let n = self.fresh_picture();
            self.world.write(&format!("p{i}.jpg"), &jpeg(n));
            self.pictures[i as usize] = n;
        }
        self.suspended.clear();
        self.cover.clear();
        self.write_manifest();
        // The longest wait left may be a backoff ladder's cap (5 min, plus jitter).
        let run = self
            .world
            .run(&["--reconcile", "--json", "--timeout", "400s"]);
        assert_eq!(run.code, 0, "{run:?}");
        for i in 0..INSTANCES {
            let shown = self.world.fake.current_picture(&id(i));
            let wanted = sha256(&jpeg(self.pictures[i as usize]));
            assert_eq!(
                shown.as_deref(),
                Some(wanted.as_str()),
                "{}: {run:?}",
                id(i)
            );
        }
        self.output = run.stdout + &run.stderr;
        self.check();
    }
}

/// What a run printed (stdout and stderr).
fn logs(child: &Daemon) -> String {
    child.stdout() + &child.log()
}

#[test]
#[ignore = "the chaos soak: .ci/run runs it for two minutes; longer by hand (see above)"]
fn chaos_soak() {
    let seconds = env_or("AVATAR_SYNC_SOAK_SECONDS", 120);
    let seed = env_or("AVATAR_SYNC_SOAK_SEED", 1);
    let mut soak = Soak::new(seed);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        soak.round();
        soak.check();
    }
    soak.converge();
    let uploads = soak.world.fake.request_count();
    let Totals {
        rounds,
        kills,
        stops,
        faults,
    } = soak.totals;
    println!(
        "chaos soak, seed {seed}, {}s: {rounds} rounds, {kills} kills (SIGKILL), {stops} \
         stops (SIGTERM), {faults} faults, {uploads} requests, peak {} MiB: 0 violations, \
         converged",
        started.elapsed().as_secs(),
        soak.peak_kib / 1024
    );
}
