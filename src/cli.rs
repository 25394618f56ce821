//! argv → [`Args`]: the command line of the contract (section 2). No I/O.

use crate::clock::parse_duration;
use crate::manifest::{InstanceId, Shard};
use clap::{ArgGroup, Parser, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

const AFTER_HELP: &str = "\
Without a mode flag, avatar-sync runs as a daemon: it watches the manifest and the
pictures and reconciles until SIGTERM.

Exit codes:
  0   success: everything in sync (for --check: valid)
  1   error: an instance did not converge, or the manifest, state or a picture is unusable
  2   --dry-run: the manifest asks for changes that are not applied yet;
      --drift: a live picture is not the manifest's
  64  bad command line

Durations are written like 10s, 5m, 1h30m.";

/// Keeps GREEN-API WhatsApp profile pictures equal to a YAML manifest in git.
#[derive(Debug, Parser)]
#[command(name = "avatar-sync", version, about, after_help = AFTER_HELP)]
#[command(group(ArgGroup::new("mode").args(["reconcile", "dry_run", "check", "status", "drift", "print_schema", "plan"])))]
pub struct Args {
    /// The mode flags.
    #[command(flatten)]
    pub modes: ModeFlags,

    /// Paths, output format, timeout and concurrency.
    #[command(flatten)]
    pub run: RunOptions,

    /// `--instance`, the shard and `--replace`.
    #[command(flatten)]
    pub scope: ScopeOptions,

    /// The daemon's HTTP listener.
    #[command(flatten)]
    pub listen: ListenOptions,

    /// The table's rows and the logs.
    #[command(flatten)]
    pub output: OutputOptions,
}

/// The daemon's HTTP listener.
#[derive(Debug, clap::Args)]
pub struct ListenOptions {
    /// Daemon: serve /metrics, /healthz, /readyz and the status page (/) on this address
    /// (like 127.0.0.1:9184; port 0 picks a free one). Off when absent; a non-loopback address is bound only
    /// when given here. Ignored by the one-shot modes.
    #[arg(long, value_name = "ADDR", env = "AVATAR_SYNC_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,

    /// A host name the listener answers to (repeatable; comma-separated in the variable),
    /// besides IP addresses and localhost: the name in the URL people and scrapers use.
    /// Requests naming any other host get 421, so no web page can read the listener
    /// through DNS rebinding.
    #[arg(
        long = "listen-host",
        value_name = "NAME",
        env = "AVATAR_SYNC_LISTEN_HOSTS",
        value_delimiter = ','
    )]
    pub hosts: Vec<String>,
}

/// The mode: at most one of these; none is the daemon.
#[derive(Debug, clap::Args)]
pub struct ModeFlags {
    /// Converge once, then exit.
    #[arg(long)]
    pub reconcile: bool,

    /// Print what --reconcile would do; no API call, no state write.
    #[arg(long)]
    pub dry_run: bool,

    /// Validate manifest and pictures offline; no network, no state.
    #[arg(long)]
    pub check: bool,

    /// With --check: every warning is an error (exit 1), for hosts that have the secrets:
    /// a token source absent here, a token file others may read, a token in the manifest,
    /// a minInterval under 10s.
    #[arg(long)]
    pub strict: bool,

    /// Print what the state directory records, per instance.
    #[arg(long)]
    pub status: bool,

    /// Read what WhatsApp shows now and compare it with the manifest; no upload; what it
    /// saw is recorded in the state directory (unless a daemon holds it). Exit 0 all
    /// match, 2 some drifted, 1 errors.
    #[arg(long)]
    pub drift: bool,

    /// Write each instance's upload, exactly as it would be sent, to DIR/<idInstance>.jpg;
    /// no network, no state. With --plan: each changed instance's before and after
    /// pictures, and an index.html to look at them.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = ["reconcile", "dry_run", "check", "status", "drift", "print_schema"]
    )]
    pub preview: Option<PathBuf>,

    /// Which instances' uploads the commits BASE..HEAD change, and why, as Markdown for a
    /// pull-request comment (BASE alone means BASE..HEAD); both read from git, not the
    /// disk. No network, no state. Exit 0 no change, 2 changes, 1 errors.
    #[arg(long, value_name = "BASE..HEAD")]
    pub plan: Option<String>,

    /// Print the manifest's JSON Schema (for editors: `# yaml-language-server: $schema=`);
    /// reads nothing.
    #[arg(long)]
    pub print_schema: bool,
}

/// Where the manifest and the state are, and how a run goes.
#[derive(Debug, clap::Args)]
pub struct RunOptions {
    /// The manifest [default: $AVATAR_SYNC_MANIFEST, else /etc/avatar-sync/manifest.yaml]
    #[arg(short, long, value_name = "PATH")]
    pub manifest: Option<PathBuf>,

    /// Where state and the lock live [default: $AVATAR_SYNC_STATE_DIR, else
    /// $STATE_DIRECTORY, else $XDG_STATE_HOME/avatar-sync, else ~/.local/state/avatar-sync]
    #[arg(short, long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// With a mode flag: print one JSON document on stdout instead of the table.
    #[arg(long)]
    pub json: bool,

    /// --reconcile and --drift: how long to keep waiting on throttles and retries [default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Identities that open tokens sealed with age (`age -r`): a file of
    /// AGE-SECRET-KEY-1... lines, as age-keygen writes it; typically a systemd credential
    /// [default: $AVATAR_SYNC_AGE_IDENTITY]
    #[arg(long, value_name = "FILE")]
    pub age_identity: Option<PathBuf>,

    /// Apply only revisions signed by these keys (git's allowed_signers format, SSH keys):
    /// the manifest and its pictures are then read from the commit HEAD names, never from
    /// the files on disk; the daemon keeps the last verified revision while a newer one is
    /// not [default: $AVATAR_SYNC_VERIFY_SIGNERS]
    #[arg(long, value_name = "FILE")]
    pub verify_signers: Option<PathBuf>,

    /// At most N uploads at once, 1 to 1024 (reads of live state have their own two; --drift reads up to N).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
}

/// Which instances a run acts on.
#[derive(Debug, clap::Args)]
pub struct ScopeOptions {
    /// Act on and report only this instance (repeatable), as `terraform -target`; the
    /// others are neither called nor reported, and their records are left as they are.
    #[arg(long = "instance", value_name = "ID", value_parser = parse_instance_id)]
    pub instances: Vec<InstanceId>,

    /// --reconcile and the daemon: upload this instance's picture again (repeatable) even
    /// when its record says it is applied, as `terraform apply -replace`; once, and no
    /// sooner than minInterval and any backoff allow. The daemon also takes ids from the
    /// file `replace` in the state directory on SIGHUP (`systemctl reload`).
    #[arg(
        long = "replace",
        value_name = "ID",
        value_parser = parse_instance_id,
        conflicts_with_all = ["dry_run", "check", "status", "preview", "drift"]
    )]
    pub replace: Vec<InstanceId>,

    /// --reconcile and the daemon: resume the halted rollout of the revision in force (its
    /// halted wave counts as landed, the next one starts now). The daemon also resumes on
    /// SIGUSR1.
    #[arg(
        long,
        conflicts_with_all = ["dry_run", "check", "status", "preview", "drift"]
    )]
    pub resume: bool,

    /// Act only on the instances that hash to shard K of N (K from 0 to N-1), each shard
    /// with its own state directory. --check still validates the whole manifest.
    // Read as text and parsed when the shard is needed: a bad AVATAR_SYNC_SHARD in the
    // environment must not stop --check, which validates the whole manifest.
    #[arg(long, value_name = "K/N", env = "AVATAR_SYNC_SHARD")]
    pub shard: Option<String>,

    /// As --shard K/N, with K the ordinal at the end of this host's name (a StatefulSet pod
    /// like avatar-sync-3).
    #[arg(long, value_name = "N", conflicts_with = "shard")]
    pub shard_from_hostname: Option<u32>,
}

/// What is printed: the table's rows and the logs.
#[derive(Debug, clap::Args)]
pub struct OutputOptions {
    /// List every instance in the table, in sync or not (default: only those that changed,
    /// wait or failed, then the summary; `--status` lists all).
    #[arg(long)]
    pub all: bool,

    /// Logs on stderr as text or JSON lines.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// More logging. The daemon logs from info (-v debug, -vv trace); the one-shot modes
    /// print their table and only warnings and errors (-v info, -vv debug, -vvv trace).
    /// RUST_LOG also works.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less logging (-q warnings and errors, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub quiet: u8,
}

/// How logs are written on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// What the process does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Watch and reconcile until SIGTERM.
    Daemon,
    /// Converge once.
    Reconcile,
    /// Show what `--reconcile` would do.
    DryRun,
    /// Validate offline.
    Check,
    /// Show the recorded state.
    Status,
    /// Write the uploads for people to look at.
    Preview,
    /// Compare what is live with the manifest.
    Drift,
    /// Print the manifest's JSON Schema.
    PrintSchema,
    /// What a range of commits changes.
    Plan,
}

/// The default `--timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Where the manifest is when nothing says otherwise.
pub const DEFAULT_MANIFEST: &str = "/etc/avatar-sync/manifest.yaml";

impl Args {
    /// Parses a command line (the first item is the program name), with the checks clap
    /// cannot express.
    pub fn parse_from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory as _, Parser as _};
        let parsed = Self::try_parse_from(args)?;
        if parsed.run.timeout.is_some() && !parsed.modes.reconcile && !parsed.modes.drift {
            return Err(Self::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                "--timeout only applies to --reconcile and --drift",
            ));
        }
        if parsed.run.json && matches!(parsed.mode(), Mode::Daemon | Mode::PrintSchema) {
            return Err(Self::command().error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "--json needs a mode flag (--reconcile, --dry-run, --check, --status, --drift, \
                 --preview or --plan)",
            ));
        }
        if parsed.modes.strict && !parsed.modes.check {
            return Err(Self::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                "--strict only applies to --check",
            ));
        }
        Ok(parsed)
    }

    /// The mode the flags select.
    pub fn mode(&self) -> Mode {
        match (
            self.modes.reconcile,
            self.modes.dry_run,
            self.modes.check,
            self.modes.status,
        ) {
            (true, ..) => Mode::Reconcile,
            (_, true, ..) => Mode::DryRun,
            (_, _, true, _) => Mode::Check,
            (.., true) => Mode::Status,
            _ if self.modes.plan.is_some() => Mode::Plan,
            _ if self.modes.preview.is_some() => Mode::Preview,
            _ if self.modes.drift => Mode::Drift,
            _ if self.modes.print_schema => Mode::PrintSchema,
            _ => Mode::Daemon,
        }
    }

    /// `--verify-signers`, else `$AVATAR_SYNC_VERIFY_SIGNERS`, else none.
    pub fn verify_signers(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
        (self.run.verify_signers.clone())
            .or_else(|| non_empty(env("AVATAR_SYNC_VERIFY_SIGNERS")).map(PathBuf::from))
    }

    /// `--age-identity`, else `$AVATAR_SYNC_AGE_IDENTITY`, else none.
    pub fn age_identity(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
        (self.run.age_identity.clone())
            .or_else(|| non_empty(env("AVATAR_SYNC_AGE_IDENTITY")).map(PathBuf::from))
    }

    /// `--manifest`, else `$AVATAR_SYNC_MANIFEST`, else the default path.
    pub fn manifest_path(&self, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
        self.run
            .manifest
            .clone()
            .or_else(|| non_empty(env("AVATAR_SYNC_MANIFEST")).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MANIFEST))
    }

    /// The state directory, by the contract's order of precedence.
    pub fn state_dir(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, String> {
        if let Some(dir) = &self.run.state_dir {
            return Ok(dir.clone());
        }
        if let Some(dir) = non_empty(env("AVATAR_SYNC_STATE_DIR")) {
            return Ok(dir.into());
        }
        // systemd sets a colon-separated list when a unit names several StateDirectory=.
        if let Some(dirs) = non_empty(env("STATE_DIRECTORY")) {
            let first = dirs.split(':').next().unwrap_or(&dirs);
            return Ok(first.into());
        }
        if let Some(dir) = non_empty(env("XDG_STATE_HOME")) {
            return Ok(PathBuf::from(dir).join("avatar-sync"));
        }
        if let Some(home) = non_empty(env("HOME")) {
            return Ok(PathBuf::from(home).join(".local/state/avatar-sync"));
        }
        Err("no state directory: give --state-dir, or set AVATAR_SYNC_STATE_DIR or HOME".to_owned())
    }

    /// The shard this run is, from `--shard`, or `--shard-from-hostname` with the host name
    /// from `hostname` (`$HOSTNAME`, else the kernel's).
    pub fn shard(&self, hostname: &dyn Fn() -> Option<String>) -> Result<Option<Shard>, String> {
        match (&self.scope.shard, self.scope.shard_from_hostname) {
            (Some(shard), _) => shard
                .parse()
                .map(Some)
                .map_err(|e| format!("--shard (or AVATAR_SYNC_SHARD): {e}")),
            (None, Some(count)) => {
                let name = hostname().ok_or("--shard-from-hostname: the host name is unknown")?;
                Shard::from_hostname(&name, count)
                    .map(Some)
                    .map_err(|e| format!("--shard-from-hostname {count}: {e}"))
            }
            (None, None) => Ok(None),
        }
    }

    /// The log level as `-v` count minus `-q` count above the mode's default: the daemon
    /// logs from info (0); a one-shot mode from warn (-1), so that on a terminal it prints
    /// its table and nothing else unless something is wrong. The same with or without a
    /// terminal, so that what a cron job or CI logs is what a person sees.
    pub fn log_verbosity(&self) -> i8 {
        let default = if self.mode() == Mode::Daemon { 0 } else { -1 };
        let asked = i16::from(self.output.verbose) - i16::from(self.output.quiet);
        i8::try_from(default + asked).unwrap_or(if asked > 0 { i8::MAX } else { i8::MIN })
    }

    /// `--timeout`, or its default.
    pub fn timeout(&self) -> Duration {
        self.run.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }
}

fn parse_instance_id(text: &str) -> Result<InstanceId, String> {
    InstanceId::parse_written(text.trim())
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::parse_from_args(std::iter::once("avatar-sync").chain(args.iter().copied()))
    }

    #[test]
    fn at_most_one_mode() {
        assert_eq!(parse(&["--reconcile"]).unwrap().mode(), Mode::Reconcile);
        assert_eq!(parse(&[]).unwrap().mode(), Mode::Daemon);
        assert!(parse(&["--reconcile", "--dry-run"]).is_err());
        assert!(parse(&["--check", "--status"]).is_err());
    }

    #[test]
    fn json_needs_a_mode_and_timeout_needs_reconcile() {
        assert!(parse(&["--json"]).is_err());
        assert!(parse(&["--print-schema", "--json"]).is_err());
        assert!(parse(&["--status", "--json"]).is_ok());
        assert!(parse(&["--preview", "out", "--json"]).is_ok());
        assert!(parse(&["--plan", "main", "--json"]).is_ok());
        assert!(parse(&["--plan", "main", "--preview", "out"]).is_ok());
        assert!(parse(&["--check", "--preview", "out"]).is_err());
        assert!(parse(&["--dry-run", "--timeout", "1m"]).is_err());
        assert!(parse(&["--drift", "--timeout", "1m"]).is_ok());
        let args = parse(&["--reconcile", "--timeout", "1h30m"]).unwrap();
        assert_eq!(args.timeout(), Duration::from_secs(5400));
        assert!(parse(&["--reconcile", "--timeout", "soon"]).is_err());
    }

    #[test]
    fn replace_is_repeatable_for_reconcile_and_the_daemon_only() {
        let args = parse(&["--reconcile", "--replace", "1101000001", "--replace", "7"]).unwrap();
        let ids: Vec<&str> = args.scope.replace.iter().map(InstanceId::as_str).collect();
        assert_eq!(ids, ["1101000001", "7"]);
        assert_eq!(parse(&["--replace", "7"]).unwrap().mode(), Mode::Daemon);
        for mode in ["--dry-run", "--check", "--status", "--drift"] {
            assert!(parse(&[mode, "--replace", "7"]).is_err(), "{mode}");
        }
        assert!(parse(&["--preview", "out", "--replace", "7"]).is_err());
        // The same id rules as --instance.
        for bad in ["0123", "12x", ""] {
            assert!(
                parse(&["--reconcile", "--replace", bad]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn one_shot_modes_log_from_warn_and_the_daemon_from_info() {
        let level = |args: &[&str]| parse(args).unwrap().log_verbosity();
        assert_eq!(level(&[]), 0);
        assert_eq!(level(&["-v"]), 1);
        assert_eq!(level(&["-q"]), -1);
        for mode in ["--reconcile", "--check", "--status", "--drift", "--dry-run"] {
            assert_eq!(level(&[mode]), -1, "{mode}");
            assert_eq!(level(&[mode, "-v"]), 0, "{mode}");
            assert_eq!(level(&[mode, "-vv"]), 1, "{mode}");
            assert_eq!(level(&[mode, "-q"]), -2, "{mode}");
        }
        assert_eq!(level(&["--preview", "out"]), -1);
    }

    #[test]
    fn strict_needs_check() {
        assert!(parse(&["--check", "--strict"]).unwrap().modes.strict);
        assert!(parse(&["--strict"]).is_err());
        assert!(parse(&["--reconcile", "--strict"]).is_err());
    }

    #[test]
    fn concurrency_is_at_least_one() {
        assert!(parse(&["--concurrency", "0"]).is_err());
        assert_eq!(parse(&["--concurrency", "64"]).unwrap().run.concurrency, 64);
    }

    #[test]
    fn state_dir_follows_the_contract_order() {
        let args = parse(&[]).unwrap();
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let all = env(&[
            ("AVATAR_SYNC_STATE_DIR", "/a"),
            ("STATE_DIRECTORY", "/b:/c"),
            ("XDG_STATE_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(args.state_dir(&all), Ok("/a".into()));
        let systemd = env(&[("STATE_DIRECTORY", "/b:/c"), ("HOME", "/h")]);
        assert_eq!(args.state_dir(&systemd), Ok("/b".into()));
        let xdg = env(&[("XDG_STATE_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(args.state_dir(&xdg), Ok("/x/avatar-sync".into()));
        let home = env(&[("HOME", "/h")]);
        assert_eq!(
            args.state_dir(&home),
            Ok("/h/.local/state/avatar-sync".into())
        );
        assert!(args.state_dir(&env(&[])).is_err());
        let flag = parse(&["-s", "/f"]).unwrap();
        assert_eq!(flag.state_dir(&all), Ok("/f".into()));
    }

    #[test]
    fn manifest_path_precedence() {
        let args = parse(&[]).unwrap();
        let none = |_: &str| None;
        assert_eq!(args.manifest_path(&none), PathBuf::from(DEFAULT_MANIFEST));
        let set = |_: &str| Some("/m.yaml".to_owned());
        assert_eq!(args.manifest_path(&set), PathBuf::from("/m.yaml"));
        let flag = parse(&["-m", "here.yaml"]).unwrap();
        assert_eq!(flag.manifest_path(&set), PathBuf::from("here.yaml"));
    }
}
