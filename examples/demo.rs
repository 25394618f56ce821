//! The whole of avatar-sync in a minute, with no GREEN-API account: start a fake GREEN-API
//! on 127.0.0.1, write a small manifest and two pictures into a temporary folder, then
//! reconcile (three uploads, after a read of what each instance shows), reconcile again
//! (nothing), change a picture (one upload).
//!
//! Run it with `cargo run --example demo`. It writes only inside a temporary folder, which
//! is removed at the end.

use avatar_sync::cli::Args;
use avatar_sync::{logging, modes};
use fake_green_api::FakeGreenApi;
use std::path::Path;

const SUPPORT: &[u8] = include_bytes!("pictures/support.jpg");
const SALES: &[u8] = include_bytes!("pictures/sales.jpg");
const SALES_V2: &[u8] = include_bytes!("pictures/sales-v2.jpg");
const DEMO_TOKEN: &str = "demoToken0123456789abcdef";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As `avatar-sync --reconcile` logs: warnings and errors only, the tables say the rest.
    logging::init(avatar_sync::cli::LogFormat::Text, -1);
    let fake = FakeGreenApi::start();
    // WhatsApp's real limit and the manifest's default minInterval: step 3 waits it out.
    for id in ["1101000001", "1101000002", "1101000003"] {
        fake.add_instance(id, DEMO_TOKEN);
    }

    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("pictures"))?;
    std::fs::write(dir.path().join("pictures/support.jpg"), SUPPORT)?;
    std::fs::write(dir.path().join("pictures/sales.jpg"), SALES)?;
    // Tokens live in files beside the manifest, never in it (under systemd:
    // ${CREDENTIALS_DIRECTORY}/…).
    std::fs::create_dir_all(dir.path().join("secrets"))?;
    std::fs::write(dir.path().join("secrets/demo.token"), DEMO_TOKEN)?;
    let manifest = format!(
        "# Three WhatsApp numbers, two pictures.\n\
         apiUrl: {url}\n\
         instances:\n\
         \x20 - idInstance: \"1101000001\"\n\
         \x20   apiTokenFile: secrets/demo.token\n\
         \x20   picture: pictures/support.jpg\n\
         \x20 - idInstance: \"1101000002\"\n\
         \x20   apiTokenFile: secrets/demo.token\n\
         \x20   picture: pictures/sales.jpg\n\
         \x20 - idInstance: \"1101000003\"\n\
         \x20   apiTokenFile: secrets/demo.token\n\
         \x20   picture: pictures/support.jpg\n",
        url = fake.url()
    );
    let manifest_path = dir.path().join("manifest.yaml");
    std::fs::write(&manifest_path, &manifest)?;
    let state_dir = dir.path().join("state");

    println!(
        "avatar-sync demo: a fake GREEN-API listens on {}",
        fake.url()
    );
    println!(
        "working folder (removed at the end): {}\n",
        dir.path().display()
    );
    println!("--- manifest.yaml\n{manifest}");

    step(
        1,
        "first --reconcile: every instance gets its picture",
        &fake,
        &manifest_path,
        &state_dir,
    )?;
    step(
        2,
        "second --reconcile right away: nothing changed, so no call at all",
        &fake,
        &manifest_path,
        &state_dir,
    )?;
    std::fs::write(dir.path().join("pictures/sales.jpg"), SALES_V2)?;
    println!("(pictures/sales.jpg was replaced by a new picture)\n");
    step(
        3,
        "--reconcile after the change: one upload, once the 10 s minInterval since the last call has passed",
        &fake,
        &manifest_path,
        &state_dir,
    )?;

    println!("--- state/state.json (what avatar-sync remembers; no token in it)");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state_dir.join("state.json"))?)?;
    println!("{state:#}");
    if let Ok(changes) = std::fs::read_to_string(state_dir.join("changes.jsonl")) {
        println!("--- state/changes.jsonl (records changed since, replayed over state.json)");
        print!("{changes}");
    }
    println!("Done. Next: `cargo run -- --help`, and the README for a real GREEN-API instance.");
    Ok(())
}

fn step(
    n: u32,
    title: &str,
    fake: &FakeGreenApi,
    manifest: &Path,
    state_dir: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    println!("=== step {n}: {title}");
    let (before, reads_before) = (fake.request_count(), fake.reads().len());
    let args = Args::parse_from_args([
        "avatar-sync".as_ref(),
        "--reconcile".as_ref(),
        "--manifest".as_ref(),
        manifest.as_os_str(),
        "--state-dir".as_ref(),
        state_dir.as_os_str(),
    ])?;
    let env = |_: &str| None;
    let output = modes::run(&args, &env)?;
    print!("{}", output.stdout);
    let calls = fake.requests_since(before);
    let reads = fake.reads_since(reads_before);
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    println!(
        "\nthe fake GREEN-API received {} and {} (exit code {}):",
        plural(calls.len(), "upload"),
        plural(reads.len(), "read"),
        output.exit_code
    );
    for read in &reads {
        println!(
            "  read {} of {}  -> {}",
            read.method, read.instance, read.answer
        );
    }
    for call in &calls {
        println!(
            "  POST /waInstance{}/setProfilePicture/[token]  file={} sha256={}…  -> {}",
            call.instance,
            call.filename.as_deref().unwrap_or("?"),
            &call.file_sha256[..12],
            call.answer
        );
    }
    println!();
    Ok(())
}
