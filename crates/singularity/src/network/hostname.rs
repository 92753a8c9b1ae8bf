//! The host name's files: `/etc/hostname` on every Linux, plus each family's
//! own (`/etc/conf.d/hostname` on Gentoo/OpenRC, `/etc/HOSTNAME` on SUSE,
//! `HOSTNAME=` in `/etc/sysconfig/network` where EL ≤ 6 keeps it, `hostname=`
//! in FreeBSD's `rc.conf`). The kernel name itself is set by the applier
//! (`sethostname(2)`), from the value returned here. No I/O here beyond the
//! [`Files`] view.

use super::detect::Renderer;
use super::error::NetError;
use super::probe::{Family, Files};
use super::shellvars::{get, quote, set};

/// `sethostname(2)` takes at most 64 bytes (`HOST_NAME_MAX`).
pub const KERNEL_MAX: usize = 64;

/// The name for the kernel and `/etc/hostname`: the full name if it fits,
/// else its first label.
pub fn kernel_name(name: &str) -> &str {
    if name.len() <= KERNEL_MAX {
        name
    } else {
        name.split('.').next().unwrap_or(name)
    }
}

/// The host name the files give now, if any.
pub fn current(files: &Files, family: Family) -> Result<Option<String>, NetError> {
    let from_var = |path: &str, key: &str| -> Result<Option<String>, NetError> {
        Ok(files
            .read(path)?
            .and_then(|t| get(&t, key))
            .filter(|v| !v.trim().is_empty()))
    };
    let name = match family {
        Family::FreeBsd => from_var("/etc/rc.conf", "hostname")?,
        Family::Gentoo => from_var("/etc/conf.d/hostname", "hostname")?,
        _ => None,
    };
    if name.is_some() {
        return Ok(name);
    }
    let file = files
        .read("/etc/hostname")?
        .and_then(|t| t.lines().next().map(|l| l.trim().to_string()));
    Ok(file.filter(|n| !n.is_empty()))
}

/// The files to write for host name `name`: (path, contents).
pub fn files(files: &Files, family: Family, renderer: Renderer, name: &str) -> Result<Vec<(String, String)>, NetError> {
    let name = kernel_name(name);
    let line = format!("{name}\n");
    let mut out = Vec::new();
    if family == Family::FreeBsd {
        let old = files.read("/etc/rc.conf")?.unwrap_or_default();
        out.push((
            "/etc/rc.conf".to_string(),
            set(&old, "hostname", &format!("hostname={}", quote(name))),
        ));
        return Ok(out);
    }
    out.push(("/etc/hostname".to_string(), line.clone()));
    match family {
        Family::Gentoo => {
            let path = "/etc/conf.d/hostname";
            if renderer == Renderer::GENTOO || files.exists(path) {
                let old = files.read(path)?.unwrap_or_default();
                out.push((
                    path.to_string(),
                    set(&old, "hostname", &format!("hostname={}", quote(name))),
                ));
            }
        }
        Family::Suse => out.push(("/etc/HOSTNAME".to_string(), line)),
        Family::RedHat => {
            let path = "/etc/sysconfig/network";
            if let Some(old) = files.read(path)?.filter(|t| get(t, "HOSTNAME").is_some()) {
                out.push((path.to_string(), set(&old, "HOSTNAME", &format!("HOSTNAME={name}"))));
            }
        }
        _ => {}
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_fall_back_to_the_first_label() {
        assert_eq!(kernel_name("web.example.com"), "web.example.com");
        let long = format!("web.{}.example.com", "a".repeat(60));
        assert_eq!(kernel_name(&long), "web");
    }
}
