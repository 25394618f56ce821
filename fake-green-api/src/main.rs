//! The sandbox: the fake GREEN-API on 127.0.0.1 as a program, so a new user can try
//! avatar-sync (`--check`, `--reconcile`, the daemon with `--listen`, `--drift`) without a
//! GREEN-API account. It prints its URL and a manifest to paste, then one line per request
//! as it arrives (time, request, instance, picture size, answer), never a token, until
//! Ctrl-C.
//!
//!   cargo run -p fake-green-api -- --instance 1101000001:TOKEN --instance 1101000002:TOKEN2 [--port 7700]

use fake_green_api::{FakeGreenApi, Read, Request};
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The port when `--port` is not given: the one `examples/sandbox.yaml` names.
const DEFAULT_PORT: u16 = 7700;
/// How often the recorded requests are looked at (the printed times are the fake's own).
const POLL: Duration = Duration::from_millis(50);
/// EX_USAGE: the command line is wrong.
const EXIT_USAGE: u8 = 64;

const USAGE: &str = "\
usage: fake-green-api --instance ID:TOKEN [--instance ID:TOKEN ...] [--port PORT]

A fake GREEN-API on 127.0.0.1 for trying avatar-sync without an account. It answers
setProfilePicture as GREEN-API does (401 for another token, WhatsApp's rate-overlimit for
calls less than 10 s apart), serves the live pictures --drift reads, and prints each request
it receives until Ctrl-C. No request leaves this machine.

  --instance ID:TOKEN   an instance (idInstance, digits) and the token it accepts; repeatable.
                        Make the token up: this is a fake, never give it a real one.
  --port PORT           the port on 127.0.0.1 [default: 7700; 0 picks a free one]
  -h, --help            this text";

/// The command line.
struct Options {
    /// (idInstance, token), in the order given.
    instances: Vec<(String, String)>,
    port: u16,
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("fake-green-api: {message}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let fake = match FakeGreenApi::start_on(options.port) {
        Ok(fake) => fake,
        Err(e) => {
            eprintln!(
                "fake-green-api: cannot listen on 127.0.0.1:{}: {e} (try another --port)",
                options.port
            );
            return ExitCode::FAILURE;
        }
    };
    for (id, token) in &options.instances {
        fake.add_instance(id, token);
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner(&fake.url(), &options.instances).as_bytes());
    let _ = out.flush();
    serve(&fake, &mut out);
    ExitCode::SUCCESS
}

/// `Ok(None)` for `--help`.
fn parse(args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        instances: Vec::new(),
        port: DEFAULT_PORT,
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        // `--flag value` and `--flag=value` alike.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--instance" => {
                let given = value("--instance")?;
                let (id, token) = given
                    .split_once(':')
                    .ok_or_else(|| format!("--instance {given}: write it as ID:TOKEN"))?;
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("--instance: idInstance {id:?} is not all digits"));
                }
                // As GREEN-API's tokens, and as avatar-sync accepts them.
                if token.is_empty() || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(format!(
                        "--instance {id}: a token is ASCII letters and digits only, like sandboxToken1 \
                         (avatar-sync refuses any other)"
                    ));
                }
                if options.instances.iter().any(|(known, _)| known == id) {
                    return Err(format!("--instance {id} is given twice"));
                }
                options.instances.push((id.to_owned(), token.to_owned()));
            }
            "--port" => {
                let port = value("--port")?;
                options.port = port
                    .parse()
                    .map_err(|_| format!("--port {port}: not a port number (0 to 65535)"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.instances.is_empty() {
        return Err("give at least one --instance ID:TOKEN".to_owned());
    }
    Ok(Some(options))
}

/// What is printed first: the URL, the tokens' variables and a manifest to paste.
fn banner(url: &str, instances: &[(String, String)]) -> String {
    let mut text = format!(
        "fake GREEN-API listening on {url} (a sandbox: nothing leaves this machine; Ctrl-C stops it)\n\n\
         The tokens, for the shell that runs avatar-sync (made up, as given here):\n\n"
    );
    for (n, (_, token)) in instances.iter().enumerate() {
        text.push_str(&format!("  export SANDBOX_TOKEN_{}='{token}'\n", n + 1));
    }
    text.push_str(
        "\nA manifest (pictures relative to its folder; examples/sandbox.yaml is one, for port 7700):\n\n",
    );
    text.push_str(&format!("  apiUrl: {url}\n  instances:\n"));
    let pictures = ["pictures/support.jpg", "pictures/sales.jpg"];
    for (n, (id, _)) in instances.iter().enumerate() {
        text.push_str(&format!(
            "    - idInstance: \"{id}\"\n      apiTokenEnv: SANDBOX_TOKEN_{}\n      picture: {}\n",
            n + 1,
            pictures[n % pictures.len()]
        ));
    }
    text.push_str(&format!(
        "\nEach request as it arrives (UTC):\n\n{:<12}  {:<17}  {:<10}  {:>13}  answer\n",
        "time", "request", "instance", "picture"
    ));
    text
}

/// Prints the requests as they are recorded, forever (Ctrl-C ends the process).
fn serve(fake: &FakeGreenApi, out: &mut impl std::io::Write) {
    // The fake stamps requests with `Instant`; this pair turns them into wall-clock times.
    let (started, started_at) = (Instant::now(), SystemTime::now());
    let wall = |at: Instant| started_at + at.saturating_duration_since(started);
    let (mut calls, mut reads) = (0, 0);
    loop {
        std::thread::sleep(POLL);
        let new_calls = fake.requests_since(calls);
        let new_reads = fake.reads_since(reads);
        if new_calls.is_empty() && new_reads.is_empty() {
            continue;
        }
        calls += new_calls.len();
        reads += new_reads.len();
        let mut lines: Vec<(Instant, String)> = new_calls
            .iter()
            .map(|call| (call.received_at, call_line(call)))
            .chain(
                new_reads
                    .iter()
                    .map(|read| (read.received_at, read_line(read))),
            )
            .collect();
        lines.sort_by_key(|(at, _)| *at);
        for (at, line) in lines {
            let _ = writeln!(out, "{}  {line}", clock(wall(at)));
        }
        let _ = out.flush();
    }
}

/// A `setProfilePicture` call, without its time.
fn call_line(call: &Request) -> String {
    let size = if call.file.is_empty() {
        "no picture".to_owned()
    } else {
        format!("{} bytes", call.file.len())
    };
    format!(
        "{:<17}  {:<10}  {size:>13}  {}",
        "setProfilePicture",
        call.instance,
        answer(&call.answer, call.token_valid)
    )
}

/// A read of live state or an avatar file, without its time.
fn read_line(read: &Read) -> String {
    format!(
        "{:<17}  {:<10}  {:>13}  {}",
        read.method,
        read.instance,
        "-",
        answer(&read.answer, read.token_valid)
    )
}

/// The answer's label, and why when it is a 401 for another token (never the token).
fn answer(label: &str, token_valid: bool) -> String {
    if !token_valid && label == "401" {
        format!("{label} (not this instance's token)")
    } else {
        label.to_owned()
    }
}

/// `HH:MM:SS.mmm`, UTC.
fn clock(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        since.subsec_millis()
    )
}
