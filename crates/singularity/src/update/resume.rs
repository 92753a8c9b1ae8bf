//! At start: an update whose new build had not come back when the machine
//! went down. Its watcher went down with the machine, so nothing would ever
//! judge the new build. The build that starts now is watched again, by the
//! previous build and by the same rule: it reaches its request loop within
//! [`COME_BACK`](super::restart::COME_BACK), or the previous build is put
//! back and started.

use super::restart::{self, marker_path};
use super::{previous_path, target_path, UpdateSettings};
use crate::root::Root;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What start-up found of an unfinished update.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// No marker: no update is unfinished.
    Nothing,
    /// A marker written since the machine started: the watcher that
    /// belongs to it decides.
    Watched,
    /// A marker from before the machine started, for the build that runs
    /// now: watched again.
    Interrupted {
        /// The marker.
        marker: PathBuf,
        /// The new build (this process's executable).
        target: PathBuf,
        /// The build that comes back if it does not serve.
        previous: PathBuf,
    },
    /// A marker from before the machine started that cannot be acted on
    /// (why, for the log).
    Stale(PathBuf, String),
}

/// This boot, as a marker is compared with it.
#[derive(Debug, Clone)]
pub struct Boot {
    /// The kernel's id of this boot, when it has one.
    pub id: Option<String>,
    /// When the machine started.
    pub time: SystemTime,
}

impl Boot {
    /// Whether a marker holding `text`, last written at `written`, is from
    /// an earlier boot: by the boot id it names, else (a marker of a build
    /// that writes only its pid) by its time.
    fn predates(&self, text: &str, written: Option<SystemTime>) -> bool {
        match (text.split_whitespace().nth(1), &self.id) {
            (Some(then), Some(now)) => then != now,
            _ => written.is_some_and(|w| w < self.time),
        }
    }
}

/// Looks for an update cut short by a restart of the machine. Only on the
/// live root, where updates re-execute the agent.
pub fn find(settings: &UpdateSettings, root: &Root, boot: &Boot) -> Found {
    if !root.is_live() || restart::resumed_marker().is_some() {
        return Found::Nothing;
    }
    let Ok(target) = target_path(settings, root) else {
        return Found::Nothing;
    };
    let marker = marker_path(&target);
    let Ok(meta) = std::fs::symlink_metadata(&marker) else {
        return Found::Nothing;
    };
    let text = std::fs::read_to_string(&marker).unwrap_or_default();
    if !boot.predates(&text, meta.modified().ok()) {
        return Found::Watched;
    }
    let previous = previous_path(&target);
    if !std::fs::symlink_metadata(&previous).is_ok_and(|m| m.file_type().is_file()) {
        return Found::Stale(marker, format!("{} is gone: nothing to go back to", previous.display()));
    }
    if !is_running_executable(&target) {
        return Found::Stale(marker, format!("{} is not the running executable", target.display()));
    }
    Found::Interrupted {
        marker,
        target,
        previous,
    }
}

/// Whether `target` is the file this process runs.
fn is_running_executable(target: &Path) -> bool {
    match (std::fs::metadata("/proc/self/exe"), std::fs::metadata(target)) {
        (Ok(running), Ok(target)) => running.dev() == target.dev() && running.ino() == target.ino(),
        _ => false,
    }
}

/// This boot: its id and when the machine started (`btime` of `/proc/stat`).
pub fn this_boot() -> Option<Boot> {
    Some(Boot {
        id: restart::boot_id(),
        time: boot_time()?,
    })
}

/// When the machine started (`btime` of `/proc/stat`).
fn boot_time() -> Option<SystemTime> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let secs = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// At daemon start, once this process is the one that serves (detached, pid
/// file taken): an update cut short by a restart of the machine is watched
/// again. `args` are this process's arguments, which the previous build is
/// started with if it comes back.
pub fn watch_again(settings: &UpdateSettings, root: &Root, args: &[OsString]) {
    let Some(boot) = this_boot() else {
        return;
    };
    match find(settings, root, &boot) {
        Found::Nothing | Found::Watched => {}
        Found::Stale(marker, why) => {
            log::warn!("an update was cut short by a restart of the machine, but {why}; keeping this build");
            let _ = std::fs::remove_file(marker);
        }
        Found::Interrupted {
            marker,
            target,
            previous,
        } => {
            // Written again: from this boot, and naming this process.
            if let Err(e) = std::fs::write(&marker, restart::marker_text()) {
                log::error!("cannot write the update marker {}: {e}", marker.display());
                return;
            }
            match restart::start_watcher(&marker, &target, &previous, args) {
                Ok(()) => {
                    log::warn!(
                        "the update to this build was cut short by a restart of the machine before it served; {} watches it again",
                        previous.display()
                    );
                    restart::watched_again(marker);
                }
                Err(e) => {
                    log::error!("{e}; this build runs unwatched");
                    let _ = std::fs::remove_file(marker);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(target: &Path) -> UpdateSettings {
        UpdateSettings {
            target: Some(target.to_string_lossy().into_owned()),
            ..UpdateSettings::default()
        }
    }

    #[test]
    fn only_a_marker_from_before_the_boot_is_an_interrupted_update() {
        let running = crate::update::running_executable().unwrap();
        // A hard link to this test's executable is "the running executable".
        let dir = tempfile::tempdir_in(running.parent().unwrap()).unwrap();
        let target = dir.path().join("singularity");
        std::fs::hard_link(&running, &target).unwrap();
        let live = Root::new(Path::new("/"));
        let s = settings(&target);
        let now = SystemTime::now();
        // Markers without a boot id are judged by their time.
        let booted_at = |time| Boot { id: None, time };
        assert_eq!(find(&s, &live, &booted_at(now)), Found::Nothing);
        let marker = marker_path(&target);
        std::fs::write(&marker, "1\n").unwrap();
        // Written after the boot: the update's own watcher decides.
        let long_ago = UNIX_EPOCH + Duration::from_secs(1);
        assert_eq!(find(&s, &live, &booted_at(long_ago)), Found::Watched);
        // From before the boot, with no previous build to go back to.
        let later = booted_at(now + Duration::from_secs(3600));
        assert!(matches!(find(&s, &live, &later), Found::Stale(_, why) if why.contains("nothing to go back to")));
        let previous = previous_path(&target);
        std::fs::write(&previous, b"old").unwrap();
        let interrupted = Found::Interrupted {
            marker: marker.clone(),
            target: target.clone(),
            previous: previous.clone(),
        };
        assert_eq!(find(&s, &live, &later), interrupted);
        // A boot id in the marker decides, whatever the clock says.
        let this = Boot {
            id: Some("b2".into()),
            time: now + Duration::from_secs(3600),
        };
        std::fs::write(&marker, "1 b2\n").unwrap();
        assert_eq!(find(&s, &live, &this), Found::Watched);
        std::fs::write(&marker, "1 b1\n").unwrap();
        let earlier_clock = Boot { time: long_ago, ..this };
        assert_eq!(find(&s, &live, &earlier_clock), interrupted);
        // The marker an update writes names this boot.
        std::fs::write(&marker, restart::marker_text()).unwrap();
        assert_eq!(find(&s, &live, &this_boot().unwrap()), Found::Watched);
        // Another file at the target is not this build: nothing to vouch for.
        let other = dir.path().join("other");
        std::fs::write(&other, b"x").unwrap();
        std::fs::write(marker_path(&other), "1\n").unwrap();
        std::fs::write(previous_path(&other), b"old").unwrap();
        assert!(
            matches!(find(&settings(&other), &live, &later), Found::Stale(_, why) if why.contains("not the running executable"))
        );
        // Not on the live root: updates do not re-execute there.
        let scratch = Root::new(dir.path());
        assert_eq!(
            find(&settings(Path::new("/singularity")), &scratch, &later),
            Found::Nothing
        );
    }

    #[test]
    fn the_boot_time_is_in_the_past() {
        let boot = boot_time().expect("btime in /proc/stat");
        assert!(boot < SystemTime::now() && boot > UNIX_EPOCH);
    }
}
