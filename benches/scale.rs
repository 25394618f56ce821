//! avatar-sync at scale: the figures of docs/performance.md, measured on this
//! machine, against the GREEN-API fake on 127.0.0.1 and generated data in a temporary folder.
//!
//! ```sh
//! cargo bench --bench scale                  # everything (about 6 minutes)
//! cargo bench --bench scale -- noop fleet    # some: noop, fleet, shards, hashing, converge, reaction, idle
//! ```
//!
//! It runs the release binary (`target/release/avatar-sync`) as a user would. To profile a
//! converged fleet, `BENCH_COPY=/some/dir` keeps a copy of the 10,000-instance one
//! (`BENCH_COPY_100K` of the 100,000-instance one).

use avatar_sync::picture::hashes::Hashes;
use avatar_sync::usage::status_field_kib;
use fake_green_api::FakeGreenApi;
use nix::sys::resource::{UsageWho, getrusage};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const BIN: &str = env!("CARGO_BIN_EXE_avatar-sync");
const TOKEN: &str = "benchToken0123456789abcdef";
const SUPPORT_JPG: &[u8] = include_bytes!("../examples/pictures/support.jpg");
/// About 100 KiB per picture.
const PICTURE_BYTES: usize = 100 * 1024;

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    println!("avatar-sync benchmarks on {}\n", machine());
    let mut table = String::from("| figure | measured | target |\n|---|---|---|\n");
    if run("noop") {
        noop(&mut table);
    }
    if run("fleet") {
        fleet(&mut table);
    }
    if run("shards") {
        shards(&mut table);
    }
    if run("hashing") {
        hashing(&mut table);
    }
    if run("converge") {
        converge(&mut table);
    }
    if run("reaction") {
        reaction(&mut table);
    }
    if run("idle") {
        idle(&mut table);
    }
    println!("\n{table}");
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = status_field_kib(&meminfo, "MemTotal:").unwrap_or(0) as f64 / 1024.0 / 1024.0;
    format!("{model}, {cores} cores, {mem_gib:.0} GiB RAM, Linux")
}

/// A folder with `pictures` distinct ~100 KiB JPEGs and a manifest of `instances`
/// instances spread over them, pointed at `fake`. `adopt: false`: the instances are new
/// numbers, so the figures measure uploads (with adoption, the default, each instance
/// without a record is read once before its first upload: twice the requests).
struct Fleet {
    dir: tempfile::TempDir,
    ids: Vec<String>,
    pictures: Vec<PathBuf>,
}

impl Fleet {
    fn new(fake: &FakeGreenApi, instances: usize, pictures: usize, min_interval: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pictures")).unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        let pictures: Vec<PathBuf> = (0..pictures)
            .map(|n| {
                let path = dir.path().join(format!("pictures/p{n:04}.jpg"));
                std::fs::write(&path, picture(&mut rng)).unwrap();
                // Old files, as in a real checkout: the hash cache trusts them at once.
                let file = std::fs::File::options().write(true).open(&path).unwrap();
                file.set_modified(an_hour_ago).unwrap();
                path
            })
            .collect();
        let mut yaml = format!(
            "apiUrl: {}\nminInterval: {min_interval}\nadopt: false\ninstances:\n",
            fake.url()
        );
        let mut ids = Vec::with_capacity(instances);
        for n in 0..instances {
            let id = format!("{}", 1_100_000_000 + n);
            fake.add_instance(&id, TOKEN);
            let _ = write!(
                yaml,
                "  - idInstance: \"{id}\"\n    apiTokenEnv: BENCH_TOKEN\n    picture: pictures/p{:04}.jpg\n",
                n % pictures.len()
            );
            ids.push(id);
        }
        std::fs::write(dir.path().join("manifest.yaml"), yaml).unwrap();
        Self { dir, ids, pictures }
    }

    /// Copies the fleet's folder to where the environment variable `var` says, if it is
    /// set (for profiling a converged fleet).
    fn copy_if_asked(&self, var: &str) {
        if let Ok(to) = std::env::var(var) {
            let copied = Command::new("cp")
                .arg("-a")
                .arg(self.dir.path())
                .arg(&to)
                .status();
            assert!(copied.unwrap().success(), "cannot copy the fleet to {to}");
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("BENCH_TOKEN", TOKEN)
            // As systemd/avatar-sync.service runs it.
            .env("MALLOC_ARENA_MAX", "2")
            .arg("--manifest")
            .arg(self.dir.path().join("manifest.yaml"))
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn reconcile(&self, args: &[&str]) -> (Duration, String) {
        let started = Instant::now();
        let output = self.command(args).output().unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "avatar-sync {args:?} failed:\n{}",
            stderr.lines().rev().take(20).collect::<Vec<_>>().join("\n")
        );
        (took, stderr)
    }

    fn daemon(&self, args: &[&str]) -> (Child, PathBuf) {
        let log = self.dir.path().join("daemon.log");
        let child = self
            .command(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (child, log)
    }
}

/// A complete JPEG of about [`PICTURE_BYTES`]: the 64×64 example picture with an
/// application segment of random bytes (decoders skip it), so every picture differs.
fn picture(rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    let mut left = PICTURE_BYTES - SUPPORT_JPG.len();
    while left > 0 {
        let chunk = left.min(60_000);
        let len = u16::try_from(chunk + 2 + 5).unwrap();
        out.extend_from_slice(&[0xFF, 0xE0]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(b"AVSB\0");
        out.extend((0..chunk).map(|_| rng.u8(..)));
        left -= chunk;
    }
    out.extend_from_slice(&SUPPORT_JPG[2..]);
    out
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn field(log: &str, key: &str) -> Vec<f64> {
    log.lines()
        .filter_map(|line| {
            let at = line.find(key)? + key.len();
            let value: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            value.parse().ok()
        })
        .collect()
}

fn wait_for_log(log: &Path, needle: &str, count: usize, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(needle).count() >= count {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {needle:?} ×{count}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status_field_kib(&status, field).unwrap()
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) (utime, stime), counted from the state field (3).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    ticks as f64 / hz
}

/// Runs `avatar-sync` to its end and says what it cost: wall time, stderr, and its own CPU
/// (user + system, from `getrusage(RUSAGE_CHILDREN)` around the wait: only this child is
/// waited for meanwhile).
/// The CPU (user, system) it took, in seconds.
fn run_measured(fleet: &Fleet, args: &[&str]) -> (Duration, String, (f64, f64)) {
    let cpu = || {
        let usage = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap();
        let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        (seconds(usage.user_time()), seconds(usage.system_time()))
    };
    let before = cpu();
    let (took, stderr) = fleet.reconcile(args);
    let after = cpu();
    (took, stderr, (after.0 - before.0, after.1 - before.1))
}

/// No-op `--reconcile` runs (whole process) and daemon passes after an event, on a fleet
/// whose instances are all applied. Returns (median wall ms, peak RSS MB, median daemon pass
/// ms, daemon peak RSS MB).
fn noop_runs(fleet: &Fleet, fake: &FakeGreenApi, runs: usize) -> (f64, f64, f64, f64) {
    let requests = fake.request_count();
    let mut walls = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..runs {
        let (took, stderr) = fleet.reconcile(&["--reconcile", "-vv"]);
        walls.push(took.as_secs_f64() * 1000.0);
        peaks.extend(field(&stderr, "peak_rss_kib="));
    }
    assert_eq!(fake.request_count(), requests, "a no-op pass makes no call");
    let wall = median(walls.clone());
    let peak = peaks.iter().copied().fold(0.0, f64::max) / 1024.0;
    println!(
        "   --reconcile: median {wall:.1} ms over {runs} runs ({walls:.1?}), peak RSS {peak:.1} MB"
    );

    let (child, log) = fleet.daemon(&["-v"]);
    wait_for_log(&log, "daemon started", 1, Duration::from_secs(120));
    // Passes triggered by an event: the manifest is touched (same bytes, so it is not
    // parsed again) and the daemon looks at every picture and plans every instance.
    let manifest = fleet.dir.path().join("manifest.yaml");
    for pass in 1..=runs {
        let file = std::fs::File::options()
            .write(true)
            .open(&manifest)
            .unwrap();
        file.set_modified(SystemTime::now()).unwrap();
        wait_for_log(&log, "pass done", pass, Duration::from_secs(60));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    // The whole pass: the manifest (unchanged), the watches, the plan.
    let passes: Vec<f64> = field(&text, "pass_ms=");
    let daemon_pass = median(passes.clone());
    let daemon_peak = proc_status(child.id(), "VmHWM:") as f64 / 1024.0;
    stop(child);
    assert_eq!(fake.request_count(), requests);
    println!(
        "   daemon pass (after an event): median {daemon_pass:.1} ms ({passes:.1?}), daemon peak RSS {daemon_peak:.1} MB"
    );
    (wall, peak, daemon_pass, daemon_peak)
}

fn noop(table: &mut String) {
    println!("== no-op pass: 10,000 instances, 1,000 pictures of ~100 KiB, all applied");
    let fake = FakeGreenApi::start();
    fake.set_rate_window(Duration::ZERO);
    fake.set_keep_files(false);
    let fleet = Fleet::new(&fake, 10_000, 1_000, "10s");
    let (took, _) = fleet.reconcile(&["--reconcile", "--concurrency", "64", "-q"]);
    assert_eq!(fake.request_count(), 10_000);
    println!("   (set-up: applied 10,000 instances in {took:.2?})");
    fleet.copy_if_asked("BENCH_COPY");
    let (wall, peak, daemon_pass, daemon_peak) = noop_runs(&fleet, &fake, 7);
    let _ = writeln!(
        table,
        "| no-op `--reconcile`, 10,000 instances (whole process) | {wall:.0} ms wall, {peak:.1} MB peak RSS | ≤ 50 ms |"
    );
    let _ = writeln!(
        table,
        "| no-op daemon pass, 10,000 instances | {daemon_pass:.1} ms, {daemon_peak:.1} MB peak RSS | |"
    );
}

/// 100,000 instances over 1,000 pictures: a cold converge against a fake answering in
/// 20 ms at `--concurrency 64`, then no-op runs and daemon passes on the converged fleet.
fn fleet(table: &mut String) {
    const N: usize = 100_000;
    println!("== 100,000 instances, 1,000 pictures of ~100 KiB");
    let fake = FakeGreenApi::start();
    fake.set_rate_window(Duration::ZERO);
    fake.set_keep_files(false);
    fake.set_default_latency(Duration::from_millis(20));
    let fleet = Fleet::new(&fake, N, 1_000, "10s");
    let (took, stderr, (user, system)) = run_measured(
        &fleet,
        &[
            "--reconcile",
            "--concurrency",
            "64",
            "--timeout",
            "30m",
            "-vv",
        ],
    );
    assert_eq!(fake.request_count(), N);
    let ideal = N as f64 * 0.020 / 64.0;
    let ratio = took.as_secs_f64() / ideal;
    let cpu = user + system;
    let per_call = cpu / N as f64 * 1e6;
    let saves = field(&stderr, "saves=").first().copied().unwrap_or(0.0);
    let save_cpu = field(&stderr, "save_cpu_ms=")
        .first()
        .copied()
        .unwrap_or(0.0)
        / 1000.0;
    let save_share = save_cpu / cpu * 100.0;
    println!(
        "   converge at --concurrency 64, 20 ms: {:.2} s, ideal {ideal:.2} s ({ratio:.2} ×); \
         CPU {cpu:.2} s (user {user:.2}, system {system:.2}) = {per_call:.0} µs a call; {saves:.0} saves, {save_cpu:.2} CPU-s ({save_share:.1} %)",
        took.as_secs_f64()
    );
    fleet.copy_if_asked("BENCH_COPY_100K");
    let (wall, peak, daemon_pass, daemon_peak) = noop_runs(&fleet, &fake, 5);
    let _ = writeln!(
        table,
        "| converge 100,000 at 20 ms, `--concurrency 64` | {:.1} s ({ratio:.2} × the ideal {ideal:.2} s) | ≤ 1.25 × |",
        took.as_secs_f64()
    );
    let _ = writeln!(
        table,
        "| … avatar-sync's CPU (user + system) per applied call | {per_call:.0} µs ({user:.1} s user + {system:.1} s system) | ≤ 150 µs |"
    );
    let _ = writeln!(
        table,
        "| … state saves | {save_share:.1} % of that CPU ({saves:.0} saves, {save_cpu:.2} CPU-s) | ≤ 10 % |"
    );
    let _ = writeln!(
        table,
        "| no-op `--reconcile`, 100,000 instances (whole process) | {wall:.0} ms wall, {peak:.1} MB peak RSS | ≤ 300 ms, ≤ 150 MB |"
    );
    let _ = writeln!(
        table,
        "| no-op daemon pass, 100,000 instances | {daemon_pass:.0} ms, {daemon_peak:.1} MB peak RSS | ≤ 100 ms |"
    );
}

/// One shard of thirty on a 300,000-instance manifest: a shard reads every instance's
/// shape but keeps only its own (about 10,000), so its memory follows its shard, not the
/// manifest. Compared with the whole manifest held by one process (`--status` unsharded).
fn shards(table: &mut String) {
    const N: usize = 300_000;
    println!("== one shard of 30 on 300,000 instances, 1,000 pictures of ~100 KiB");
    let fake = FakeGreenApi::start();
    fake.set_rate_window(Duration::ZERO);
    fake.set_keep_files(false);
    let fleet = Fleet::new(&fake, N, 1_000, "10s");
    let manifest_mb = std::fs::metadata(fleet.dir.path().join("manifest.yaml"))
        .unwrap()
        .len() as f64
        / 1e6;
    let peak_mb = |stderr: &str| {
        field(stderr, "peak_rss_kib=")
            .into_iter()
            .fold(0.0, f64::max)
            / 1024.0
    };
    let shard = ["--shard", "0/30"];
    // The first run reads the whole YAML (no cache yet) and applies the shard's instances.
    let (took, stderr) =
        fleet.reconcile(&[&shard[..], &["--reconcile", "--concurrency", "64", "-vv"]].concat());
    let applied = fake.request_count();
    let cold = peak_mb(&stderr);
    println!(
        "   first --reconcile --shard 0/30 ({manifest_mb:.0} MB manifest, {applied} uploads): {took:.2?}, peak RSS {cold:.1} MB"
    );
    assert!(
        (8_000..12_000).contains(&applied),
        "shard 0 of 30 holds about 10,000 instances, not {applied}"
    );
    // No-op runs: the manifest is unchanged, so a run reads the shard's cached parse.
    let mut noop_peaks = Vec::new();
    let mut walls = Vec::new();
    for _ in 0..5 {
        let (took, stderr) = fleet.reconcile(&[&shard[..], &["--reconcile", "-vv"]].concat());
        walls.push(took.as_secs_f64() * 1000.0);
        noop_peaks.push(peak_mb(&stderr));
    }
    assert_eq!(fake.request_count(), applied, "a no-op pass makes no call");
    let noop_wall = median(walls);
    let noop_peak = noop_peaks.into_iter().fold(0.0, f64::max);
    // A fresh edit: every shard reads the whole YAML again.
    let manifest = fleet.dir.path().join("manifest.yaml");
    let mut yaml = std::fs::read_to_string(&manifest).unwrap();
    yaml.push_str("# an edit\n");
    std::fs::write(&manifest, yaml).unwrap();
    let (edit_took, stderr) = fleet.reconcile(&[&shard[..], &["--reconcile", "-vv"]].concat());
    let edit_peak = peak_mb(&stderr);
    // The whole manifest in one process, for comparison.
    let (whole_took, stderr) = fleet.reconcile(&["--status", "-vv"]);
    let whole_peak = peak_mb(&stderr);
    println!(
        "   no-op: median {noop_wall:.0} ms, peak RSS {noop_peak:.1} MB; after an edit: {edit_took:.2?}, peak RSS {edit_peak:.1} MB; \
         unsharded --status: {whole_took:.2?}, peak RSS {whole_peak:.1} MB"
    );
    let _ = writeln!(
        table,
        "| `--reconcile --shard 0/30`, 300,000 instances (whole process): after an edit / no-op | {edit_peak:.1} / {noop_peak:.1} MB peak RSS ({:.0} ms / {noop_wall:.0} ms); the whole manifest unsharded: {whole_peak:.1} MB | ≤ 512 Mi a pod |",
        edit_took.as_secs_f64() * 1000.0
    );
}

fn hashing(table: &mut String) {
    println!("== cold hashing: 1,000 pictures of ~100 KiB, empty cache");
    let fake = FakeGreenApi::start();
    let fleet = Fleet::new(&fake, 1_000, 1_000, "10s");
    let bytes: u64 = fleet
        .pictures
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let mb = bytes as f64 / 1e6;
    let best = |f: &mut dyn FnMut()| {
        (0..5)
            .map(|_| {
                let started = Instant::now();
                f();
                started.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min)
    };
    let ours = best(&mut || {
        let mut hashes = Hashes::default();
        let all = hashes.digest_all(fleet.pictures.iter().map(PathBuf::as_path));
        assert!(all.values().all(Result::is_ok));
    });
    let tool = |program: &str, args: &[&str]| {
        let mut cmd = Command::new(program);
        cmd.args(args).args(&fleet.pictures).stdout(Stdio::null());
        move || {
            assert!(cmd.status().unwrap().success());
        }
    };
    let sha256sum = best(&mut tool("sha256sum", &[]));
    let openssl = best(&mut tool("openssl", &["dgst", "-sha256"]));
    let rate = |secs: f64| mb / secs;
    println!(
        "   avatar-sync {:.0} MB/s, sha256sum {:.0} MB/s, openssl {:.0} MB/s ({mb:.0} MB, best of 5)",
        rate(ours),
        rate(sha256sum),
        rate(openssl)
    );
    let ratio = openssl / ours * 100.0;
    let _ = writeln!(
        table,
        "| cold hashing, 1,000 × 100 KiB | {:.0} MB/s ({ratio:.0} % of `openssl dgst -sha256` at {:.0} MB/s; `sha256sum` {:.0} MB/s) | ≥ 90 % of openssl |",
        rate(ours),
        rate(openssl),
        rate(sha256sum)
    );
}

fn converge(table: &mut String) {
    println!("== converge: 10,000 pending instances, the fake answering in 20 ms");
    for concurrency in [8_usize, 32, 64] {
        let fake = FakeGreenApi::start();
        fake.set_rate_window(Duration::ZERO);
        fake.set_keep_files(false);
        fake.set_default_latency(Duration::from_millis(20));
        let fleet = Fleet::new(&fake, 10_000, 1_000, "10s");
        let c = concurrency.to_string();
        let args = ["--reconcile", "--concurrency", &c, "--timeout", "30m", "-q"];
        let (took, _, (user, system)) = run_measured(&fleet, &args);
        assert_eq!(fake.request_count(), 10_000);
        let ideal = 10_000.0 * 0.020 / concurrency as f64;
        let ratio = took.as_secs_f64() / ideal;
        let per_call = (user + system) / 10_000.0 * 1e6;
        println!(
            "   --concurrency {concurrency}: {:.2} s, ideal {ideal:.2} s ({ratio:.2} ×); CPU {per_call:.0} µs a call (user {user:.2} s, system {system:.2} s)",
            took.as_secs_f64()
        );
        let _ = writeln!(
            table,
            "| converge 10,000 at 20 ms, `--concurrency {concurrency}` | {:.2} s ({ratio:.2} × the ideal {ideal:.2} s) | ≤ 1.25 × |",
            took.as_secs_f64()
        );
    }
}

fn reaction(table: &mut String) {
    println!("== reaction: daemon with 1,000 instances; 50 picture edits, one at a time");
    let fake = FakeGreenApi::start();
    fake.set_rate_window(Duration::ZERO);
    fake.set_keep_files(false);
    // minInterval 1s, and edits start 2 s after the initial pass: no edit waits on a throttle.
    let fleet = Fleet::new(&fake, 1_000, 1_000, "1s");
    let (child, log) = fleet.daemon(&[]);
    fake.wait_for_requests(1_000, Duration::from_secs(120));
    wait_for_log(&log, "daemon started", 1, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    let mut rng = fastrand::Rng::with_seed(11);
    let mut delays = Vec::new();
    for n in 0..50 {
        let path = &fleet.pictures[n * 7];
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, picture(&mut rng)).unwrap();
        let written = Instant::now();
        std::fs::rename(&tmp, path).unwrap();
        let seen = fake.wait_for_requests(1_001 + n, Duration::from_secs(30));
        assert_eq!(seen.len(), 1_001 + n, "edit {n} was not sent");
        let request = &seen[1_000 + n];
        assert_eq!(request.instance, fleet.ids[n * 7]);
        delays.push(request.received_at.duration_since(written).as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(200));
    }
    stop(child);
    let (p50, p99) = (percentile(delays.clone(), 50.0), percentile(delays, 99.0));
    let quiet = avatar_sync::daemon::QUIET.as_secs_f64() * 1000.0;
    println!(
        "   write → request at the fake: p50 {p50:.0} ms, p99 {p99:.0} ms (quiet window {quiet:.0} ms)"
    );
    let _ = writeln!(
        table,
        "| reaction, 1,000 instances, 50 edits | p50 {p50:.0} ms, p99 {p99:.0} ms (quiet window {quiet:.0} ms) | p99 ≤ quiet window + 50 ms |"
    );
}

fn idle(table: &mut String) {
    for concurrency in ["8", "64"] {
        println!(
            "== idle: daemon with 10,000 instances, 60 s, after converging them at --concurrency {concurrency}"
        );
        let fake = FakeGreenApi::start();
        fake.set_rate_window(Duration::ZERO);
        fake.set_keep_files(false);
        let fleet = Fleet::new(&fake, 10_000, 1_000, "10s");
        let (child, log) = fleet.daemon(&["--concurrency", concurrency]);
        fake.wait_for_requests(10_000, Duration::from_secs(300));
        wait_for_log(&log, "10000 in sync", 1, Duration::from_secs(60));
        std::thread::sleep(Duration::from_secs(2));
        let pid = child.id();
        let cpu_before = cpu_seconds(pid);
        std::thread::sleep(Duration::from_secs(60));
        let cpu = cpu_seconds(pid) - cpu_before;
        let rss = proc_status(pid, "VmRSS:") as f64 / 1024.0;
        stop(child);
        println!("   {cpu:.3} CPU-seconds in 60 s, RSS {rss:.1} MB");
        let _ = writeln!(
            table,
            "| idle daemon, 10,000 instances, 60 s (after converging at `--concurrency {concurrency}`) | {cpu:.3} CPU-s, {rss:.1} MB RSS | ≤ 0.05 CPU-s, ≤ 40 MB |"
        );
    }
}
