//! The `--listen` listener under a flood of held connections: the figures of
//! docs/performance.md's listener section, measured on this machine against the release
//! binary, on loopback.
//!
//! ```sh
//! cargo bench --bench listener            # about 40 seconds
//! ```
//!
//! A daemon with 100 instances listens; this process opens up to 16,000 connections that
//! never send a request and holds them, then probes `/healthz` and reads the daemon's
//! memory. Without the connection cap, 16,000 held connections took the daemon from 10 MB to
//! 380 MB (never given back), and with 1,024 descriptors they starved the probes and the
//! engine's own files.

use fake_green_api::FakeGreenApi;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_avatar-sync");
const TOKEN: &str = "benchToken0123456789abcdef";
const SUPPORT_JPG: &[u8] = include_bytes!("../examples/pictures/support.jpg");
const INSTANCES: usize = 100;
const FLOOD: u64 = 16_000;

fn main() {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("the descriptor limit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("raising the descriptor limit");
    let flood = FLOOD.min(hard.saturating_sub(500));
    println!("== listener: a daemon with {INSTANCES} instances; {flood} held connections");

    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGreenApi::start();
    fake.set_rate_window(Duration::ZERO);
    std::fs::write(dir.path().join("a.jpg"), SUPPORT_JPG).unwrap();
    let mut yaml = format!("apiUrl: {}\nminInterval: 10s\ninstances:\n", fake.url());
    for n in 0..INSTANCES {
        let id = format!("{}", 1_101_000_000 + n);
        fake.add_instance(&id, TOKEN);
        yaml.push_str(&format!(
            "  - idInstance: \"{id}\"\n    apiTokenEnv: TOKEN\n    picture: a.jpg\n"
        ));
    }
    let manifest = dir.path().join("manifest.yaml");
    std::fs::write(&manifest, yaml).unwrap();
    let state = dir.path().join("state");
    let mut child = Command::new(BIN)
        .env_clear()
        .env("TOKEN", TOKEN)
        .args(["--listen", "127.0.0.1:0", "--manifest"])
        .arg(&manifest)
        .arg("--state-dir")
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    fake.wait_for_requests(INSTANCES, Duration::from_secs(60));
    let address_file = state.join("listen-address");
    let addr: SocketAddr = loop {
        if let Ok(text) = std::fs::read_to_string(&address_file) {
            break text.trim().parse().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_secs(1));
    let pid = child.id();
    let idle = rss_mb(pid);
    let quiet = probes(addr, 200);

    let started = Instant::now();
    let held: Vec<TcpStream> = (0..flood)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
        .collect();
    let opened = started.elapsed();
    let flooded = probes(addr, 200);
    let peak = rss_mb(pid);
    drop(held);
    // Held connections the daemon still has close at its 10 s head timeout.
    std::thread::sleep(Duration::from_secs(12));
    let after = rss_mb(pid);
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = child.wait();

    println!(
        "   opened {flood} connections in {:.1} s; RSS {idle:.1} MB idle, {peak:.1} MB in the flood, \
         {after:.1} MB after",
        opened.as_secs_f64()
    );
    println!(
        "   /healthz: p50 {:.2} ms, p99 {:.2} ms quiet; p50 {:.2} ms, p99 {:.2} ms in the flood \
         ({} of 200 answered)",
        quiet.p50, quiet.p99, flooded.p50, flooded.p99, flooded.answered
    );
    println!(
        "\n| figure | measured |\n|---|---|\n| daemon RSS, idle → {flood} held connections → after | {idle:.1} → {peak:.1} → {after:.1} MB |\n| `/healthz` in the flood | {}/200 answered, p50 {:.2} ms, p99 {:.2} ms (quiet: p50 {:.2} ms) |",
        flooded.answered, flooded.p50, flooded.p99, quiet.p50
    );
}

/// How `/healthz` answered `n` probes, one after another, each on a new connection.
struct Probes {
    answered: usize,
    p50: f64,
    p99: f64,
}

fn probes(addr: SocketAddr, n: usize) -> Probes {
    let mut times = Vec::new();
    for _ in 0..n {
        let started = Instant::now();
        if healthz(addr).is_ok_and(|ok| ok) {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let answered = times.len();
    times.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let index = ((times.len() as f64 - 1.0) * p).round() as usize;
        times.get(index).copied().unwrap_or(f64::NAN)
    };
    Probes {
        answered,
        p50: at(0.5),
        p99: at(0.99),
    }
}

fn healthz(addr: SocketAddr) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer.starts_with("HTTP/1.1 200"))
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = (status.lines())
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}
