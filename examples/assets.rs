//! Writes the man page and the shell completions of avatar-sync, generated from its command
//! line definition (`avatar_sync::cli::Args`), so that they can never disagree with
//! `--help`. The Debian package ships them (see `[package.metadata.deb]` in Cargo.toml):
//!
//! ```sh
//! cargo run --example assets -- target/release/assets
//! ```
//!
//! writes, into that folder: `avatar-sync.1.gz` (the man page, section 1, compressed as
//! Debian wants it: `gzip -9n`, reproducible), `avatar-sync.bash`, `_avatar-sync` (zsh) and
//! `avatar-sync.fish`.

use avatar_sync::cli::Args;
use clap::CommandFactory as _;
use clap_complete::Shell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: cargo run --example assets -- OUT_DIR");
        return ExitCode::from(64);
    };
    match write_assets(&PathBuf::from(out)) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("assets: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Writes every asset into `out` (created if needed); returns their paths.
fn write_assets(out: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut command = Args::command();
    let name = command.get_name().to_owned();
    let mut written = Vec::new();

    let man_path = out.join(format!("{name}.1.gz"));
    let man = man_page(&command)
        .and_then(|page| gzip(&page))
        .map_err(|e| format!("cannot render the man page: {e}"))?;
    std::fs::write(&man_path, man)
        .map_err(|e| format!("cannot write {}: {e}", man_path.display()))?;
    written.push(man_path);

    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut command, &name, out).map_err(|e| {
            format!(
                "cannot write the {shell} completions into {}: {e}",
                out.display()
            )
        })?;
        written.push(path);
    }
    Ok(written)
}

/// The man page: clap_mangen's sections from the CLI, then the `--help` epilogue (modes, exit
/// codes) kept as written, the manifest's keys, and the signals, environment, files and
/// references a man page has.
fn man_page(command: &clap::Command) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(command.clone()).manual("avatar-sync manual");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    if let Some(after_help) = command.get_after_help() {
        // Pre-formatted (a table of exit codes): no filling, no justification.
        page.extend_from_slice(b".SH NOTES\n.nf\n");
        page.extend_from_slice(roff_escape(&after_help.to_string()).as_bytes());
        page.extend_from_slice(b"\n.fi\n");
    }
    page.extend_from_slice(roff_escape(MANIFEST_REFERENCE).as_bytes());
    page.extend_from_slice(roff_escape(ENVIRONMENT_AND_FILES).as_bytes());
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// `gzip -9n`: best compression, no file name and no time in the header, so the same page
/// always gives the same bytes.
fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// Every key of the manifest, with its type, default and meaning (src/manifest/keys.rs is the
/// list of keys; src/manifest/model.rs and validate.rs the defaults and checks). Written as
/// roff (`.SH`, `.SS`, `.TP`, `.PP` lines; `.nf`/`.fi` around commands) with plain text
/// between them.
const MANIFEST_REFERENCE: &str = "\
.SH MANIFEST REFERENCE
The manifest is one YAML mapping. Unknown keys, duplicate keys, values of the wrong type or
out of range, a duplicate idInstance and a missing picture are errors that name the file and
the line; a manifest with errors makes no call. An annotated manifest is
in /usr/share/doc/avatar-sync/examples/manifest.yaml.
.PP
Durations are written like 10s, 5m, 1h30m or 500ms: more than 0, at most 366d. Relative
paths (picture, apiTokenFile) are relative to the manifest's folder. ${NAME} in picture and
apiTokenFile expands from the environment; an unset or empty NAME is an error of that
instance (for a token, --check only warns: CI has no secrets).
.SS Top-level keys
.TP
instances (list; required)
The instances, each a mapping of the per-instance keys below.
.TP
apiUrl (URL; default https://api.green-api.com)
The GREEN-API host of every instance that names none. https://, or http:// to a loopback
address only (127.0.0.1, ::1, localhost): the token travels in the URL path. No user name,
password, query or fragment; a trailing / is ignored.
.TP
minInterval (duration; default 10s)
Least time between the answer of one setProfilePicture call of an instance and the start of
the next (WhatsApp allows about one change per 10 s). The time of the last call is kept in
the state directory, so this holds across restarts and modes. Under 10s is a warning
(min-interval-short): changes that close together are answered rate-overlimit.
.TP
resyncInterval (duration, at least 1s; default 10m)
The daemon re-checks everything this often, file events or not (plus up to 10% jitter).
.TP
drift (off, warn or heal; default warn)
What the daemon does when an instance's live picture is not the manifest's (changed from
the phone, removed): warn reports it drifted and sends nothing; heal sends the picture again,
under the usual throttle and backoff; off never looks. The default of every instance that
sets none.
.TP
driftInterval (duration; default 1h)
How often the daemon reads each in-sync instance's live picture (getWaSettings), spread
evenly over the interval across instances, never two reads of one instance within 1.1 s.
An unusable instance is polled with getStateInstance every 5 minutes (every driftInterval if
that is shorter) and uploaded to once it is authorized.
.TP
adopt (true or false; default true)
true: before the first upload to an instance with no record, its live picture is read; if it
already is the picture to send (compared perceptually), it is recorded as applied without a
call and reported adopted. A failed read falls back to uploading. false: upload without
looking. Top level only.
.TP
fit, size, background, quality
The processing of every instance that sets none; see Processing keys.
.TP
rollout (mapping; default: none, every upload at once)
Spread the uploads a revision changes in waves (see ROLLOUTS AND CHANGE WINDOWS): waves
(cumulative counts or percentages of the instances whose upload changed, canaries first;
default [100%]), verify (read each upload back before the next wave; default false),
maxFailures (more failures than this in one wave halt the rollout; a count or a percentage of
the wave; default 0), pause (least time between a wave landing and the next starting;
default 0s).
.TP
windows (list; default: none, uploads any time)
Change windows, each a mapping: allow or deny (a cron schedule: minute hour day-of-month
month day-of-week, Sunday 0 or 7; or six fields with seconds first), duration (how long each
opening lasts, in real time; required), timezone (an IANA name such as Europe/Berlin;
default UTC). No upload inside a deny window; with allow windows, uploads only inside one.
.TP
notify (list)
Who is told what happens, each item a receiver (see Receiver keys): a failure, its
recovery, a drift, a rollout. At most one message per (receiver, instance, desired picture,
event), kept across restarts; each goes through the outbox in the state directory.
.SS Per-instance keys
.TP
idInstance (digits; required)
The instance's id: 1 to 32 digits, not starting with 0, unique in the manifest. Quoted or
not; YAML's other integer forms (0x10, 1_000) are refused, as they would name another
instance.
.TP
apiTokenFile (path)
The token is this file's content, surrounding whitespace ignored. --check warns
(token-file-open) when its group or others may read it.
.TP
apiTokenEnv (environment variable name)
The token is this variable's value.
.TP
apiTokenInstance (string)
The token itself: accepted, but it puts a secret in git, and --check warns.
.IP
Exactly one of apiTokenFile, apiTokenEnv and apiTokenInstance per instance. A token is ASCII
letters and digits only. A token file or variable is read when a call may follow, not when
the manifest is loaded.
.TP
picture (path; required)
The picture to show: JPEG, PNG or WebP (recognised by its first bytes, not its name), at
most 10 MiB. Anything else is an error of this instance, found without calling the API.
.TP
apiUrl (URL; default: the top-level apiUrl)
This instance's GREEN-API host, as the top-level apiUrl.
.TP
drift (off, warn or heal; default: the top-level drift)
As the top-level drift, for this instance.
.TP
fit, size, background, quality (default: the top-level values)
This instance's processing; see Processing keys.
.TP
suspend (true or false; default false)
true: leave this instance alone (no call, no check), reported as suspended.
.TP
canary (true or false; default false)
true: always in the first wave of a rollout.
.SS Receiver keys (each item of notify)
.TP
url (URL; required)
Where each message is POSTed: https://, or http:// to a loopback address only. Redirects are
not followed; the answer must be 2xx within 10 s, or the message is sent again later (1 s,
2 s, 4 s, ... at most 5 minutes apart). The URL is never logged (a Slack webhook's is a
secret).
.TP
format (json or slack; default json)
json: the versioned body of docs/notifications.md (event, instance, revision, picture hashes,
outcome, time). slack: an incoming webhook's {\"text\": ...}.
.TP
secretFile (path)
A file holding a secret (relative to the manifest's folder; ${NAME} expands), read at each
send: the header X-Avatar-Sync-Signature carries sha256= and the hex HMAC-SHA256 of the body.
.TP
events (list of applied, failed, drifted, halted, rollout; default all but applied)
The events told. failed includes the recovery of a failure that was told.
.TP
after (integer, 1 to 1000; default 1)
A failure is told once it has happened this many times in a row.
.SS Processing keys (top level, and per instance)
An instance's own value wins over the top level's, which wins over the default. Uploads are
baseline JPEGs without metadata (no EXIF, no GPS), the EXIF orientation applied, colours
converted to sRGB from an embedded ICC profile (a broken profile is an error of the
instance); a JPEG that needs no pixel change is not re-encoded, only stripped of its
metadata. --preview DIR writes what would be sent, and an index.html showing where each
upload was cut from and the circle WhatsApp shows.
.TP
fit (none, cover, contain or face; default none)
none keeps the aspect ratio; cover centre-crops to a square; contain fits inside a square,
padded with background; face crops a square around the faces found, kept inside the circle
WhatsApp shows (else around what stands out, else the centre).
.TP
size (integer, 16 to 4096; default 640)
The longest edge in pixels after processing; pictures are never scaled up.
.TP
background (#rrggbb; default #ffffff)
The colour of padding and of transparent pixels. Quote it in YAML (\"#ffffff\"): an unquoted
# starts a comment.
.TP
quality (integer, 1 to 100; default 90)
JPEG quality of a re-encoded upload.
";

/// Sections written as roff (`.SH`, `.TP` lines) with plain text between them.
const ENVIRONMENT_AND_FILES: &str = "\
.SH ROLLOUTS AND CHANGE WINDOWS
With rollout:, the instances whose upload a revision changes (the manifest's desired
pictures: any change of a picture is a new revision) go out in waves: canaries first, then by
a stable hash of the id, so the same revision always makes the same waves. A wave starts when
the one before has landed (each upload confirmed, and with verify read back with
getWaSettings and compared perceptually, as drift compares) and pause has passed;
--reconcile waits for pauses within --timeout and otherwise exits 0 with the instances
held, and the next run (a timer) continues. The rollout is kept in the state directory
(rollout.json): a restart, a kill or a later one-shot run continues it where it was.
.PP
More failures in a wave than maxFailures (a failed upload, a picture read back as another, a
read-back that failed 5 times) halt the rollout: nothing more is uploaded for that revision;
--status, the status page and /metrics (avatar_sync_rollout_halted) say so with the failures.
avatar-sync --reconcile --resume, or SIGUSR1 to the daemon (systemctl kill -s USR1
avatar-sync), resumes it: the halted wave counts as landed and the next starts. A new
revision (a fix, a revert) starts a new rollout.
.PP
Inside a deny window (or outside every allow window, when there are allow windows) nothing
is uploaded; reads, drift warnings and the status page go on. --reconcile exits 0 and says
when the window opens; the daemon waits for it; --check prints the next opening. A window's
schedule is read in its time zone: a daylight-saving change neither opens a window twice
nor skips one.
.SH SIGNED REVISIONS
With --verify-signers FILE, only a commit signed by an allowed key is applied, and the
manifest and every picture are read from the tree of the commit HEAD names, never from the
disk. FILE is git's allowed_signers format (SSH keys) or an armoured OpenPGP keyring. Set up
signing with SSH keys:
.PP
.nf
  ssh-keygen -t ed25519 -C alice@example.com
  git config gpg.format ssh
  git config user.signingkey ~/.ssh/id_ed25519.pub
  git config commit.gpgsign true
  echo \"alice@example.com $(cat ~/.ssh/id_ed25519.pub)\" >> /etc/avatar-sync/allowed_signers
.fi
.PP
An unsigned commit, a key not listed (or not for namespace git, or outside its
valid-after/valid-before, written in UTC with a Z), a revoked or expired OpenPGP key, or a
signature that does not match its commit: one-shot modes exit 1 naming the revision and
the reason; the daemon keeps the last verified revision, shows the newer one as not applied
(status page, avatar_sync_revision_verified 0 in /metrics) and uploads nothing from it.
.SH SEALED TOKENS
A token file or variable that is an age file (age -r RECIPIENT, binary or -a armoured) is
opened in memory with --age-identity FILE, a file of AGE-SECRET-KEY-1... lines as age-keygen
writes it; under systemd, give it as an encrypted credential:
.PP
.nf
  LoadCredentialEncrypted=age-identity:/etc/avatar-sync/age-identity.cred
  Environment=AVATAR_SYNC_AGE_IDENTITY=%d/age-identity
.fi
.SH SIGNALS
.TP
SIGHUP
The daemon reloads the manifest and reconciles everything now (slow backoffs get a fresh
chance), and takes the ids in the state directory's replace file, as --replace.
.TP
SIGUSR1
The daemon resumes a halted rollout (as --reconcile --resume).
.TP
SIGTERM, SIGINT
No new calls; a call in flight finishes (at most 10 s); state is saved; exit 0. A second one
exits at once.
.SH ENVIRONMENT
.TP
AVATAR_SYNC_MANIFEST
The manifest, when --manifest is not given.
.TP
AVATAR_SYNC_STATE_DIR, STATE_DIRECTORY, XDG_STATE_HOME, HOME
The state directory, when --state-dir is not given, in this order (systemd sets STATE_DIRECTORY).
.TP
AVATAR_SYNC_LISTEN
The address of --listen, when it is not given.
.TP
AVATAR_SYNC_SHARD
The shard (K/N) of --shard, when it is not given.
.TP
AVATAR_SYNC_VERIFY_SIGNERS
The allowed signers of --verify-signers, when it is not given.
.TP
AVATAR_SYNC_AGE_IDENTITY
The identities of --age-identity, when it is not given.
.TP
HOSTNAME
The host name --shard-from-hostname reads K from (else the kernel's).
.TP
HTTPS_PROXY, ALL_PROXY (or lower case)
An https:// proxy to call GREEN-API through (never for a loopback apiUrl). Any other proxy
scheme is ignored with a warning; HTTP_PROXY is never used: the token travels in the URL.
.TP
CREDENTIALS_DIRECTORY
Set by systemd's LoadCredential=; manifests name token files as ${CREDENTIALS_DIRECTORY}/name.token.
.TP
RUST_LOG
Log filter, as an alternative to -v and -q.
.TP
NOTIFY_SOCKET, WATCHDOG_USEC
Set by systemd for Type=notify: readiness, status and watchdog messages.
.SH FILES
.TP
/etc/avatar-sync/manifest.yaml
The default manifest.
.TP
/var/lib/avatar-sync
The state directory of the systemd units: state.json, the lock and the picture caches.
.TP
/var/lib/avatar-sync/replace
Ids of instances to upload again, one a line (# comments allowed), for the daemon to take
and remove at the next SIGHUP (systemctl reload avatar-sync).
.TP
/usr/lib/systemd/system/avatar-sync.service, avatar-sync-reconcile.service, avatar-sync-reconcile.timer
The daemon, and the one-shot with its timer. Installed, not enabled.
.TP
/usr/share/doc/avatar-sync/examples/manifest.yaml
An annotated manifest.
.SH SEE ALSO
systemctl(1), journalctl(1), and /usr/share/doc/avatar-sync/: README.md, operations.md (running it under systemd with the manifest in git), state.md (the state format).
";

/// Text made safe for roff: backslashes and dashes escaped, a line starting with a dot or
/// an apostrophe kept as text, except the `.SH`, `.SS`, `.TP`, `.PP` and `.IP` requests of
/// [`MANIFEST_REFERENCE`] and [`ENVIRONMENT_AND_FILES`].
fn roff_escape(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.starts_with(".SH ")
                || line.starts_with(".SS ")
                || [".TP", ".PP", ".IP", ".nf", ".fi"].contains(&line)
            {
                return format!("{line}\n");
            }
            let escaped = line.replace('\\', "\\e").replace('-', "\\-");
            if escaped.starts_with('.') || escaped.starts_with('\'') {
                format!("\\&{escaped}\n")
            } else {
                format!("{escaped}\n")
            }
        })
        .collect()
}
