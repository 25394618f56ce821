//! The `avatar-sync` binary: parse the command line, set up logging, run the mode, print
//! its output, and turn the result into the contract's exit code. No logic of its own.

use avatar_sync::cli::Args;
use avatar_sync::{Error, logging, modes};
use std::io::Write as _;
use std::process::ExitCode;

/// EX_USAGE: the command line is wrong.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let args = match Args::parse_from_args(std::env::args_os()) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(EXIT_USAGE),
            };
        }
    };
    logging::init(args.output.log_format, args.log_verbosity());

    let env = |name: &str| std::env::var(name).ok();
    let result = modes::run(&args, &env);
    tracing::debug!(
        peak_rss_kib = avatar_sync::usage::peak_rss_kib(),
        "resources"
    );
    match result {
        Ok(output) => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(output.stdout.as_bytes());
            if !output.stdout.is_empty() && !output.stdout.ends_with('\n') {
                let _ = stdout.write_all(b"\n");
            }
            ExitCode::from(output.exit_code)
        }
        Err(e) => {
            for line in e.to_string().lines() {
                tracing::error!(kind = e.label(), "{line}");
            }
            if args.run.json {
                let doc =
                    serde_json::json!({"error": {"kind": e.label(), "message": e.to_string()}});
                println!("{}", avatar_sync::redact::scrub(&format!("{doc:#}")));
            }
            ExitCode::from(match e {
                Error::Usage(_) => EXIT_USAGE,
                _ => 1,
            })
        }
    }
}
