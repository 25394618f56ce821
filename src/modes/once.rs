//! The one-shot modes that plan from the state directory: `--reconcile` converges once,
//! `--dry-run` and `--status` only read.

use crate::Error;
use crate::clock::{Clock, Jitter};
use crate::gateway::{GatewayInitError, HttpGateway};
use crate::manifest::{Gate, IdMap, InstanceId, Manifest, PendingCache};
use crate::picture::caches::Caches;
use crate::picture::pass::Uses;
use crate::plan::rollout::{self, Current, Member, Wanted};
use crate::plan::{self, Decision, Desired, Hold, Policy};
use crate::reconcile::target;
use crate::reconcile::{Options, Reconciler, Rows};
use crate::report::{self, Report, ReportKind, RolloutView, Status, ThisRun, WindowView};
use crate::state::rollout::RolloutRecord;
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
    /// `--resume`: resume the halted rollout of the revision in force.
    pub resume: bool,
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
        resume,
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
        wait_for_windows: false,
        observe_only: false,
    };
    let manifest = Arc::new(manifest);
    let gateway = gateway
        .join()
        .unwrap_or_else(|_| Err(GatewayInitError::panicked()))?;
    let mut reconciler =
        Reconciler::new(manifest, store, gateway, clock, Jitter::random(), options);
    reconciler.replace(replace);
    if resume {
        reconciler.resume();
    }
    // Receivers are told what this run did; messages not delivered within a few seconds
    // wait in the outbox for the next run (or the daemon).
    let notifier = notifier(&reconciler);
    if let Some((notices, _)) = &notifier {
        reconciler.notify_to(notices.clone());
    }
    reconciler.run_until(clock.now() + timeout).await?;
    if let Some((notices, task)) = notifier {
        reconciler.stop_notifying();
        crate::notify::finish(notices, task, NOTIFY_FLUSH).await;
    }
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

/// How long a one-shot run waits, at its end, for receivers to take its messages.
const NOTIFY_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

/// The notifier of a run whose manifest has receivers (on the run's state directory).
fn notifier<G: crate::gateway::Gateway>(
    reconciler: &Reconciler<G>,
) -> Option<(crate::notify::Notices, tokio::task::JoinHandle<()>)> {
    let receivers = &reconciler.manifest().notify;
    if receivers.is_empty() {
        return None;
    }
    let started = crate::notify::HttpPost::new()
        .map_err(std::io::Error::other)
        .and_then(|post| {
            let metrics = Arc::clone(reconciler.metrics());
            crate::notify::spawn(reconciler.state_dir().path(), receivers, post, metrics)
        });
    started
        .inspect_err(|e| tracing::error!("notifications are off: cannot start the notifier: {e}"))
        .ok()
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
    let rollout = recorded_rollout(manifest, &targets, dir, &state);
    let position: IdMap<usize> = (rollout.iter())
        .flat_map(|r| r.instances.iter().enumerate())
        .map(|(place, id)| (id.clone(), place))
        .collect();
    let window = manifest.windows.gate(now);
    let (mut landed, mut failed) = (0, 0);
    let rows = manifest
        .instances
        .iter()
        .zip(&targets)
        .map(|(instance, target)| {
            let record = state.instances.get(&instance.id);
            let mut decision = plan::decide(&target.desired, record, now, &policy);
            let place = position.get(&instance.id).copied();
            if let (Some(place), Desired::Picture { digest, .. }) = (place, &target.desired) {
                match rollout::member(record, &decision, *digest) {
                    Member::Landed | Member::Verified => landed += 1,
                    Member::Failed(_) => failed += 1,
                    Member::Waiting => {}
                }
                let hold = (rollout.as_ref()).and_then(|r| rollout::hold(r, place));
                if let (Decision::Due { digest }, Some(hold)) = (&decision, hold) {
                    decision = Decision::Held {
                        digest: *digest,
                        hold,
                    };
                }
            }
            if let (Decision::Due { digest }, Gate::Closed { opens }) = (&decision, window) {
                decision = Decision::Held {
                    digest: *digest,
                    hold: Hold::Window { opens },
                };
            }
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
    let mut report = Report::new(rows, kind);
    report.rollout = (rollout.as_ref()).map(|r| RolloutView::of(r, landed, failed));
    if let Gate::Closed { opens } = window {
        report.window = Some(WindowView { opens_at: opens });
    }
    log_summary(&report);
    Ok(report)
}

/// The rollout of the manifest's revision: the one the state directory records, or the
/// one the next run would start (over the instances whose upload the revision changes).
fn recorded_rollout(
    manifest: &Manifest,
    targets: &[target::Target],
    dir: &StateDir,
    state: &crate::state::State,
) -> Option<RolloutRecord> {
    let policy = manifest.rollout.as_ref()?;
    let wanted: Vec<Wanted<'_>> = (manifest.instances.iter().zip(targets))
        .filter_map(|(instance, target)| match &target.desired {
            Desired::Picture { digest, .. } => Some(Wanted {
                id: &instance.id,
                digest: *digest,
                canary: instance.canary,
            }),
            _ => None,
        })
        .collect();
    let recorded = crate::state::rollout::load(dir.path())
        .inspect_err(|e| tracing::warn!("{e}"))
        .ok()
        .flatten();
    let applied = |id: &InstanceId| {
        let record = state.instances.get(id)?;
        record.applied.as_ref().map(|a| a.sha256)
    };
    let revision = rollout::revision_of(&wanted);
    let now = SystemTime::now();
    match rollout::current(revision, &wanted, applied, recorded, policy, now) {
        Current::Recorded(record) | Current::Started(record) => Some(record),
        Current::Nothing => None,
    }
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
