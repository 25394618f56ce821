//! Picks the mode the command line asks for and runs it, returning what to print on
//! stdout and the exit code. Shared by `main` and the demo.

use crate::cli::{Args, Mode};
use crate::desired::Tokens;
use crate::report::{Report, ReportKind};
use crate::state::StateDir;
use crate::{Error, check, daemon, manifest, preview, reconcile};

/// What a finished mode prints on stdout, and the exit code it implies.
#[derive(Debug)]
pub struct Output {
    /// The table or the JSON document.
    pub stdout: String,
    /// 0, 1 or 2 (see `--help`).
    pub exit_code: u8,
}

impl Output {
    fn new(
        json: bool,
        as_json: impl FnOnce() -> String,
        as_table: impl FnOnce() -> String,
        exit_code: u8,
    ) -> Self {
        Self {
            stdout: if json { as_json() } else { as_table() },
            exit_code,
        }
    }
}

/// Runs the mode `args` selects. `env` looks up environment variables for the defaults.
pub fn run(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<Output, Error> {
    let manifest_path = args.manifest_path(env);
    let manifest = manifest::load(&manifest_path)?;
    let state_dir = || args.state_dir(env).map(StateDir::new).map_err(Error::Usage);
    let mode = args.mode();
    if !matches!(mode, Mode::Check) {
        // --check lists them in its report.
        for warning in &manifest.warnings {
            tracing::warn!("{warning}");
        }
    }
    let (report, kind) = match mode {
        Mode::Check => {
            let report = check::check(&manifest);
            return Ok(Output::new(
                args.json,
                || report.to_json(),
                || report.to_table(),
                report.exit_code(),
            ));
        }
        Mode::Preview => {
            let out = args
                .preview
                .as_deref()
                .unwrap_or(std::path::Path::new("preview"));
            let report = preview::preview(&manifest, out)?;
            return Ok(Output::new(
                args.json,
                || report.to_json(),
                || report.to_table(),
                report.exit_code(),
            ));
        }
        Mode::Daemon => {
            let daemon = daemon::DaemonArgs {
                manifest: manifest_path,
                state_dir: state_dir()?.path().to_owned(),
                concurrency: usize::from(args.concurrency),
            };
            // A bad manifest at start was fatal above; later edits that break it are ignored.
            runtime()?.block_on(daemon::run(daemon, manifest))?;
            return Ok(Output {
                stdout: String::new(),
                exit_code: 0,
            });
        }
        Mode::Reconcile => {
            let dir = state_dir()?;
            let reconcile = reconcile::reconcile(
                manifest,
                &dir,
                usize::from(args.concurrency),
                args.timeout(),
            );
            (runtime()?.block_on(reconcile)?, ReportKind::Reconcile)
        }
        Mode::DryRun => (
            reconcile::plan_only(&manifest, &state_dir()?, Tokens::Required)?,
            ReportKind::DryRun,
        ),
        Mode::Status => (
            reconcile::plan_only(&manifest, &state_dir()?, Tokens::Optional)?,
            ReportKind::Status,
        ),
    };
    log_summary(&report);
    let now = std::time::SystemTime::now();
    Ok(Output::new(
        args.json,
        || report.to_json(),
        || report.to_table(now),
        report.exit_code(kind),
    ))
}

fn log_summary(report: &Report) {
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
