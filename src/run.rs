//! Picks the mode the command line asks for and runs it, returning what to print on
//! stdout and the exit code. Shared by `main` and the demo.

use crate::cli::{Args, Mode};
use crate::desired::Tokens;
use crate::report::ReportKind;
use crate::state::StateDir;
use crate::{Error, check, daemon, manifest, reconcile};

/// What a finished mode prints on stdout, and the exit code it implies.
#[derive(Debug)]
pub struct Output {
    /// The table or the JSON document.
    pub stdout: String,
    /// 0, 1 or 2 (see `--help`).
    pub exit_code: u8,
}

/// Runs the mode `args` selects. `env` looks up environment variables for the defaults.
pub fn run(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<Output, Error> {
    let mode = args.mode();
    let manifest_path = args.manifest_path(env);
    let manifest = manifest::load(&manifest_path)?;
    if mode == Mode::Check {
        let report = check::check(&manifest);
        return Ok(Output {
            stdout: if args.json {
                report.to_json()
            } else {
                report.to_table()
            },
            exit_code: report.exit_code(),
        });
    }
    for warning in &manifest.warnings {
        tracing::warn!("{warning}");
    }
    let dir = StateDir::new(args.state_dir(env).map_err(Error::Usage)?);
    let (report, kind) = match mode {
        Mode::Reconcile => {
            let runtime = runtime()?;
            let concurrency = usize::from(args.concurrency);
            let report = runtime.block_on(reconcile::reconcile(
                manifest,
                &dir,
                concurrency,
                args.timeout(),
            ))?;
            (report, ReportKind::Reconcile)
        }
        Mode::DryRun => (
            reconcile::plan_only(&manifest, &dir, Tokens::Required)?,
            ReportKind::DryRun,
        ),
        Mode::Status => (
            reconcile::plan_only(&manifest, &dir, Tokens::Optional)?,
            ReportKind::Status,
        ),
        Mode::Check => unreachable!("handled above"),
        Mode::Daemon => {
            let daemon = daemon::DaemonArgs {
                manifest: manifest_path,
                state_dir: dir.path().to_owned(),
                concurrency: usize::from(args.concurrency),
            };
            // A bad manifest at start was fatal above; later edits that break it are ignored.
            runtime()?.block_on(daemon::run(daemon, manifest))?;
            return Ok(Output {
                stdout: String::new(),
                exit_code: 0,
            });
        }
    };
    let s = &report.summary;
    tracing::debug!(peak_rss_kib = crate::usage::peak_rss_kib(), "resources");
    tracing::info!(
        in_sync = s.in_sync,
        applied = s.applied,
        pending = s.pending,
        throttled = s.throttled,
        failed = s.failed,
        suspended = s.suspended,
        "done"
    );
    Ok(Output {
        stdout: if args.json {
            report.to_json()
        } else {
            report.to_table(std::time::SystemTime::now())
        },
        exit_code: report.exit_code(kind),
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        // Blocking work is reading pictures: a few threads keep up with any
        // --concurrency, and every extra thread costs a malloc arena that keeps its memory.
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .map_err(|e| Error::Host(format!("cannot start the async runtime: {e}")))
}
