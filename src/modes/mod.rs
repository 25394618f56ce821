//! The modes of the command line: picks the one `args` asks for and runs it, returning
//! what to print on stdout and the exit code. Shared by `main` and the demo.

mod check;
mod daemon;
mod drift;
mod once;
mod plan;
mod policy;
mod preview;
mod problems;

use crate::Error;
use crate::cli::{Args, Mode};
use crate::error::MANIFEST_INVALID;
use crate::manifest::{self, Keep, Manifest, PendingCache, Scope, Shard};
use crate::reconcile::Rows;
use crate::report::{Render, ShardLine};
use crate::state::StateDir;
use once::Tokens;
use std::path::Path;
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
        let stdout = if json {
            report.json()
        } else {
            report.table(SystemTime::now()).render()
        };
        Self {
            // Paths as written: no value `${NAME}` expanded to leaves the process.
            stdout: crate::redact::scrub(&stdout).into_owned(),
            exit_code: report.exit_code(),
        }
    }
}

/// Runs the mode `args` selects. `env` looks up environment variables for the defaults.
pub fn run(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<Output, Error> {
    let mode = args.mode();
    // Sealed tokens open with these wherever a token is read, as variables are read from
    // the process's environment.
    if mode != Mode::PrintSchema {
        let identities = (args.age_identity(env)).map(|file| manifest::AgeIdentities::load(&file));
        manifest::use_identities(identities.transpose().map_err(Error::Identity)?);
    }
    match run_mode(args, env, mode) {
        // A one-shot mode lists a manifest's problems on stdout, as it lists instances';
        // stderr gets one line saying so. The daemon logs them.
        Err(Error::Manifest(e)) if mode != Mode::Daemon => {
            let report = problems::ManifestProblems::new(&e, mode == Mode::Check);
            tracing::error!(kind = MANIFEST_INVALID, "{}", report.log_line());
            Ok(Output::of(&report, args.run.json))
        }
        other => other,
    }
}

fn run_mode(
    args: &Args,
    env: &dyn Fn(&str) -> Option<String>,
    mode: Mode,
) -> Result<Output, Error> {
    let manifest_path = args.manifest_path(env);
    let state_dir = || args.state_dir(env).map(StateDir::new).map_err(Error::Usage);
    let prepare_at =
        |dir: Option<&StateDir>, at: &str| prepare(args, env, mode, &manifest_path, dir, at);
    let prepare = |dir: Option<&StateDir>| prepare_at(dir, "HEAD");
    // The manifest's problems come first, then the state directory's, as in every mode.
    let prepare_in_dir = || -> Result<(Prepared, StateDir), Error> {
        let dir = state_dir();
        let prepared = prepare(dir.as_ref().ok())?;
        Ok((prepared, dir?))
    };
    let concurrency = usize::from(args.run.concurrency);
    match mode {
        Mode::PrintSchema => Ok(Output {
            stdout: manifest::json_schema(),
            exit_code: 0,
        }),
        Mode::Plan => {
            let range = args.modes.plan.as_deref().unwrap_or("HEAD");
            let preview = args.modes.preview.as_deref();
            let report = plan::plan(&manifest_path, range, env, preview)?;
            let stdout = if args.run.json {
                report.json()
            } else {
                report.markdown()
            };
            Ok(Output {
                stdout: crate::redact::scrub(&stdout).into_owned(),
                exit_code: report.exit_code(),
            })
        }
        Mode::Check => {
            let prepared = prepare(None)?;
            let mut report = check::check(&prepared.manifest, args.modes.strict);
            report.revision = prepared.pinned.as_ref().map(manifest::Pinned::revision);
            Ok(Output::of(&report, args.run.json))
        }
        Mode::Preview => {
            let prepared = prepare(None)?;
            let out = args
                .modes
                .preview
                .as_deref()
                .unwrap_or(std::path::Path::new("preview"));
            let report = preview::preview(&prepared.manifest, out)?;
            Ok(Output::of(&report, args.run.json))
        }
        Mode::Daemon => {
            // A bad manifest at start is fatal here; later edits that break it are ignored.
            let (prepared, dir) = prepare_in_dir()?;
            let Prepared {
                manifest,
                parse_to_keep,
                scope,
                signers,
                pinned,
                ..
            } = prepared;
            let settings = daemon::Settings {
                manifest_path: manifest_path.clone(),
                dir,
                concurrency,
                scope,
                listen: args.listen.listen,
                listen_hosts: args.listen.hosts.clone(),
                parse_to_keep,
                replace: args.scope.replace.clone(),
                resume: args.scope.resume,
                signed: signers.zip(pinned),
            };
            let daemon = daemon::serve(settings, manifest);
            runtime()?.block_on(daemon)?;
            Ok(Output {
                stdout: String::new(),
                exit_code: 0,
            })
        }
        Mode::Reconcile => {
            let dir = match state_dir() {
                Ok(dir) => dir,
                Err(e) => return prepare(None).and(Err(e)),
            };
            // At fleet size, reading the state takes about as long as loading the manifest:
            // the state directory is locked and read beside it.
            let (prepared, opened) = once::open_beside(&dir, || prepare(Some(&dir)))?;
            let run = once::Run {
                concurrency,
                timeout: args.timeout(),
                // At fleet size, rows for every instance cost more than the run.
                rows: if args.run.json || args.output.all {
                    Rows::All
                } else {
                    Rows::Listed
                },
                replace: args.scope.replace.clone(),
                resume: args.scope.resume,
            };
            let once = once::reconcile(prepared.manifest, prepared.parse_to_keep, opened, run);
            let mut report = runtime()?.block_on(once)?;
            if let Some(pinned) = &prepared.pinned {
                crate::layout::record_verified(dir.path(), &pinned.commit);
            }
            report.shard = prepared.shard_line;
            Ok(Output::of(&report.listing(args.output.all), args.run.json))
        }
        Mode::DryRun => {
            let (prepared, dir) = prepare_in_dir()?;
            let mut report = once::plan_only(&prepared.manifest, &dir, Tokens::Required)?;
            report.shard = prepared.shard_line;
            Ok(Output::of(&report.listing(args.output.all), args.run.json))
        }
        Mode::Drift => {
            let (prepared, dir) = prepare_in_dir()?;
            let shard_line = prepared.shard_line;
            let drift = drift::drift(prepared.manifest, &dir, concurrency, args.timeout());
            let mut report = runtime()?.block_on(drift)?;
            report.shard = shard_line;
            Ok(Output::of(&report.listing(args.output.all), args.run.json))
        }
        Mode::Status => {
            let (prepared, dir, unverified) = match prepare_in_dir() {
                // HEAD is not verified: the state as of the last verified revision the
                // state directory records, and the newer one named; exit 1.
                Err(Error::Unverified(why)) => {
                    let dir = state_dir()?;
                    let file = dir.path().join(crate::layout::VERIFIED_REVISION_FILE);
                    let Some(last) = std::fs::read_to_string(&file).ok() else {
                        return Err(Error::Unverified(why));
                    };
                    let at = last.trim();
                    let prepared = prepare_at(Some(&dir), at)?;
                    (prepared, dir, Some(why))
                }
                other => {
                    let (prepared, dir) = other?;
                    (prepared, dir, None)
                }
            };
            let mut report = once::plan_only(&prepared.manifest, &dir, Tokens::Optional)?;
            report.revision = match &prepared.pinned {
                Some(pinned) => Some(manifest::Revision {
                    unverified: (unverified.as_deref())
                        .map(|why| why.trim_start_matches("revision ").to_owned()),
                    ..pinned.revision()
                }),
                None => manifest::git_revision(&prepared.manifest),
            };
            report.shard = prepared.shard_line;
            let mut output = Output::of(&report, args.run.json);
            if let Some(why) = unverified {
                tracing::error!(kind = "revision-unverified", "{why}");
                output.exit_code = 1;
            }
            Ok(output)
        }
    }
}

/// The manifest a mode runs on, narrowed to its scope.
struct Prepared {
    /// Only the instances in `scope`.
    manifest: Manifest,
    /// A fresh parse, for the state directory's writer to keep.
    parse_to_keep: Option<PendingCache>,
    /// `--instance` and `--shard`.
    scope: Scope,
    /// The shard line of the report, when the run is a shard.
    shard_line: Option<ShardLine>,
    /// With `--verify-signers`: the verified commit, whose files the manifest names.
    pinned: Option<manifest::Pinned>,
    /// `--verify-signers`'s keys.
    signers: Option<manifest::AllowedSigners>,
}

/// Loads the manifest (its parse cached in the state directory `dir`, when the mode has
/// one: `--check` always parses the YAML), logs its warnings and keeps the instances in
/// the run's scope.
fn prepare(
    args: &Args,
    env: &dyn Fn(&str) -> Option<String>,
    mode: Mode,
    path: &Path,
    dir: Option<&StateDir>,
    at: &str,
) -> Result<Prepared, Error> {
    let started = std::time::Instant::now();
    // The state directory's writers keep a fresh parse there; readers only use it.
    let keep = match mode {
        Mode::Reconcile | Mode::Daemon => Keep::Parse,
        _ => Keep::Nothing,
    };
    // --check validates the whole manifest, whatever shard this is (or its variable says);
    // a shard reads only its own instances.
    let shard = match mode {
        Mode::Check => None,
        _ => args.shard(&|| hostname(env)).map_err(Error::Usage)?,
    };
    let signers = (args.verify_signers(env))
        .map(|file| manifest::AllowedSigners::load(&file))
        .transpose()
        .map_err(Error::Revision)?;
    let (mut manifest, parse_to_keep, pinned) = match (&signers, dir) {
        // Signed revisions: the manifest and pictures of HEAD's commit, verified; never
        // the disk, and never a cached parse of it.
        (Some(signers), _) => {
            let snapshot = manifest::snapshot(path, at, shard, env, Some(signers));
            let (manifest, pinned) = snapshot
                .map_err(|e| match e {
                    manifest::SnapshotError::Manifest(problems) => Error::Manifest(problems),
                    manifest::SnapshotError::Unverified(why) => Error::Unverified(why),
                    manifest::SnapshotError::Git(why) => Error::Revision(why),
                })?
                .split();
            tracing::info!(
                commit = %pinned.commit,
                signer = %pinned.signer.as_ref().map(ToString::to_string).unwrap_or_default(),
                "revision verified"
            );
            (manifest, None, Some(pinned))
        }
        (None, Some(dir)) => {
            let (manifest, parse) = manifest::load_cached(path, dir.path(), keep, shard)?;
            (manifest, parse, None)
        }
        (None, None) => (manifest::load(path, shard)?, None, None),
    };
    tracing::debug!(
        instances = manifest.instances.len(),
        took_ms = crate::clock::millis(started.elapsed()),
        "manifest loaded"
    );
    let scope = scope(args, &manifest, shard)?;
    let shard_line = scope.shard().map(|shard| ShardLine {
        shard,
        of: manifest.written,
    });
    manifest.restrict(&scope);
    if mode != Mode::Check {
        // --check lists them in its report.
        for warning in &manifest.warnings {
            tracing::warn!(kind = warning.kind.label(), "{warning}");
        }
    }
    Ok(Prepared {
        manifest,
        parse_to_keep,
        scope,
        shard_line,
        pinned,
        signers,
    })
}

/// The instances this run acts on: `--instance` (each must be in the manifest, and in the
/// shard) within the shard the manifest was read for.
fn scope(args: &Args, manifest: &manifest::Manifest, shard: Option<Shard>) -> Result<Scope, Error> {
    let scope = Scope::only(args.scope.instances.iter().cloned()).in_shard(shard);
    if let (Some(shard), Some(id)) = (shard, scope.outside_shard().first()) {
        let owner = manifest::shard_of(id.as_str(), shard.count());
        return Err(Error::Scope(format!(
            "--instance {id}: instance {id} belongs to shard {owner}/{}, not to this one \
             ({shard}); run it there, or without --shard",
            shard.count()
        )));
    }
    if let Some(id) = scope.missing_from(manifest).first() {
        return Err(Error::Usage(format!(
            "--instance {id}: {} has no instance with this idInstance",
            manifest.path.display()
        )));
    }
    replace_in_scope(&args.scope.replace, manifest, &scope)?;
    Ok(scope)
}

/// The host's name, for `--shard-from-hostname`: `HOSTNAME`, else gethostname(2) (not
/// /proc/sys/kernel/hostname: the unit's ProcSubset=pid hides /proc/sys).
fn hostname(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    env("HOSTNAME").filter(|h| !h.is_empty()).or_else(|| {
        let name = nix::unistd::gethostname().ok()?;
        name.into_string().ok()
    })
}

/// Checks that each `--replace` id is an instance this run acts on: in this shard (whose
/// manifest holds only its own instances), in the manifest, among `--instance` when given.
fn replace_in_scope(
    ids: &[manifest::InstanceId],
    manifest: &Manifest,
    scope: &Scope,
) -> Result<(), Error> {
    if let Some(shard) = scope.shard()
        && let Some(id) = ids.iter().find(|id| !shard.contains(id))
    {
        return Err(Error::Scope(format!(
            "--replace {id}: instance {id} belongs to shard {}/{}, not to this one ({shard}); \
             run it there, or without --shard",
            manifest::shard_of(id.as_str(), shard.count()),
            shard.count()
        )));
    }
    let named = Scope::only(ids.iter().cloned());
    if let Some(id) = named.missing_from(manifest).first() {
        return Err(Error::Replace(format!(
            "--replace {id}: {} has no instance with this idInstance; nothing was sent",
            manifest.path.display()
        )));
    }
    match ids.iter().find(|id| !scope.contains(id)) {
        None => Ok(()),
        Some(id) => Err(Error::Replace(format!(
            "--replace {id}: instance {id} is not among this run's --instance; name it there \
             too, or drop --instance; nothing was sent"
        ))),
    }
}

/// The async runtime: one thread runs the loop, its calls and their answers (the work is
/// waiting on GREEN-API; handing each answer between threads cost more CPU than it took
/// to handle), and a small pool runs what is heavy (decoding and preparing pictures,
/// fingerprints, thumbnails).
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        // A few threads keep up with any --concurrency, and every extra thread costs a
        // malloc arena that keeps its memory.
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .map_err(|source| Error::Host {
            what: "cannot start the async runtime".to_owned(),
            source,
        })
}
