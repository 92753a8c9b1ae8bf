//! The log backend: syslog (`/dev/log`, facility daemon), journald (native
//! protocol), standard error, or a file. It can be re-pointed on reload.
//! Secrets never reach it: they are wrapped in [`crate::secret::Secret`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::{Mutex, OnceLock};

enum Sink {
    Stderr,
    File(File),
    Syslog(UnixDatagram),
    Journald(UnixDatagram),
}

struct Logger {
    sink: Mutex<Sink>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

fn open_sink(handler: &str) -> Result<Sink, String> {
    match handler {
        "-" | "stderr" => Ok(Sink::Stderr),
        "syslog" => {
            let sock = UnixDatagram::unbound().map_err(|e| e.to_string())?;
            // No syslog daemon (containers, tests): fall back to standard error.
            Ok(match sock.connect("/dev/log") {
                Ok(()) => Sink::Syslog(sock),
                Err(_) => Sink::Stderr,
            })
        }
        "journald" => {
            let sock = UnixDatagram::unbound().map_err(|e| e.to_string())?;
            Ok(match sock.connect("/run/systemd/journal/socket") {
                Ok(()) => Sink::Journald(sock),
                Err(_) => Sink::Stderr,
            })
        }
        path if path.starts_with('/') => OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(Sink::File)
            .map_err(|e| format!("cannot open log file {path}: {e}")),
        other => Err(format!(
            "unknown log handler '{other}': expected syslog, journald, - or an absolute path"
        )),
    }
}

/// Syslog severities (RFC 5424).
fn severity(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let Ok(mut sink) = self.sink.lock() else { return };
        let msg = record.args().to_string();
        let pid = std::process::id();
        let _ = match &mut *sink {
            Sink::Stderr => writeln!(std::io::stderr(), "singularity[{pid}]: {}: {msg}", record.level()),
            Sink::File(f) => writeln!(f, "{} singularity[{pid}]: {}: {msg}", unix_time(), record.level()),
            Sink::Syslog(sock) => {
                // Facility daemon (3) * 8 + severity.
                let line = format!("<{}>singularity[{pid}]: {msg}", 24 + severity(record.level()));
                sock.send(line.as_bytes()).map(|_| ())
            }
            Sink::Journald(sock) => {
                let body = format!(
                    "PRIORITY={}\nSYSLOG_IDENTIFIER=singularity\nMESSAGE={}\n",
                    severity(record.level()),
                    msg.replace('\n', " ")
                );
                sock.send(body.as_bytes()).map(|_| ())
            }
        };
    }

    fn flush(&self) {}
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Installs (or re-points) the logger.
pub fn init(handler: &str, level: log::LevelFilter) -> Result<(), String> {
    let sink = open_sink(handler)?;
    log::set_max_level(level);
    if let Some(logger) = LOGGER.get() {
        if let Ok(mut current) = logger.sink.lock() {
            *current = sink;
        }
        return Ok(());
    }
    let logger = LOGGER.get_or_init(|| Logger { sink: Mutex::new(sink) });
    log::set_logger(logger).map_err(|e| e.to_string())
}
