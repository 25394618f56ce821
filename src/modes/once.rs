//! The one-shot modes that plan from the state directory: `--reconcile` converges once,
//! `--dry-run` and `--status` only read.

use crate::Error;
use crate::clock::{Clock, Jitter};
use crate::gateway::{GatewayInitError, HttpGateway};
use crate::manifest::{InstanceId, Manifest, PendingCache};
use crate::picture::caches::Caches;
use crate::picture::pass::Uses;
use crate::plan::{self, Policy};
use crate::reconcile::target;
use crate::reconcile::{Options, Reconciler, Rows};
use crate::report::{self, Report, ReportKind, Status, ThisRun};
use crate::state::{Loaded, StateDir, StateLock, StateStore};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub(crate) use target::Tokens;

/// The state directory, locked and read for `--reconcile`.
pub(crate) struct Opened {
    dir: StateDir,
    lock: StateLock,
    loaded: Loaded,
}

/// Locks and reads the state directory `dir` on a thread of its own while `prepare` runs
/// on this one. `prepare`'s error comes first, as it would on its own, and leaves the
/// directory as it was: the thread only reads, and a state that cannot be read is moved
/// aside (with its loud error) only once `prepare` succeeded.
pub(crate) fn open_beside<T>(
    dir: &StateDir,
    prepare: impl FnOnce() -> Result<T, Error>,
) -> Result<(T, Opened), Error> {
    let (prepared, opened) = std::thread::scope(|scope| {
        let opening = scope.spawn(|| -> Result<(StateLock, Loaded), Error> {
            let lock = dir.lock("avatar-sync --reconcile")?;
            let loaded = dir.load()?;
            Ok((lock, loaded))
        });
        let prepared = prepare();
        let opened = opening
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (prepared, opened)
    });
    let prepared = prepared?;
    let (lock, loaded) = opened?;
    // Read as a reader reads; what could not be read is moved aside now, as a writer does.
    let loaded = if loaded.unreadable.is_some() {
        dir.load_for_write(&lock)?
    } else {
        loaded
    };
    let dir = dir.clone();
    Ok((prepared, Opened { dir, lock, loaded }))
}

/// How a `--reconcile` run goes, from the command line.
pub(crate) struct Run {
    /// At most this many uploads at once.
    pub concurrency: usize,
    /// How long to keep waiting on throttles and retries.
    pub timeout: Duration,
    /// Which instances the report has rows for.
    pub rows: Rows,
    /// `--replace`: instances uploaded again though their records say applied.
    pub replace: Vec<InstanceId>,
}

/// `--reconcile`: converge once, waiting out throttles and retryable failures until `timeout`.
pub(crate) async fn reconcile(
    manifest: Manifest,
    parse_to_keep: Option<PendingCache>,
    opened: Opened,
    run: Run,
) -> Result<Report, Error> {
    let Run {
        concurrency,
        timeout,
        rows,
        replace,
    } = run;
    let clock = Clock::start();
    // Loading the TLS roots takes tens of milliseconds: done beside the state's folding.
    let gateway = std::thread::spawn(HttpGateway::new);
    let Opened { dir, lock, loaded } = opened;
    if let Some(parse) = parse_to_keep {
        parse.save();
    }
    let store = StateStore::new(dir, lock, loaded)?;
    let options = Options {
        concurrency,
        give_up_when_blocked: true,
        settle: crate::picture::SETTLE,
        live_reads: false,
        observe_only: false,
    };
    let manifest = Arc::new(manifest);
    let gateway = gateway
        .join()
        .unwrap_or_else(|_| Err(GatewayInitError::panicked()))?;
    let mut reconciler =
        Reconciler::new(manifest, store, gateway, clock, Jitter::random(), options);
    reconciler.replace(replace);
    reconciler.run_until(clock.now() + timeout).await?;
    let saves = reconciler.save_cost();
    tracing::debug!(
        saves = saves.count,
        save_cpu_ms = crate::clock::millis(saves.cpu),
        "state saves"
    );
    let mut report = reconciler.report_rows(rows);
    report.calls = Some(reconciler.metrics().calls());
    crate::usage::free_aside(reconciler.close());
    for row in &mut report.instances {
        if row.status == Status::Pending {
            row.error_kind = Some("deadline".to_owned());
            row.error = Some("not sent before --timeout ran out".to_owned());
        }
    }
    log_summary(&report);
    Ok(report)
}

/// `--dry-run` (tokens required: a missing one would fail the real run) and `--status`
/// (tokens optional: it reports what is recorded): plan from the recorded state, change nothing.
pub(crate) fn plan_only(
    manifest: &Manifest,
    dir: &StateDir,
    tokens: Tokens,
) -> Result<Report, Error> {
    let state = dir.load()?.take(dir);
    let mut caches = Caches::reader(dir.path());
    let uses = Uses::of(manifest);
    let targets = target::compute(manifest, &uses, tokens, &mut caches, &state);
    let now = SystemTime::now();
    let policy = Policy {
        min_interval: manifest.min_interval,
    };
    let rows = manifest
        .instances
        .iter()
        .zip(&targets)
        .map(|(instance, target)| {
            let record = state.instances.get(&instance.id);
            let decision = plan::decide(&target.desired, record, now, &policy);
            report::row(
                instance,
                &target.desired,
                &decision,
                record,
                ThisRun::Nothing,
            )
        })
        .collect();
    let kind = match tokens {
        Tokens::Required => ReportKind::DryRun,
        Tokens::Optional => ReportKind::Status,
    };
    let report = Report::new(rows, kind);
    log_summary(&report);
    Ok(report)
}

fn log_summary(report: &Report) {
    let s = &report.summary;
    tracing::info!(
        in_sync = s.in_sync,
        applied = s.applied,
        pending = s.pending,
        throttled = s.throttled,
        unreachable = s.unreachable,
        failed = s.failed,
        suspended = s.suspended,
        adopted = s.adopted,
        drifted = s.drifted,
        "done"
    );
    if let Some(calls) = &report.calls {
        tracing::info!(
            set_profile_picture = calls.set_profile_picture,
            get_wa_settings = calls.get_wa_settings,
            get_state_instance = calls.get_state_instance,
            "GREEN-API requests"
        );
    }
}
