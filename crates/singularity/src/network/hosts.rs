//! `/etc/hosts`: the host name on the loopback lines and on each NIC's first
//! IPv4 and first IPv6 address. Lines we add end with `# singularity` so a
//! later run can drop them when the address goes away; `127.0.1.1` lines get
//! the new name (the old agents left `127.0.1.1 oldname`); the old name is
//! replaced on other loopback lines; every other line is untouched. Running
//! it twice gives the same file. No I/O here.

use std::net::IpAddr;

/// The file.
pub const PATH: &str = "/etc/hosts";
/// Marks lines we own.
const MARK: &str = "# singularity";
/// Debian's loopback address for the host name.
const LOOPBACK_NAME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 1, 1));

/// The names to list for `hostname`: the full name, then the first label.
pub fn names(hostname: &str) -> Vec<String> {
    let mut out = vec![hostname.to_string()];
    if let Some((short, _)) = hostname.split_once('.') {
        out.push(short.to_string());
    }
    out
}

fn entry(ip: IpAddr, names: &[String]) -> String {
    format!("{ip}\t{}\t{MARK}", names.join(" "))
}

/// The addresses of the lines this agent wrote for NICs (not loopback).
pub fn ours(old: &str) -> Vec<IpAddr> {
    old.lines()
        .filter_map(|line| {
            let (body, comment) = line.split_once('#')?;
            let ip = body.split_whitespace().next()?.parse::<IpAddr>().ok()?;
            (comment.trim() == MARK.trim_start_matches('#').trim() && !ip.is_loopback()).then_some(ip)
        })
        .collect()
}

/// The new `/etc/hosts`. `old_name` is the host name being replaced (if
/// known); `addrs` the NICs' first addresses; `add_loopback` whether a
/// `127.0.1.1` line may be added when no loopback line has the name (not on
/// FreeBSD, where only 127.0.0.1 answers).
pub fn render(old: &str, hostname: &str, old_name: Option<&str>, addrs: &[IpAddr], add_loopback: bool) -> String {
    let new = names(hostname);
    // A placeholder name (`localhost`, `localhost.localdomain`) is never
    // taken off the loopback lines.
    let stale: Vec<String> = old_name
        .map(names)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| !new.contains(n) && !n.starts_with("localhost"))
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut done: Vec<IpAddr> = Vec::new();
    let mut on_loopback = false;
    for line in old.lines() {
        let (body, comment) = match line.find('#') {
            Some(i) => (&line[..i], Some(&line[i..])),
            None => (line, None),
        };
        let mut words = body.split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            out.push(line.to_string());
            continue;
        };
        let aliases: Vec<&str> = words.collect();
        let ours = comment.is_some_and(|c| c.trim() == MARK);
        if ip == LOOPBACK_NAME {
            out.push(match (ours, comment) {
                (false, Some(c)) => format!("{ip}\t{}\t{c}", new.join(" ")),
                _ => entry(ip, &new),
            });
            on_loopback = true;
        } else if ip.is_loopback() {
            let mut list: Vec<String> = Vec::new();
            let mut touched = false;
            for a in &aliases {
                if stale.iter().any(|s| s == a) || new.iter().any(|n| n == a) {
                    if !touched {
                        list.extend(new.iter().cloned());
                        touched = true;
                    }
                } else {
                    list.push(a.to_string());
                }
            }
            on_loopback |= touched;
            out.push(if touched {
                let tail = comment.map(|c| format!("\t{c}")).unwrap_or_default();
                format!("{ip}\t{}{tail}", list.join(" "))
            } else {
                line.to_string()
            });
        } else if addrs.contains(&ip) && !done.contains(&ip) {
            done.push(ip);
            out.push(entry(ip, &new));
        } else if !ours {
            out.push(line.to_string());
        }
    }
    for ip in addrs {
        if !done.contains(ip) {
            done.push(*ip);
            out.push(entry(*ip, &new));
        }
    }
    if !on_loopback && add_loopback {
        out.push(entry(LOOPBACK_NAME, &new));
    }
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn debian_hosts_get_the_new_name_and_stay_stable() {
        let old = "127.0.0.1\tlocalhost\n127.0.1.1\toldname\n\n# IPv6\n::1     localhost ip6-localhost ip6-loopback\n10.0.0.9 db\n";
        let addrs = [ip("104.130.4.72"), ip("2001:db8::72")];
        let new = render(old, "web.example.com", Some("oldname"), &addrs, true);
        assert_eq!(
            new,
            "127.0.0.1\tlocalhost\n127.0.1.1\tweb.example.com web\t# singularity\n\n# IPv6\n::1     localhost ip6-localhost ip6-loopback\n10.0.0.9 db\n104.130.4.72\tweb.example.com web\t# singularity\n2001:db8::72\tweb.example.com web\t# singularity\n"
        );
        assert_eq!(
            render(&new, "web.example.com", Some("web.example.com"), &addrs, true),
            new
        );
        // The address changes: our old line goes, the new one comes.
        let moved = render(&new, "web.example.com", None, &[ip("104.130.4.99")], true);
        assert!(!moved.contains("104.130.4.72") && !moved.contains("2001:db8::72"));
        assert!(moved.contains("104.130.4.99\tweb.example.com web\t# singularity"));
    }

    #[test]
    fn old_name_on_localhost_is_replaced_and_loopback_added_when_missing() {
        let old = "127.0.0.1 localhost oldname.example.com oldname # keep\n";
        let new = render(old, "new", Some("oldname.example.com"), &[], true);
        assert_eq!(new, "127.0.0.1\tlocalhost new\t# keep\n");
        let rhel = "127.0.0.1   localhost localhost.localdomain\n";
        assert_eq!(
            render(rhel, "new", Some("localhost.localdomain"), &[], true),
            format!("{rhel}127.0.1.1\tnew\t# singularity\n")
        );
        let bare = render("127.0.0.1 localhost\n", "new", None, &[], true);
        assert_eq!(bare, "127.0.0.1 localhost\n127.0.1.1\tnew\t# singularity\n");
        assert_eq!(render(&bare, "new", Some("new"), &[], true), bare);
        assert_eq!(
            render("127.0.0.1 localhost\n", "new", None, &[], false),
            "127.0.0.1 localhost\n"
        );
    }
}
