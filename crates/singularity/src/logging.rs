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

/// Why the log backend could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The syslog or journald datagram socket could not be created.
    #[error("{0}")]
    Socket(#[source] std::io::Error),
    /// The log file could not be opened.
    #[error("cannot open log file {path}: {source}")]
    File {
        /// The log file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The handler is none of those known.
    #[error("unknown log handler '{0}': expected syslog, journald, - or an absolute path")]
    Unknown(String),
    /// Another logger is installed already.
    #[error("{0}")]
    Installed(#[source] log::SetLoggerError),
}

fn open_sink(handler: &str) -> Result<Sink, LogError> {
    match handler {
        "-" | "stderr" => Ok(Sink::Stderr),
        "syslog" => {
            let sock = UnixDatagram::unbound().map_err(LogError::Socket)?;
            // No syslog daemon (containers, tests): fall back to standard error.
            Ok(match sock.connect("/dev/log") {
                Ok(()) => Sink::Syslog(sock),
                Err(_) => Sink::Stderr,
            })
        }
        "journald" => {
            let sock = UnixDatagram::unbound().map_err(LogError::Socket)?;
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
            .map_err(|source| LogError::File {
                path: path.to_string(),
                source,
            }),
        other => Err(LogError::Unknown(other.to_string())),
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
            Sink::File(f) => writeln!(
                f,
                "{} singularity[{pid}]: {}: {msg}",
                rfc3339(std::time::SystemTime::now()),
                record.level()
            ),
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

/// The proleptic Gregorian date `(year, month, day)` of a count of days
/// since 1970-01-01 (Howard Hinnant's `civil_from_days`: 400-year eras of
/// 146097 days, years starting on 1 March so that the leap day ends them).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from 1 March, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both fit: day is 1..=31 and month 1..=12.
    (year, month as u32, day as u32)
}

/// `time` as RFC 3339 in UTC with milliseconds: `2026-12-07T05:30:00.123Z`.
/// A time before 1970 is written as 1970-01-01T00:00:00.000Z.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    let since = time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX / 2);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since.subsec_millis()
    )
}

/// Installs (or re-points) the logger.
pub fn init(handler: &str, level: log::LevelFilter) -> Result<(), LogError> {
    let sink = open_sink(handler)?;
    log::set_max_level(level);
    if let Some(logger) = LOGGER.get() {
        if let Ok(mut current) = logger.sink.lock() {
            *current = sink;
        }
        return Ok(());
    }
    let logger = LOGGER.get_or_init(|| Logger { sink: Mutex::new(sink) });
    log::set_logger(logger).map_err(LogError::Installed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64, millis: u64) -> String {
        rfc3339(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
    }

    #[test]
    fn dates_of_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29)); // 2000 is a leap year (divisible by 400)
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(19_416), (2023, 2, 28));
        assert_eq!(civil_from_days(19_417), (2023, 3, 1)); // 2023 is not
        assert_eq!(civil_from_days(19_782), (2024, 2, 29)); // 2024 is
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1)); // 2100 is not (divisible by 100)
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(951_868_799, 999), "2000-02-29T23:59:59.999Z");
        assert_eq!(at(1_796_621_400, 123), "2026-12-07T05:30:00.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(1)), "1970-01-01T00:00:00.000Z");
    }

    /// The same seconds as `date -u -d @N +%FT%T` (GNU coreutils), when it is
    /// installed.
    #[test]
    fn timestamps_agree_with_the_date_command() {
        for secs in [
            0u64,
            68_169_599,
            951_825_600,
            1_709_208_000,
            1_796_621_400,
            4_107_542_400,
            253_402_300_799,
        ] {
            let Ok(out) = std::process::Command::new("date")
                .arg("-u")
                .arg(format!("-d@{secs}"))
                .arg("+%FT%T")
                .output()
            else {
                eprintln!("no date command: skipped");
                return;
            };
            assert!(out.status.success(), "date -u -d @{secs}");
            let want = format!("{}.000Z", String::from_utf8_lossy(&out.stdout).trim());
            assert_eq!(at(secs, 0), want, "{secs}");
        }
    }
}
