//! `singularity-host xenstored`: serve the XenStore simulator on Unix sockets until
//! SIGTERM or SIGINT.

use crate::cli::XenstoredArgs;
use singularity::signals;
use std::path::PathBuf;
use xenstore::sim::{Config, Simulator};

fn parse_guest(spec: &str) -> Result<(u32, PathBuf), String> {
    let (domid, path) = spec
        .split_once(':')
        .ok_or_else(|| format!("bad guest '{spec}': expected DOMID:PATH"))?;
    let domid: u32 = domid
        .parse()
        .ok()
        .filter(|d| *d > 0)
        .ok_or_else(|| format!("bad guest '{spec}': DOMID must be a number above 0"))?;
    if path.is_empty() {
        return Err(format!("bad guest '{spec}': empty path"));
    }
    Ok((domid, PathBuf::from(path)))
}

/// Runs the simulator; returns when a stop signal arrives.
pub fn run(args: &XenstoredArgs) -> Result<(), String> {
    // Before the simulator starts its threads: they inherit the signal mask.
    signals::install().map_err(|e| e.to_string())?;
    let guests = args
        .guests
        .iter()
        .map(|g| parse_guest(g))
        .collect::<Result<Vec<_>, _>>()?;
    let devices = args
        .guest_devices
        .iter()
        .map(|g| parse_guest(g))
        .collect::<Result<Vec<_>, _>>()?;
    let config = if args.oxenstored {
        Config::oxenstored_like()
    } else {
        Config::default()
    };
    let sim = Simulator::new(config);
    let fail =
        |what: &str, path: &PathBuf, e: std::io::Error| format!("cannot serve {what} on {}: {e}", path.display());
    sim.listen_dom0(&args.socket)
        .map_err(|e| fail("dom0", &args.socket, e))?;
    for (domid, path) in &guests {
        sim.add_guest(*domid, path).map_err(|e| fail("guest", path, e))?;
    }
    for (domid, path) in &devices {
        sim.add_guest_device(*domid, path)
            .map_err(|e| fail("guest device", path, e))?;
    }
    log::info!("xenstore simulator serving {}", args.socket.display());
    signals::wait_for_stop();
    sim.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_specs() {
        assert_eq!(parse_guest("3:/tmp/g").unwrap(), (3, PathBuf::from("/tmp/g")));
        assert!(parse_guest("0:/tmp/g").is_err());
        assert!(parse_guest("x:/tmp/g").is_err());
        assert!(parse_guest("/tmp/g").is_err());
        assert!(parse_guest("3:").is_err());
    }
}
