//! The fake on its own, for `.ci/containers` (avatar-sync in containers on the host's
//! network): serves on 127.0.0.1 until killed, prints `url <base>` first, then one line per
//! request it records, as it records it:
//! `call <idInstance> <token ok|bad> <sha256 of the file> <answer>` for `setProfilePicture`,
//! `read <idInstance> <method> <answer>` for the reads.
//!
//!   cargo run -p fake-green-api --example serve -- TOKEN RATE_WINDOW_MS ID...

use fake_green_api::FakeGreenApi;
use std::io::Write as _;
use std::time::Duration;

fn main() {
    let usage = "usage: serve TOKEN RATE_WINDOW_MS ID...";
    let mut args = std::env::args().skip(1);
    let token = args.next().expect(usage);
    let window: u64 = args.next().and_then(|ms| ms.parse().ok()).expect(usage);
    let fake = FakeGreenApi::start();
    fake.set_rate_window(Duration::from_millis(window));
    for id in args {
        fake.add_instance(&id, &token);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "url {}", fake.url()).unwrap();
    out.flush().unwrap();
    let (mut calls, mut reads) = (0, 0);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        for call in fake.requests().iter().skip(calls) {
            let token = if call.token_valid { "ok" } else { "bad" };
            let (id, sha, answer) = (&call.instance, &call.file_sha256, &call.answer);
            writeln!(out, "call {id} {token} {sha} {answer}").unwrap();
            calls += 1;
        }
        for read in fake.reads().iter().skip(reads) {
            writeln!(
                out,
                "read {} {} {}",
                read.instance, read.method, read.answer
            )
            .unwrap();
            reads += 1;
        }
        out.flush().unwrap();
    }
}
