//! The modes of the command line: picks the one `args` asks for and runs it, returning
//! what to print on stdout and the exit code. Shared by `main` and the demo.

mod check;
mod daemon;
mod drift;
mod once;
mod preview;

use crate::Error;
use crate::cli::{Args, Mode};
use crate::manifest::{self, Scope};
use crate::report::{Render, ShardLine};
use crate::state::StateDir;
use once::Tokens;
use std::time::SystemTime;

/// What a finished mode prints on stdout, and the exit code it implies.
#[derive(Debug)]
pub struct Output {
    /// The table or the JSON document.
    pub stdout: String,
    /// 0, 1 or 2 (see `--help`).
    pub exit_code: u8,
}

impl Output {
    /// Prints `report` as JSON or as a table, with its exit code.
    fn of(report: &impl Render, json: bool) -> Self {
        Self {
            stdout: if json {
                report.json()
            } else {
                report.table(SystemTime::now()).render()
            },
            exit_code: report.exit_code(),
        }
    }
}

/// Runs the mode `args` selects. `env` looks up environment variables for the defaults.
pub fn run(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<Output, Error> {
    let manifest_path = args.manifest_path(env);
    let mut manifest = manifest::load(&manifest_path)?;
    let mode = args.mode();
    let scope = scope(args, env, &manifest, mode)?;
    let shard_line = scope.shard().map(|shard| ShardLine {
        shard,
        of: manifest.instances.len(),
    });
    manifest.restrict(&scope);
    let state_dir = || args.state_dir(env).map(StateDir::new).map_err(Error::Usage);
    if !matches!(mode, Mode::Check) {
        // --check lists them in its report.
        for warning in &manifest.warnings {
            tracing::warn!(kind = warning.kind.label(), "{warning}");
        }
    }
    let concurrency = usize::from(args.concurrency);
    match mode {
        Mode::Check => Ok(Output::of(&check::check(&manifest), args.json)),
        Mode::Preview => {
            let out = args
                .preview
                .as_deref()
                .unwrap_or(std::path::Path::new("preview"));
            Ok(Output::of(&preview::preview(&manifest, out)?, args.json))
        }
        Mode::Daemon => {
            // A bad manifest at start was fatal above; later edits that break it are ignored.
            let dir = state_dir()?;
            let settings = daemon::Settings {
                manifest_path,
                dir,
                concurrency,
                scope,
                listen: args.listen,
            };
            let daemon = daemon::serve(settings, manifest);
            runtime()?.block_on(daemon)?;
            Ok(Output {
                stdout: String::new(),
                exit_code: 0,
            })
        }
        Mode::Reconcile => {
            let dir = state_dir()?;
            let once = once::reconcile(manifest, &dir, concurrency, args.timeout());
            let mut report = runtime()?.block_on(once)?;
            report.shard = shard_line;
            Ok(Output::of(&report.listing(args.all), args.json))
        }
        Mode::DryRun => {
            let mut report = once::plan_only(&manifest, &state_dir()?, Tokens::Required)?;
            report.shard = shard_line;
            Ok(Output::of(&report.listing(args.all), args.json))
        }
        Mode::Drift => {
            let dir = state_dir()?;
            let drift = drift::drift(&manifest, &dir, concurrency);
            let mut report = runtime()?.block_on(drift)?;
            report.shard = shard_line;
            Ok(Output::of(&report.listing(args.all), args.json))
        }
        Mode::Status => {
            let mut report = once::plan_only(&manifest, &state_dir()?, Tokens::Optional)?;
            report.manifest_revision = manifest::git_revision(&manifest_path);
            report.shard = shard_line;
            Ok(Output::of(&report, args.json))
        }
    }
}

/// The instances this run acts on: `--instance` (each must be in the manifest) and the
/// shard (`--check` validates the whole manifest, whatever shard this is).
fn scope(
    args: &Args,
    env: &dyn Fn(&str) -> Option<String>,
    manifest: &manifest::Manifest,
    mode: Mode,
) -> Result<Scope, Error> {
    let scope = Scope::only(args.instances.iter().cloned());
    if let Some(id) = scope.missing_from(manifest).first() {
        return Err(Error::Usage(format!(
            "--instance {id}: {} has no instance with this idInstance",
            manifest.path.display()
        )));
    }
    let hostname = || {
        env("HOSTNAME").filter(|h| !h.is_empty()).or_else(|| {
            let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
            Some(name.trim().to_owned())
        })
    };
    let shard = args.shard(&hostname).map_err(Error::Usage)?;
    Ok(scope.in_shard(shard.filter(|_| mode != Mode::Check)))
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        // Blocking work is reading pictures: a few threads keep up with any
        // --concurrency, and every extra thread costs a malloc arena that keeps its memory.
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .map_err(|source| Error::Host {
            what: "cannot start the async runtime".to_owned(),
            source,
        })
}
