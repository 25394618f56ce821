//! Logs on stderr, as text or JSON lines, filtered by `-v`/`-q` or `RUST_LOG`.
//!
//! Nothing logged anywhere carries a token: tokens are a type whose `Debug` and `Display`
//! print `[redacted]`, and HTTP errors are stripped of their URL before they are logged.
//! Every line goes through [`crate::redact::scrub`] (values `${NAME}` expanded to).

use crate::cli::LogFormat;
use crate::redact::Scrubbed;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `verbosity` is 0 for info, -1 for warn, 1 for debug:
/// [`crate::cli::Args::log_verbosity`], which starts one-shot modes at warn.
pub fn init(format: LogFormat, verbosity: i8) {
    let level = match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        2..=i8::MAX => "trace",
    };
    // Our crate at the chosen level; libraries only speak up when something is wrong.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("warn,avatar_sync={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Every line through the scrubber: no value `${NAME}` expanded to is printed.
        .with_writer(|| Scrubbed(std::io::stderr()))
        .with_target(false);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    // Already installed (a test or an embedding program did it): keep that one.
    let _ = result;
}
