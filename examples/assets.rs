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
/// codes) kept as written, and the environment, files and references a man page has.
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

/// Sections written as roff (`.SH`, `.TP` lines) with plain text between them.
const ENVIRONMENT_AND_FILES: &str = "\
.SH ENVIRONMENT
.TP
AVATAR_SYNC_MANIFEST
The manifest, when --manifest is not given.
.TP
AVATAR_SYNC_STATE_DIR, STATE_DIRECTORY, XDG_STATE_HOME
The state directory, when --state-dir is not given, in this order (systemd sets STATE_DIRECTORY).
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
/usr/lib/systemd/system/avatar-sync.service, avatar-sync-reconcile.service, avatar-sync-reconcile.timer
The daemon, and the one-shot with its timer. Installed, not enabled.
.TP
/usr/share/doc/avatar-sync/examples/manifest.yaml
An annotated manifest.
.SH SEE ALSO
systemctl(1), journalctl(1), and /usr/share/doc/avatar-sync/: README.md, operations.md (running it under systemd with the manifest in git), state.md (the state format).
";

/// Text made safe for roff: backslashes and dashes escaped, a line starting with a dot or
/// an apostrophe kept as text, except the `.SH`/`.TP` requests of [`ENVIRONMENT_AND_FILES`].
fn roff_escape(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.starts_with(".SH ") || line == ".TP" {
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
