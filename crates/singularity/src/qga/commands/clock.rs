//! `guest-get-time` and `guest-set-time`, and the time zone's offset from
//! UTC read out of a TZif file (`guest-get-timezone` in `info.rs` asks it).
//!
//! The clocks are changed only on the live root, through [`Clocks`]; under
//! any other root nothing is changed, but the arguments are checked and the
//! answer is the same. TZif parsing is pure.

use crate::qga::{arg_int, Args, Ctx, QgaError};
use crate::root::Root;
use rustix::time::{clock_settime, ClockId, Timespec};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// The program qemu-ga runs to copy between the system and hardware clocks.
pub const HWCLOCK: &str = "/sbin/hwclock";

/// 2070-01-01T00:00:00Z: qemu-ga refuses times from this year on, and
/// before 1970, as "Invalid time".
const END_OF_RANGE: i64 = 3_155_760_000;

const NS: i64 = 1_000_000_000;

/// Why `hwclock` gave no exit status.
#[derive(Debug, thiserror::Error)]
pub enum HwclockError {
    /// It could not be run.
    #[error("{0}")]
    Run(#[source] std::io::Error),
    /// A signal ended it.
    #[error("killed")]
    Killed,
}

/// What changes the clocks (the system's, and the hardware's through
/// `hwclock`).
pub trait Clocks {
    /// Sets the system clock to `ns` nanoseconds since the epoch.
    fn set_system(&mut self, ns: i64) -> std::io::Result<()>;
    /// Runs `hwclock` with one argument: `Ok(true)` when it exited with 0,
    /// `Ok(false)` when it exited otherwise, `Err` when it was killed or
    /// could not run.
    fn hwclock(&mut self, arg: &str) -> Result<bool, HwclockError>;
}

/// The kernel's clock and the real `hwclock`, for the live root.
struct SystemClocks;

impl Clocks for SystemClocks {
    fn set_system(&mut self, ns: i64) -> std::io::Result<()> {
        // Whole microseconds, as qemu-ga sets the clock.
        let time = Timespec {
            tv_sec: ns / NS,
            tv_nsec: (ns % NS) / 1000 * 1000,
        };
        Ok(clock_settime(ClockId::Realtime, time)?)
    }

    fn hwclock(&mut self, arg: &str) -> Result<bool, HwclockError> {
        let status = Command::new(HWCLOCK)
            .arg(arg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(HwclockError::Run)?;
        match status.code() {
            Some(code) => Ok(code == 0),
            None => Err(HwclockError::Killed),
        }
    }
}

/// Changes nothing, for any root but the live one.
struct UnchangedClocks;

impl Clocks for UnchangedClocks {
    fn set_system(&mut self, ns: i64) -> std::io::Result<()> {
        log::info!("not the live root: the system clock stays as it is (asked: {ns} ns)");
        Ok(())
    }

    fn hwclock(&mut self, arg: &str) -> Result<bool, HwclockError> {
        log::info!("not the live root: not running {HWCLOCK} {arg}");
        Ok(true)
    }
}

/// Nanoseconds since the epoch, now (the real-time clock).
fn now_ns() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// `guest-get-time`: nanoseconds since the epoch.
pub fn get_time(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Ok(json!(now_ns()))
}

/// `guest-set-time {time?}`: with a time, sets the system clock to it and
/// the hardware clock from it (`hwclock -w`); without, sets the system
/// clock from the hardware clock (`hwclock -s`).
pub fn set_time(ctx: &mut Ctx<'_>, args: &Args) -> Result<Value, QgaError> {
    let hwclock = ctx.root.join(HWCLOCK).is_ok_and(|p| is_executable(&p));
    let time = arg_int(args, "time");
    if ctx.root.is_live() {
        set_time_with(&mut SystemClocks, hwclock, time)
    } else {
        set_time_with(&mut UnchangedClocks, hwclock, time)
    }
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `guest-set-time`'s logic, in qemu-ga's order and with its messages:
/// no `hwclock` is "not supported" before anything else.
pub fn set_time_with(clocks: &mut dyn Clocks, hwclock: bool, time: Option<i64>) -> Result<Value, QgaError> {
    if !hwclock {
        return Err(QgaError::unsupported());
    }
    if let Some(ns) = time {
        if !(0..END_OF_RANGE).contains(&(ns / NS)) || ns < 0 {
            return Err(QgaError::generic("Invalid time"));
        }
        clocks
            .set_system(ns)
            .map_err(|e| QgaError::generic(format!("Failed to set time to guest: {e}")))?;
    }
    let arg = if time.is_some() { "-w" } else { "-s" };
    match clocks.hwclock(arg) {
        Ok(true) => Ok(json!({})),
        Ok(false) => Err(QgaError::generic("hwclock failed to set hardware clock to system time")),
        Err(_) => Err(QgaError::generic("child process has terminated abnormally")),
    }
}

/// The offset of local time from UTC, in seconds east, at `now` (seconds
/// since the epoch), from the TZif file `tzif`; `None` when it cannot be read.
#[cfg(test)]
fn tzif_offset(tzif: &[u8], now: i64) -> Option<i64> {
    tzif_local(tzif, now).map(|(offset, _)| offset)
}

/// Local time at `now` by the TZif file `tzif`: its offset from UTC
/// (seconds east) and its abbreviation (`CET`, `EDT`, `+0530`).
pub fn tzif_local(tzif: &[u8], now: i64) -> Option<(i64, String)> {
    Some(Tzif::parse(tzif)?.local_at(now))
}

/// Local time at `now` by the TZif file under `root` at `path`.
pub fn local_of(root: &Root, path: &str, now: i64) -> Option<(i64, String)> {
    let bytes = std::fs::read(root.join(path).ok()?).ok()?;
    tzif_local(&bytes, now)
}

/// The offset at `now` of the TZif file under `root` at `path`.
#[cfg(test)]
fn offset_of(root: &Root, path: &str, now: i64) -> Option<i64> {
    local_of(root, path, now).map(|(offset, _)| offset)
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    now_ns().div_euclid(NS)
}

/// What a TZif file says: its transitions, its local time types' offsets,
/// and its footer (a POSIX TZ string for times after the last transition).
#[derive(Debug, PartialEq, Eq)]
struct Tzif {
    transitions: Vec<(i64, usize)>,
    offsets: Vec<i64>,
    /// Each local time type's abbreviation, beside `offsets`.
    abbrs: Vec<String>,
    footer: Option<String>,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl Tzif {
    /// Parses version 1 (4-byte times) or, when present, the version 2+
    /// block (8-byte times) and its footer (RFC 8536).
    fn parse(b: &[u8]) -> Option<Tzif> {
        if b.get(..4)? != b"TZif" {
            return None;
        }
        let counts = |at: usize| -> Option<[usize; 6]> {
            let mut c = [0usize; 6];
            for (i, n) in c.iter_mut().enumerate() {
                *n = be32(b, at + 20 + 4 * i)? as usize;
            }
            // Each count is of entries of at least one byte in the file: a
            // count beyond its size is corrupt (and would be a huge allocation).
            c.iter().all(|&n| n <= b.len()).then_some(c)
        };
        let [isut, isstd, leap, time, types, chars] = counts(0)?;
        let v1_len = 44 + time * 5 + types * 6 + chars + leap * 8 + isstd + isut;
        let (at, wide) = if b[4] >= b'2' && b.get(v1_len..v1_len + 4)? == b"TZif" {
            (v1_len, true)
        } else {
            (0, false)
        };
        let [isut, isstd, leap, time, types, chars] = counts(at)?;
        let size = if wide { 8 } else { 4 };
        let mut p = at + 44;
        let mut transitions = Vec::with_capacity(time);
        for i in 0..time {
            let t = if wide {
                be64(b, p + i * 8)?
            } else {
                i64::from(be32(b, p + i * 4)? as i32)
            };
            let ty = *b.get(p + time * size + i)? as usize;
            transitions.push((t, ty));
        }
        p += time * (size + 1);
        let mut offsets = Vec::with_capacity(types);
        for i in 0..types {
            offsets.push(i64::from(be32(b, p + i * 6)? as i32));
        }
        if offsets.is_empty() || transitions.iter().any(|&(_, ty)| ty >= offsets.len()) {
            return None;
        }
        let names = b.get(p + types * 6..p + types * 6 + chars)?;
        let abbrs = (0..types)
            .map(|i| {
                let from = usize::from(*b.get(p + i * 6 + 5)?);
                let rest = names.get(from..)?;
                let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
                Some(String::from_utf8_lossy(&rest[..end]).into_owned())
            })
            .collect::<Option<Vec<String>>>()?;
        p += types * 6 + chars + leap * (size + 4) + isstd + isut;
        let footer = if wide {
            b.get(p..)
                .and_then(|rest| rest.strip_prefix(b"\n"))
                .and_then(|rest| rest.split(|&c| c == b'\n').next())
                .and_then(|s| std::str::from_utf8(s).ok())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        } else {
            None
        };
        Some(Tzif {
            transitions,
            offsets,
            abbrs,
            footer,
        })
    }

    fn local_at(&self, now: i64) -> (i64, String) {
        let last = self.transitions.last();
        if let (Some(footer), true) = (&self.footer, last.is_none_or(|&(t, _)| now >= t)) {
            if let Some(rule) = Posix::parse(footer) {
                return rule.local_at(now);
            }
        }
        let ty = match self.transitions.iter().rev().find(|&&(t, _)| t <= now) {
            Some(&(_, ty)) => ty,
            None => 0,
        };
        (self.offsets[ty], self.abbrs[ty].clone())
    }
}

/// A POSIX TZ string: standard offset, and daylight saving time with its
/// rules. Offsets here are seconds east of UTC.
#[derive(Debug, PartialEq, Eq)]
struct Posix {
    std: i64,
    std_name: String,
    dst: Option<(i64, Rule, Rule)>,
    dst_name: String,
}

/// When daylight saving time starts or ends: a day of the year and a time
/// of that day (seconds, possibly negative or past a day).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Day {
    /// `Jn`: 1..=365, February 29th never counted.
    Julian(i64),
    /// `n`: 0..=365, February 29th counted.
    Zero(i64),
    /// `Mm.w.d`: day `d` (0 Sunday) of week `w` (5: the last) of month `m`.
    Month(i64, i64, i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rule {
    day: Day,
    time: i64,
}

/// Reads the characters of `s` from `at` while `f` holds.
fn take_while(s: &[u8], at: &mut usize, f: impl Fn(u8) -> bool) -> usize {
    let start = *at;
    while s.get(*at).is_some_and(|&c| f(c)) {
        *at += 1;
    }
    *at - start
}

fn number(s: &[u8], at: &mut usize) -> Option<i64> {
    let start = *at;
    take_while(s, at, |c| c.is_ascii_digit());
    std::str::from_utf8(&s[start..*at]).ok()?.parse().ok()
}

/// `[+-]hh[:mm[:ss]]`, in seconds.
fn hms(s: &[u8], at: &mut usize) -> Option<i64> {
    let sign = match s.get(*at) {
        Some(b'-') => {
            *at += 1;
            -1
        }
        Some(b'+') => {
            *at += 1;
            1
        }
        _ => 1,
    };
    let mut secs = number(s, at)? * 3600;
    for unit in [60, 1] {
        if s.get(*at) != Some(&b':') {
            break;
        }
        *at += 1;
        secs += number(s, at)? * unit;
    }
    Some(sign * secs)
}

/// A zone abbreviation: letters, or anything between `<` and `>` (without them).
fn name(s: &[u8], at: &mut usize) -> Option<String> {
    let text = |from: usize, to: usize| String::from_utf8_lossy(&s[from..to]).into_owned();
    if s.get(*at) == Some(&b'<') {
        let from = *at + 1;
        take_while(s, at, |c| c != b'>');
        (s.get(*at) == Some(&b'>')).then(|| {
            *at += 1;
            text(from, *at - 1)
        })
    } else {
        let from = *at;
        (take_while(s, at, |c| c.is_ascii_alphabetic()) >= 3).then(|| text(from, *at))
    }
}

fn rule(s: &[u8], at: &mut usize) -> Option<Rule> {
    let day = match s.get(*at)? {
        b'J' => {
            *at += 1;
            Day::Julian(number(s, at)?)
        }
        b'M' => {
            *at += 1;
            let m = number(s, at)?;
            (s.get(*at) == Some(&b'.')).then_some(())?;
            *at += 1;
            let w = number(s, at)?;
            (s.get(*at) == Some(&b'.')).then_some(())?;
            *at += 1;
            Day::Month(m, w, number(s, at)?)
        }
        _ => Day::Zero(number(s, at)?),
    };
    let time = if s.get(*at) == Some(&b'/') {
        *at += 1;
        hms(s, at)?
    } else {
        7200
    };
    Some(Rule { day, time })
}

impl Posix {
    fn parse(tz: &str) -> Option<Posix> {
        let s = tz.as_bytes();
        let mut at = 0;
        let std_name = name(s, &mut at)?;
        let std = -hms(s, &mut at)?;
        let standard = |std_name: String| Posix {
            std,
            std_name,
            dst: None,
            dst_name: String::new(),
        };
        if at == s.len() {
            return Some(standard(std_name));
        }
        let dst_name = name(s, &mut at)?;
        let dst = if matches!(s.get(at), Some(b',') | None) {
            std + 3600
        } else {
            -hms(s, &mut at)?
        };
        if s.get(at) != Some(&b',') {
            // Daylight saving time without rules: qemu-ga's libc would fall
            // back to its own; keep standard time.
            return Some(standard(std_name));
        }
        at += 1;
        let start = rule(s, &mut at)?;
        (s.get(at) == Some(&b',')).then_some(())?;
        at += 1;
        let end = rule(s, &mut at)?;
        (at == s.len()).then_some(Posix {
            std,
            std_name,
            dst: Some((dst, start, end)),
            dst_name,
        })
    }

    fn local_at(&self, now: i64) -> (i64, String) {
        let Some((dst, start, end)) = self.dst else {
            return (self.std, self.std_name.clone());
        };
        let year = civil_from_days((now + self.std).div_euclid(86400)).0;
        // The start is given in standard time, the end in daylight time.
        let from = start.at(year) - self.std;
        let to = end.at(year) - dst;
        let in_dst = if from < to {
            (from..to).contains(&now)
        } else {
            !(to..from).contains(&now)
        };
        if in_dst {
            (dst, self.dst_name.clone())
        } else {
            (self.std, self.std_name.clone())
        }
    }
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year, month and day of a day since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl Rule {
    /// Local seconds since the epoch at which the rule fires in `year`.
    fn at(self, year: i64) -> i64 {
        let jan1 = days_from_civil(year, 1, 1);
        let day = match self.day {
            Day::Julian(n) => jan1 + n - 1 + i64::from(is_leap(year) && n >= 60),
            Day::Zero(n) => jan1 + n,
            Day::Month(m, w, d) => {
                let first = days_from_civil(year, m, 1);
                // 1970-01-01 was a Thursday (4).
                let wday = (first + 4).rem_euclid(7);
                let mut day = first + (d - wday).rem_euclid(7) + (w - 1) * 7;
                let next = if m == 12 {
                    days_from_civil(year + 1, 1, 1)
                } else {
                    days_from_civil(year, m + 1, 1)
                };
                while day >= next {
                    day -= 7;
                }
                day
            }
        };
        day * 86400 + self.time
    }
}

/// Runs `f` with a context on `root` (the applier and settings unused).
#[cfg(test)]
pub(super) fn with_ctx<T>(root: &Root, f: impl FnOnce(&mut Ctx<'_>) -> T) -> T {
    let applier = crate::apply::Applier::new(root.clone(), false, None);
    let settings = crate::qga::QgaSettings::default();
    let mut frozen = false;
    let mut ctx = Ctx {
        root,
        applier: &applier,
        settings: &settings,
        password_scheme: crate::crypto::hash::Scheme::default(),
        password_allow_empty: false,
        run_dir: root.base(),
        frozen: &mut frozen,
    };
    f(&mut ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what would have changed the clocks.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        system_fails: bool,
        /// What the next `hwclock` gives (then `Ok(true)` again).
        hwclock: Option<Result<bool, HwclockError>>,
    }

    impl Clocks for Recorder {
        fn set_system(&mut self, ns: i64) -> std::io::Result<()> {
            self.calls.push(format!("settimeofday {ns}"));
            if self.system_fails {
                return Err(std::io::Error::from_raw_os_error(libc::EPERM));
            }
            Ok(())
        }

        fn hwclock(&mut self, arg: &str) -> Result<bool, HwclockError> {
            self.calls.push(format!("hwclock {arg}"));
            self.hwclock.take().unwrap_or(Ok(true))
        }
    }

    #[test]
    fn a_time_sets_the_system_clock_then_the_hardware_clock() {
        let mut c = Recorder::default();
        let ns = 1_796_626_961_024_051_000;
        assert_eq!(set_time_with(&mut c, true, Some(ns)), Ok(json!({})));
        assert_eq!(c.calls, [format!("settimeofday {ns}"), "hwclock -w".into()]);
    }

    #[test]
    fn no_time_sets_the_system_clock_from_the_hardware_clock() {
        let mut c = Recorder::default();
        assert_eq!(set_time_with(&mut c, true, None), Ok(json!({})));
        assert_eq!(c.calls, ["hwclock -s"]);
    }

    #[test]
    fn without_hwclock_nothing_is_supported_not_even_a_bad_time() {
        let mut c = Recorder::default();
        assert_eq!(set_time_with(&mut c, false, Some(-1)), Err(QgaError::unsupported()));
        assert_eq!(set_time_with(&mut c, false, None), Err(QgaError::unsupported()));
        assert!(c.calls.is_empty());
    }

    #[test]
    fn times_outside_1970_to_2069_are_refused_as_qemu_ga_does() {
        let mut c = Recorder::default();
        let invalid = Err(QgaError::generic("Invalid time"));
        assert_eq!(set_time_with(&mut c, true, Some(i64::MAX)), invalid);
        assert_eq!(set_time_with(&mut c, true, Some(-NS)), invalid);
        assert_eq!(set_time_with(&mut c, true, Some(-1)), invalid);
        assert_eq!(set_time_with(&mut c, true, Some(END_OF_RANGE * NS)), invalid);
        assert!(c.calls.is_empty());
        let last = END_OF_RANGE * NS - 1;
        assert_eq!(set_time_with(&mut c, true, Some(last)), Ok(json!({})));
        assert_eq!(set_time_with(&mut c, true, Some(0)), Ok(json!({})));
    }

    #[test]
    fn failures_are_reported_with_qemu_ga_s_messages() {
        let mut c = Recorder {
            system_fails: true,
            ..Recorder::default()
        };
        let e = set_time_with(&mut c, true, Some(NS)).unwrap_err();
        assert_eq!(
            e.desc,
            "Failed to set time to guest: Operation not permitted (os error 1)"
        );
        assert_eq!(c.calls, [format!("settimeofday {NS}")], "hwclock not run");
        let mut c = Recorder {
            hwclock: Some(Ok(false)),
            ..Recorder::default()
        };
        let e = set_time_with(&mut c, true, None).unwrap_err();
        assert_eq!(e.desc, "hwclock failed to set hardware clock to system time");
        c.hwclock = Some(Err(HwclockError::Killed));
        let e = set_time_with(&mut c, true, None).unwrap_err();
        assert_eq!(e.desc, "child process has terminated abnormally");
    }

    #[test]
    fn under_a_test_root_hwclock_is_looked_for_there_and_no_clock_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let mut args = Args::new();
        args.insert("time".into(), json!(NS));
        let before = now_ns();
        let r = with_ctx(&root, |ctx| set_time(ctx, &args));
        assert_eq!(r, Err(QgaError::unsupported()));
        std::fs::create_dir_all(dir.path().join("sbin")).unwrap();
        std::fs::write(dir.path().join("sbin/hwclock"), "#!/bin/false\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(dir.path().join("sbin/hwclock"), mode).unwrap();
        assert_eq!(with_ctx(&root, |ctx| set_time(ctx, &args)), Ok(json!({})));
        assert_eq!(with_ctx(&root, |ctx| set_time(ctx, &Args::new())), Ok(json!({})));
        assert!(now_ns() >= before, "the clock was not set back to 1971");
    }

    #[test]
    fn get_time_is_now_in_nanoseconds() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let before = now_ns();
        let t = with_ctx(&root, |ctx| get_time(ctx, &Args::new())).unwrap();
        let t = t.as_i64().unwrap();
        assert!(t >= before && t <= now_ns());
    }

    /// A TZif version 2 file: one type per offset, `times` (with the index
    /// of their type), and a footer.
    fn tzif(offsets: &[i32], times: &[(i64, u8)], footer: &str) -> Vec<u8> {
        let header = |size: usize| {
            let mut h = b"TZif2".to_vec();
            h.extend([0u8; 15]);
            for n in [0, 0, 0, times.len(), offsets.len(), 4] {
                h.extend((n as u32).to_be_bytes());
            }
            let mut body = Vec::new();
            for &(t, _) in times {
                if size == 8 {
                    body.extend(t.to_be_bytes());
                } else {
                    body.extend((t as i32).to_be_bytes());
                }
            }
            body.extend(times.iter().map(|&(_, ty)| ty));
            for &o in offsets {
                body.extend(o.to_be_bytes());
                body.extend([u8::from(o != offsets[0]), 0]);
            }
            body.extend(b"XXX\0");
            h.extend(body);
            h
        };
        let mut out = header(4);
        out.extend(header(8));
        out.extend(format!("\n{footer}\n").bytes());
        out
    }

    fn utc(y: i64, m: i64, d: i64, h: i64) -> i64 {
        days_from_civil(y, m, d) * 86400 + h * 3600
    }

    #[test]
    fn the_footer_rule_gives_paris_summer_and_winter_time() {
        let paris = tzif(&[3600, 7200], &[(0, 0)], "CET-1CEST,M3.5.0,M10.5.0/3");
        assert_eq!(tzif_offset(&paris, utc(2026, 12, 7, 7)), Some(3600));
        assert_eq!(tzif_offset(&paris, utc(2026, 7, 1, 12)), Some(7200));
        // 2026-03-29 01:00 UTC is 02:00 CET: the change.
        assert_eq!(tzif_offset(&paris, utc(2026, 3, 29, 1) - 1), Some(3600));
        assert_eq!(tzif_offset(&paris, utc(2026, 3, 29, 1)), Some(7200));
        // 2026-10-25 01:00 UTC is 03:00 CEST: back.
        assert_eq!(tzif_offset(&paris, utc(2026, 10, 25, 1) - 1), Some(7200));
        assert_eq!(tzif_offset(&paris, utc(2026, 10, 25, 1)), Some(3600));
    }

    #[test]
    fn southern_zones_and_odd_names_and_offsets() {
        let sydney = tzif(&[36000], &[], "AEST-10AEDT,M10.1.0,M4.1.0/3");
        assert_eq!(tzif_offset(&sydney, utc(2026, 1, 15, 0)), Some(39600));
        assert_eq!(tzif_offset(&sydney, utc(2026, 6, 15, 0)), Some(36000));
        let kolkata = tzif(&[19800], &[], "IST-5:30");
        assert_eq!(tzif_offset(&kolkata, 0), Some(19800));
        let numeric = tzif(&[-10800], &[], "<-03>3");
        assert_eq!(tzif_offset(&numeric, utc(2026, 1, 1, 0)), Some(-10800));
        assert_eq!(tzif_local(&numeric, 0), Some((-10800, "-03".to_string())));
        let ny = tzif(&[-18000], &[], "EST5EDT,M3.2.0,M11.1.0");
        assert_eq!(tzif_local(&ny, utc(2026, 7, 1, 0)), Some((-14400, "EDT".to_string())));
        assert_eq!(tzif_local(&ny, utc(2026, 12, 1, 0)), Some((-18000, "EST".to_string())));
        let julian = tzif(&[0], &[], "XST0XDT,J60/0,J300/0");
        assert_eq!(tzif_offset(&julian, utc(2024, 3, 1, 12)), Some(3600));
        assert_eq!(tzif_offset(&julian, utc(2024, 2, 28, 12)), Some(0));
    }

    #[test]
    fn transitions_before_the_footer_and_type_zero_before_them() {
        let z = tzif(&[-18000, -14400], &[(1000, 1), (2000, 0)], "");
        assert_eq!(tzif_offset(&z, 500), Some(-18000));
        assert_eq!(tzif_offset(&z, 1500), Some(-14400));
        assert_eq!(tzif_offset(&z, 2500), Some(-18000));
        let z = tzif(&[-18000, -14400], &[(1000, 1)], "EST5EDT,M3.2.0,M11.1.0");
        assert_eq!(tzif_offset(&z, 1500), Some(-18000), "after the last: the footer");
        assert_eq!(tzif_offset(b"TZif2 short", 0), None);
        let mut huge = tzif(&[0], &[], "UTC0");
        huge[32..36].copy_from_slice(&u32::MAX.to_be_bytes()); // the transition count
        assert_eq!(tzif_offset(&huge, 0), None, "a count beyond the file is corrupt");
        assert_eq!(tzif_offset(b"not a zone file at all, not at all", 0), None);
    }

    #[test]
    fn the_real_zone_files_of_this_system_when_present() {
        let root = Root::new("/");
        if let Some(o) = offset_of(&root, "/usr/share/zoneinfo/Europe/Paris", utc(2026, 7, 1, 0)) {
            assert_eq!(o, 7200);
        }
        if let Some(local) = local_of(&root, "/usr/share/zoneinfo/Europe/Paris", utc(1990, 1, 1, 0)) {
            assert_eq!(local, (3600, "CET".to_string()), "from the transitions");
        }
        if let Some(local) = local_of(&root, "/usr/share/zoneinfo/America/Sao_Paulo", utc(2045, 1, 1, 0)) {
            assert_eq!(local, (-10800, "-03".to_string()), "from the footer");
        }
        if let Some(o) = offset_of(&root, "/usr/share/zoneinfo/America/New_York", 0) {
            assert_eq!(o, -18000);
        }
    }

    #[test]
    fn calendar_arithmetic() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2070, 1, 1) * 86400, END_OF_RANGE);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
