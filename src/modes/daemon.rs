//! Daemon mode's entry: takes the state directory, then wires the real world to the
//! [`crate::daemon`] loop: signals and file hints as its events, the HTTP gateway, systemd
//! as its notifier, random jitter, and the `--listen` HTTP listener.

use crate::Error;
use crate::clock::{Clock, Jitter};
use crate::daemon::board::{Board, Observed};
use crate::daemon::connections::{self, Connections};
use crate::daemon::health::Health;
use crate::daemon::http;
use crate::daemon::watch::Watcher;
use crate::daemon::{self, ManifestSource, Parts, Systemd, watched_files};
use crate::gateway::HttpGateway;
use crate::manifest::{AllowedSigners, InstanceId, Manifest, PendingCache, Pinned, Scope};
use crate::reconcile::{Options, Reconciler};
use crate::state::{StateDir, StateStore};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

/// The file in the state directory that names the address `--listen` bound (with port 0,
/// the port the system picked).
pub(crate) const LISTEN_FILE: &str = "listen-address";

/// How daemon mode runs, from the command line.
pub(crate) struct Settings {
    /// The manifest file.
    pub manifest_path: PathBuf,
    /// The state directory.
    pub dir: StateDir,
    /// At most this many calls in flight.
    pub concurrency: usize,
    /// The instances it acts on.
    pub scope: Scope,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--listen-host`.
    pub listen_hosts: Vec<String>,
    /// The manifest's parse, to keep in the state directory once it is locked.
    pub parse_to_keep: Option<PendingCache>,
    /// `--replace`: instances uploaded again though their records say applied.
    pub replace: Vec<InstanceId>,
    /// `--resume`: resume a halted rollout at start.
    pub resume: bool,
    /// `--verify-signers`: the keys, and the verified revision the daemon starts on.
    pub signed: Option<(AllowedSigners, Pinned)>,
}

/// Runs the daemon on `first` (the manifest as loaded at start) until SIGTERM or SIGINT.
pub(crate) async fn serve(settings: Settings, first: Manifest) -> Result<(), Error> {
    let Settings {
        manifest_path,
        dir,
        concurrency,
        scope,
        listen,
        listen_hosts,
        parse_to_keep,
        replace,
        resume,
        signed,
    } = settings;
    let clock = Clock::start();
    let manifest_path_shown = manifest_path.clone();
    let source = match signed {
        Some((signers, pinned)) => {
            let state = dir.path().to_owned();
            ManifestSource::signed(manifest_path, scope, signers, pinned, state)
        }
        None => ManifestSource::new(manifest_path, scope),
    };
    let lock = dir.lock("avatar-sync daemon")?;
    source.record_in_force();
    if let Some(parse) = parse_to_keep {
        parse.save();
    }
    let loaded = dir.load_for_write(&lock)?;
    let store = StateStore::new(dir.clone(), lock, loaded)?;
    let gateway = HttpGateway::new()?;

    let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
    daemon::signals::forward(events.clone()).map_err(|source| Error::Host {
        what: "cannot listen for signals".to_owned(),
        source,
    })?;
    let mut watcher = Watcher::new(events).map_err(|e| Error::Host {
        what: "cannot watch files".to_owned(),
        source: std::io::Error::other(e),
    })?;

    let options = Options {
        concurrency,
        give_up_when_blocked: false,
        settle: crate::picture::SETTLE,
        live_reads: true,
        wait_for_windows: true,
        observe_only: false,
    };
    let manifest = Arc::new(first);
    let mut reconciler =
        Reconciler::new(manifest, store, gateway, clock, Jitter::random(), options);
    reconciler.replace(replace);
    if resume {
        reconciler.resume();
    }
    // The notifier: its own task, fed without waiting; it sends what a previous process
    // left in the outbox first.
    match crate::notify::HttpPost::new()
        .map_err(std::io::Error::other)
        .and_then(|post| {
            let metrics = Arc::clone(reconciler.metrics());
            crate::notify::spawn(dir.path(), &reconciler.manifest().notify, post, metrics)
        }) {
        Ok((notices, _task)) => reconciler.notify_to(notices),
        Err(e) => tracing::error!("notifications are off: cannot start the notifier: {e}"),
    }
    let observed = match listen {
        Some(addr) => {
            let observed = Arc::new(Observed {
                health: Health::new(),
                board: Board::new(&manifest_path_shown, dir.path().to_owned()),
            });
            let listener = bind(addr, &dir).await?;
            let shared = http::Shared {
                metrics: Arc::clone(reconciler.metrics()),
                observed: Arc::clone(&observed),
                hosts: Arc::new(http::Hosts::new(listen_hosts)),
            };
            let connections = Connections::new(connections::cap(connections::descriptors()));
            tokio::spawn(http::serve(listener, shared, connections));
            Some(observed)
        }
        None => None,
    };
    let parts = Parts {
        reconciler,
        source,
        notifier: Systemd,
        jitter: Jitter::random(),
        follow: Box::new({
            // The files of a manifest are found once (a fleet's are 100,000 paths); the
            // watches follow them after every pass, since symlinks on the way may move.
            let mut files: (Weak<Manifest>, Vec<PathBuf>) = (Weak::new(), Vec::new());
            move |manifest: &Arc<Manifest>, also: &[PathBuf]| {
                if !std::ptr::eq(files.0.as_ptr(), Arc::as_ptr(manifest)) {
                    files = (Arc::downgrade(manifest), watched_files(manifest));
                }
                watcher.follow(files.1.iter().chain(also).map(PathBuf::as_path));
            }
        }),
        observed,
    };
    daemon::run(receiver, parts).await?;
    Ok(())
}

/// Binds `--listen`, says where (in the log and in [`LISTEN_FILE`]), and warns when the
/// address is reachable from other hosts.
async fn bind(addr: SocketAddr, dir: &StateDir) -> Result<tokio::net::TcpListener, Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Host {
            what: format!("cannot listen on {addr} (--listen)"),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| Error::Host {
        what: format!("cannot tell the address bound for --listen {addr}"),
        source,
    })?;
    if !bound.ip().is_loopback() {
        tracing::warn!(
            address = %bound,
            "--listen binds an address other hosts can reach; /metrics and the status page \
             need no password (they never show a token)"
        );
    }
    tracing::info!(address = %bound, "listening on http://{bound}/ (the status page at /, /metrics, /healthz, /readyz)");
    crate::fsio::write_bytes_atomically(
        &dir.path().join(LISTEN_FILE),
        bound.to_string().as_bytes(),
    )
    .map_err(|source| Error::Host {
        what: format!("cannot write {}", dir.path().join(LISTEN_FILE).display()),
        source,
    })?;
    Ok(listener)
}
