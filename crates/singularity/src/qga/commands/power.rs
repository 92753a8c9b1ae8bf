//! `guest-shutdown`: powers the guest down, halts or reboots it with
//! `/sbin/shutdown`, as qemu-ga does (the same arguments, so the same
//! message in the guest's logs). The command runs through the applier,
//! which runs commands only on the live system. Success is not answered:
//! the guest goes away.

use crate::functions::Function;
use crate::plan::{Plan, Run, Step};
use crate::qga::{arg_str, Args, Ctx, QgaError};
use serde_json::{json, Value};

/// The program qemu-ga runs.
const SHUTDOWN: &str = "/sbin/shutdown";

/// The flag of a `mode`: power off, halt, or reboot.
fn flag(mode: Option<&str>) -> Option<&'static str> {
    match mode.unwrap_or("powerdown") {
        "powerdown" => Some("-P"),
        "halt" => Some("-H"),
        "reboot" => Some("-r"),
        _ => None,
    }
}

/// The plan of a shutdown in `mode`.
fn plan(mode: Option<&str>) -> Result<Plan, QgaError> {
    let flag =
        flag(mode).ok_or_else(|| QgaError::generic("mode is invalid (valid values are: halt|powerdown|reboot"))?;
    let args = ["-h", flag, "+0", "hypervisor initiated shutdown"];
    Ok(Plan {
        function: Function::Power.into(),
        steps: vec![Step::Run(Run {
            program: SHUTDOWN.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
        })],
    })
}

/// `guest-shutdown`.
pub fn shutdown(ctx: &mut Ctx<'_>, args: &Args) -> Result<Value, QgaError> {
    let plan = plan(arg_str(args, "mode"))?;
    ctx.applier.apply(&plan).map_err(|e| {
        log::warn!("guest-shutdown: {e}");
        QgaError::generic("child process has failed to shutdown")
    })?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{args, System};
    use super::*;
    use crate::apply::{RunError, Runner};
    use std::sync::{Arc, Mutex};

    /// Records the commands it is given; fails them when `fail`.
    #[derive(Default)]
    struct Recorder {
        runs: Mutex<Vec<Vec<String>>>,
        fail: bool,
    }

    impl Runner for Recorder {
        fn run(&self, run: &Run) -> Result<(), RunError> {
            let mut line = vec![run.program.clone()];
            line.extend(run.args.iter().cloned());
            let failure = RunError::Failed {
                line: line.join(" "),
                status: std::os::unix::process::ExitStatusExt::from_raw(1 << 8),
                stderr: Vec::new(),
            };
            self.runs.lock().unwrap().push(line);
            if self.fail {
                Err(failure)
            } else {
                Ok(())
            }
        }
        fn set_hostname(&self, _: &str) -> Result<(), RunError> {
            Ok(())
        }
        fn hostname(&self) -> Option<String> {
            None
        }
    }

    fn shut(recorder: &Arc<Recorder>, a: Value) -> Result<Value, QgaError> {
        let mut system = System::new().with_runner(recorder.clone());
        shutdown(&mut system.ctx(), &args(a))
    }

    #[test]
    fn each_mode_runs_shutdown_as_qemu_ga_does() {
        let cases = [
            (json!({}), "-P"),
            (json!({"mode": "powerdown"}), "-P"),
            (json!({"mode": "halt"}), "-H"),
            (json!({"mode": "reboot"}), "-r"),
        ];
        for (a, flag) in cases {
            let recorder = Arc::new(Recorder::default());
            assert_eq!(shut(&recorder, a.clone()), Ok(json!({})), "{a}");
            let want = ["/sbin/shutdown", "-h", flag, "+0", "hypervisor initiated shutdown"];
            assert_eq!(
                *recorder.runs.lock().unwrap(),
                vec![want.map(String::from).to_vec()],
                "{a}"
            );
        }
    }

    #[test]
    fn an_unknown_mode_runs_nothing() {
        let recorder = Arc::new(Recorder::default());
        let err = shut(&recorder, json!({"mode": "suspend"})).unwrap_err();
        assert_eq!(err.desc, "mode is invalid (valid values are: halt|powerdown|reboot");
        assert!(recorder.runs.lock().unwrap().is_empty());
    }

    #[test]
    fn a_failed_shutdown_is_qemu_gas_error() {
        let recorder = Arc::new(Recorder {
            fail: true,
            ..Recorder::default()
        });
        let err = shut(&recorder, json!({"mode": "halt"})).unwrap_err();
        assert_eq!(err.desc, "child process has failed to shutdown");
    }
}
