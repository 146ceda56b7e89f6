//! Logging setup for applications (the CLI, examples). Libraries never call it.

use std::sync::Mutex;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use crate::{ConfigError, LogFormat, LoggingSection};

/// Installs a global `tracing` subscriber as `cfg` says: level from `RUST_LOG`
/// or `log_level`, in `cfg`'s [`LogFormat`], to standard error (coloured
/// only on a terminal) and/or a file (never coloured).
///
/// # Errors
/// [`ConfigError::Io`] if the log file cannot be opened;
/// [`ConfigError::Invalid`] if a subscriber is already installed.
pub fn init(cfg: &LoggingSection) -> Result<(), ConfigError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log_level));
    let format = cfg.effective_format();
    let console = cfg.log_to_console.then(|| {
        // Colours only for a person at a terminal: `serve 2> file` and log
        // shippers get plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        styled(format, ansi, std::io::stderr)
    });
    let file = if cfg.log_to_file {
        let path = if cfg.log_file_path.is_empty() {
            format!("{}.log", cfg.app_name)
        } else {
            cfg.log_file_path.clone()
        };
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| ConfigError::Io { path, source })?;
        Some(styled(format, false, Mutex::new(f)))
    } else {
        None
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(console)
        .with(file)
        .try_init()
        .map_err(|e| ConfigError::Invalid {
            key: "logging",
            reason: format!("a logger is already installed: {e}"),
        })
}

/// A formatting layer writing to `writer` in `format`.
fn styled<S, W>(format: LogFormat, ansi: bool, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = fmt::layer().with_ansi(ansi).with_writer(writer);
    match format {
        LogFormat::Compact => layer.compact().boxed(),
        LogFormat::Pretty => layer.pretty().boxed(),
        LogFormat::Json => layer.json().boxed(),
        LogFormat::Full => layer.boxed(),
    }
}
