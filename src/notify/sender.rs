//! The notifier task: events in, messages out. It runs beside the engine on the same
//! runtime but shares nothing with it except a bounded channel the engine only ever
//! `try_send`s into ([`Notices`]), so uploads never wait on it.
//!
//! For each event, the teller decides which receivers are told; each message is rendered,
//! written to the outbox (durably) and only then sent; the record of what was told is
//! saved after the messages it covers. Each receiver has one lane: its messages go oldest
//! first, one at a time; a failed attempt (no answer, or not 2xx) waits
//! `1 s × 2^(n-1)`, at most [`MAX_BACKOFF`], plus up to 20 % jitter, and the lane tries
//! the same message again. A receiver that leaves the manifest has its messages dropped.

use super::body::render;
use super::event::Event;
use super::post::{ID_HEADER, Post, SIGNATURE_HEADER, signature};
use super::teller::{Tell, Told};
use crate::manifest::Receiver;
use crate::metrics::Metrics;
use crate::state::{Outbox, Queued};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Events the channel holds before new ones are dropped (counted): far more than a pass
/// makes, and a bounded amount of memory.
pub(crate) const CHANNEL: usize = 10_000;
/// The first wait after a failed attempt.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two attempts of one receiver.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The largest secret file read.
const MAX_SECRET_BYTES: u64 = 4096;
/// The labels a queued message may carry (an outbox is read back into `&'static str`s).
const LABELS: [&str; 6] = [
    "applied",
    "failed",
    "recovered",
    "drifted",
    "halted",
    "rollout",
];

/// The engine's side: hands events to the notifier without ever waiting. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Notices {
    events: mpsc::Sender<Event>,
    receivers: Arc<watch::Sender<Arc<Vec<Receiver>>>>,
    revision: Arc<watch::Sender<Option<String>>>,
    metrics: Arc<Metrics>,
}

impl Notices {
    /// Hands `event` over; when the channel is full (the notifier is far behind), the
    /// event is dropped and counted, never waited for.
    pub(crate) fn tell(&self, event: Event) {
        if self.events.try_send(event).is_err() {
            self.metrics.notification("dropped");
            tracing::warn!("notifications: the notifier is behind; an event was dropped");
        }
    }

    /// The receivers of the manifest in force.
    pub(crate) fn set_receivers(&self, receivers: &[Receiver]) {
        self.receivers.send_if_modified(|current| {
            let changed = current.as_slice() != receivers;
            if changed {
                *current = Arc::new(receivers.to_vec());
            }
            changed
        });
    }

    /// The revision (commit id) the daemon acts on, for the bodies' `revision`.
    pub(crate) fn set_revision(&self, revision: Option<String>) {
        self.revision.send_if_modified(|current| {
            let changed = *current != revision;
            if changed {
                current.clone_from(&revision);
            }
            changed
        });
    }
}

/// Opens the outbox of the state directory `state_dir` and starts the notifier task on the
/// current runtime, sending through `post`. What a previous process left in the outbox is
/// sent first.
pub(crate) fn spawn<P: Post>(
    state_dir: &Path,
    receivers: &[Receiver],
    post: P,
    metrics: Arc<Metrics>,
) -> std::io::Result<(Notices, tokio::task::JoinHandle<()>)> {
    let outbox = Outbox::open(state_dir)?;
    let mut told = (outbox.read_told().as_deref())
        .and_then(Told::from_json)
        .unwrap_or_else(Told::new);
    // A message written before the record of it counts as told.
    for (_, message) in outbox.queued() {
        if let (Some(event), Ok(desired)) = (
            LABELS.into_iter().find(|l| *l == message.event),
            message.desired.parse(),
        ) {
            told.record(&Tell {
                receiver: 0,
                receiver_key: message.receiver.clone(),
                instance: message.instance.clone(),
                event,
                desired,
            });
        }
    }
    metrics.set_outbox(outbox.len());
    let (events, events_rx) = mpsc::channel(CHANNEL);
    let (receivers_tx, receivers_rx) = watch::channel(Arc::new(receivers.to_vec()));
    let (revision_tx, revision_rx) = watch::channel(None);
    let notices = Notices {
        events,
        receivers: Arc::new(receivers_tx),
        revision: Arc::new(revision_tx),
        metrics: Arc::clone(&metrics),
    };
    let sender = Sender {
        post,
        outbox: Arc::new(Mutex::new(outbox)),
        told,
        receivers: receivers_rx,
        revision: revision_rx,
        metrics,
        lanes: HashMap::new(),
        in_flight: JoinSet::new(),
    };
    Ok((notices, tokio::spawn(sender.run(events_rx))))
}

/// Ends notifying: the engine's handle is dropped, and the task sends what it can at once
/// (no waiting out a backoff) for at most `within`; the rest stays in the outbox for the
/// next run. For one-shot runs, before the state directory's lock is released.
pub(crate) async fn finish(
    notices: Notices,
    mut task: tokio::task::JoinHandle<()>,
    within: Duration,
) {
    drop(notices);
    if tokio::time::timeout(within, &mut task).await.is_err() {
        tracing::warn!(
            "notifications: receivers did not answer within {}; the messages left are sent \
             by the next run",
            crate::clock::human_duration(within)
        );
        task.abort();
        let _ = task.await;
    }
}

/// One receiver's lane: its failures in a row and when it may be tried again.
#[derive(Debug, Default)]
struct Lane {
    failures: u32,
    next_at: Option<Instant>,
    busy: bool,
}

/// What an attempt came back with: the lane, the message, the status or why none.
type Attempt = (String, u64, Result<u16, String>);

struct Sender<P> {
    post: P,
    /// Shared only with the blocking task that writes it: file writes and fsyncs run off
    /// the runtime's thread, which the engine shares.
    outbox: Arc<Mutex<Outbox>>,
    told: Told,
    receivers: watch::Receiver<Arc<Vec<Receiver>>>,
    revision: watch::Receiver<Option<String>>,
    metrics: Arc<Metrics>,
    lanes: HashMap<String, Lane>,
    in_flight: JoinSet<Attempt>,
}

impl<P: Post> Sender<P> {
    async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        let mut open = true;
        loop {
            let started = self.start_due();
            // Every handle gone (a one-shot run ends): send what can go now, wait for no
            // backoff; what is left waits in the outbox for the next run.
            if !open && started == 0 && self.in_flight.is_empty() {
                break;
            }
            let wake = self.next_wake();
            tokio::select! {
                event = events.recv(), if open => {
                    let Some(event) = event else {
                        open = false;
                        continue;
                    };
                    let mut batch = vec![event];
                    while batch.len() < 256 {
                        match events.try_recv() {
                            Ok(event) => batch.push(event),
                            Err(_) => break,
                        }
                    }
                    self.on_events(&batch).await;
                }
                Ok(()) = self.receivers.changed() => {
                    let receivers = Arc::clone(&self.receivers.borrow_and_update());
                    self.told.keep_only(&receivers);
                }
                Some(done) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    if let Ok(attempt) = done {
                        self.on_attempt(attempt);
                    }
                }
                () = sleep_until_opt(wake) => {}
            }
        }
    }

    /// Decides, renders and writes the messages a batch of events makes; the writes (and
    /// their fsyncs) on a blocking thread, so the engine's thread never waits for a disk.
    async fn on_events(&mut self, batch: &[Event]) {
        let receivers = Arc::clone(&self.receivers.borrow());
        let revision = self.revision.borrow().clone();
        let mut messages = Vec::new();
        for event in batch {
            for tell in self.told.tell(&receivers, event) {
                let receiver = &receivers[tell.receiver];
                let id = tell.id();
                messages.push(Queued {
                    receiver: tell.receiver_key.clone(),
                    id: id.clone(),
                    instance: tell.instance.clone(),
                    event: tell.event.to_owned(),
                    desired: tell.desired.to_string(),
                    body: render(receiver.format, &id, event, revision.as_deref()),
                });
            }
        }
        if messages.is_empty() {
            return;
        }
        let told = self.told.to_json();
        let outbox = Arc::clone(&self.outbox);
        let written = tokio::task::spawn_blocking(move || {
            let mut outbox = lock(&outbox);
            let mut dropped = Vec::new();
            let mut failed = Vec::new();
            for message in messages {
                match outbox.put(message) {
                    Ok((_, old)) => dropped.extend(old),
                    Err(e) => failed.push(e),
                }
            }
            // After the messages it covers: a message in the outbox counts as told.
            let saved = outbox.write_told(&told);
            (dropped, failed, saved, outbox.len())
        })
        .await;
        let Ok((dropped, failed, saved, len)) = written else {
            tracing::error!("notifications: the outbox writer stopped");
            return;
        };
        for old in dropped {
            self.metrics.notification("dropped");
            tracing::warn!(
                receiver = %old.receiver,
                "notifications: the outbox is full; its oldest message ({} of instance {}) \
                 was dropped",
                old.event,
                old.instance
            );
        }
        for e in failed {
            self.metrics.notification("dropped");
            tracing::error!("notifications: cannot write to the outbox: {e}");
        }
        if let Err(e) = saved {
            tracing::error!("notifications: cannot save what was told: {e}");
        }
        self.metrics.set_outbox(len);
    }

    /// Starts, for each lane free and due, an attempt of its oldest message; drops the
    /// messages of receivers no longer in the manifest. How many attempts started.
    fn start_due(&mut self) -> usize {
        let receivers = Arc::clone(&self.receivers.borrow());
        let now = Instant::now();
        let mut gone = Vec::new();
        let mut due: Vec<(u64, usize, Queued)> = Vec::new();
        {
            let outbox = lock(&self.outbox);
            let mut seen: Vec<&str> = Vec::new();
            for (seq, message) in outbox.queued() {
                if seen.contains(&message.receiver.as_str()) {
                    continue; // only a lane's oldest message goes
                }
                seen.push(&message.receiver);
                let Some(index) = receivers.iter().position(|r| r.key() == message.receiver) else {
                    gone.push(seq);
                    continue;
                };
                let lane = self.lanes.entry(message.receiver.clone()).or_default();
                if !lane.busy && lane.next_at.is_none_or(|at| at <= now) {
                    due.push((seq, index, message.clone()));
                }
            }
        }
        for seq in gone {
            if let Ok(Some(message)) = self.outbox().take(seq) {
                self.metrics.notification("dropped");
                tracing::warn!(
                    receiver = %message.receiver,
                    "notifications: a message for a receiver no longer in the manifest was dropped"
                );
            }
        }
        let started = due.len();
        for (seq, index, message) in due {
            let receiver = receivers[index].clone();
            let key = message.receiver.clone();
            let body = message.body.clone();
            let mut headers = vec![
                (ID_HEADER, message.id.clone()),
                ("X-Avatar-Sync-Event", message.event.clone()),
            ];
            let lane = self.lanes.entry(key.clone()).or_default();
            lane.busy = true;
            if let Some(file) = &receiver.secret_file {
                match crate::fsio::read_regular(file, MAX_SECRET_BYTES) {
                    Ok(mut secret) => {
                        let trimmed = secret.trim_ascii();
                        headers.push((SIGNATURE_HEADER, signature(trimmed, body.as_bytes())));
                        zeroize::Zeroize::zeroize(&mut secret);
                    }
                    Err(e) => {
                        let why = format!("cannot read its secretFile {}: {e}", file.display());
                        self.in_flight.spawn(async move { (key, seq, Err(why)) });
                        continue;
                    }
                }
            }
            let post = self.post.clone();
            self.in_flight.spawn(async move {
                let answer = post.post(&receiver.url, headers, body).await;
                (key, seq, answer)
            });
        }
        self.metrics.set_outbox(self.outbox().len());
        started
    }

    /// Records an attempt: a 2xx removes the message; anything else backs the lane off.
    fn on_attempt(&mut self, (key, seq, answer): Attempt) {
        let lane = self.lanes.entry(key.clone()).or_default();
        lane.busy = false;
        match answer {
            Ok(status) if (200..300).contains(&status) => {
                lane.failures = 0;
                lane.next_at = None;
                self.metrics.notification("sent");
                match self.outbox().take(seq) {
                    Ok(Some(message)) => tracing::info!(
                        receiver = %key,
                        "notifications: told {} of instance {} (HTTP {status})",
                        message.event,
                        message.instance
                    ),
                    Ok(None) => {}
                    Err(e) => tracing::error!("notifications: cannot remove a sent message: {e}"),
                }
            }
            answer => {
                lane.failures += 1;
                let wait = backoff(lane.failures, fastrand::f64());
                lane.next_at = Some(Instant::now() + wait);
                self.metrics.notification("failed");
                let why = match answer {
                    Ok(status) => format!("answered HTTP {status}"),
                    Err(why) => why,
                };
                tracing::warn!(
                    receiver = %key,
                    failures = lane.failures,
                    "notifications: a receiver {why}; trying again in {}",
                    crate::clock::human_duration(Duration::from_secs(wait.as_secs().max(1)))
                );
            }
        }
        self.metrics.set_outbox(self.outbox().len());
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        lock(&self.outbox)
    }

    /// When a lane that waits may be tried again.
    fn next_wake(&self) -> Option<Instant> {
        (self.lanes.values())
            .filter(|lane| !lane.busy)
            .filter_map(|lane| lane.next_at)
            .filter(|_| self.outbox().len() > 0)
            .min()
    }
}

/// The outbox, whoever held it last (a panic while writing leaves it as it was on disk).
fn lock(outbox: &Mutex<Outbox>) -> MutexGuard<'_, Outbox> {
    outbox
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sleeps until `at`, or forever when nothing waits.
async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The wait after the `failures`-th failed attempt in a row, `jitter` in `[0, 1)` adding
/// up to 20 %.
pub(crate) fn backoff(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let base = (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF);
    base.mul_f64(1.0 + 0.2 * jitter.clamp(0.0, 1.0))
}
