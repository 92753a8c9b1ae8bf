//! The system the commands' tests run against: a temporary root with the
//! real applier on it, a run-time directory, and the agent's state.

use crate::apply::{Applier, Runner};
use crate::qga::{Args, Ctx, QgaSettings};
use crate::root::Root;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

pub(super) struct System {
    /// Kept so that the root lives as long as the system.
    _dir: tempfile::TempDir,
    pub root: Root,
    pub applier: Applier,
    pub settings: QgaSettings,
    pub run: tempfile::TempDir,
    pub frozen: bool,
}

impl System {
    /// An empty root whose `/etc/passwd` and `/etc/shadow` know root and alice (uid 1000).
    pub fn new() -> System {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let applier = Applier::new(root.clone(), false, Some("/var/cache/singularity".into()));
        let system = System {
            _dir: dir,
            root,
            applier,
            settings: QgaSettings::default(),
            run: tempfile::tempdir().unwrap(),
            frozen: false,
        };
        system.write(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1001:Alice:/home/alice:/bin/sh\n",
        );
        system.write("/etc/shadow", "root:*:19000:0:99999:7:::\nalice:!:19000:0:99999:7:::\n");
        system.write("/etc/.pwd.lock", "");
        std::fs::create_dir_all(system.path("/home/alice")).unwrap();
        system
    }

    /// The same system, its commands run by `runner`.
    pub fn with_runner(mut self, runner: Arc<dyn Runner>) -> System {
        self.applier = self.applier.with_runner(runner);
        self
    }

    /// Where the system path `path` is on this machine.
    pub fn path(&self, path: &str) -> PathBuf {
        self.root.join(path).unwrap()
    }

    /// Writes the system file `path`, with its parents.
    pub fn write(&self, path: &str, contents: &str) {
        let path = self.path(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// The system file `path`.
    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path(path)).unwrap()
    }

    pub fn ctx(&mut self) -> Ctx<'_> {
        Ctx {
            root: &self.root,
            applier: &self.applier,
            settings: &self.settings,
            password_scheme: Default::default(),
            password_allow_empty: false,
            run_dir: self.run.path(),
            frozen: &mut self.frozen,
        }
    }
}

/// The arguments of a request, as the request loop hands them over.
pub(super) fn args(value: Value) -> Args {
    match value {
        Value::Object(map) => map,
        other => panic!("arguments must be an object, not {other}"),
    }
}
