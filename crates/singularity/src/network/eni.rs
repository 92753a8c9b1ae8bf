//! Editing `interfaces(5)` files, shared by ifupdown (Debian) and
//! ifupdown-ng (Alpine): find where `source`/`source-directory` lines lead,
//! and take the stanzas of the NICs we configure out of files we do not own
//! (deleted inside `/etc/network/interfaces` when our block lives there,
//! commented out with a note elsewhere), keeping every other line. No I/O
//! here beyond the [`Files`] view.

use super::error::NetError;
use super::probe::Files;

/// The main file.
pub const INTERFACES: &str = "/etc/network/interfaces";
/// Start of our block inside [`INTERFACES`].
pub const BEGIN: &str = "# BEGIN singularity (resetnetwork): generated, replaced at the next resetnetwork";
/// End of our block.
pub const END: &str = "# END singularity";
/// Marks a line we commented out (with the note above it).
const NOTE: &str = "# singularity: the stanzas below for";

/// Keywords that start a new stanza (ifupdown 0.8 and ifupdown-ng).
fn starts_stanza(word: &str) -> bool {
    matches!(
        word,
        "iface"
            | "mapping"
            | "auto"
            | "source"
            | "source-directory"
            | "rename"
            | "template"
            | "no-auto-down"
            | "no-scripts"
    ) || word.starts_with("allow-")
}

/// The base interface of `eth0:1` or `eth0.100`-style alias names.
fn base(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

/// Logical lines: a trailing backslash joins the next physical line.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut joining = false;
    for line in text.lines() {
        if joining {
            if let Some(last) = out.last_mut() {
                last.push('\n');
                last.push_str(line);
            }
        } else {
            out.push(line.to_string());
        }
        joining = line.ends_with('\\');
    }
    out
}

/// Whether `text` has an `iface` stanza for `name`.
pub fn defines(text: &str, name: &str) -> bool {
    logical_lines(text).iter().any(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some("iface") && w.next().is_some_and(|n| base(n) == name)
    })
}

/// How to take stanzas out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Strip<'a> {
    /// Remove them (and blank lines right after them), and our old block.
    Delete,
    /// Comment them out under a note naming the file that now has them.
    Comment(&'a str),
}

/// The result of [`strip`].
pub struct Stripped {
    /// The remaining lines.
    pub lines: Vec<String>,
    /// Where our old block was (or the first deleted stanza), if anywhere.
    pub at: Option<usize>,
    /// The managed NICs whose stanzas were taken out.
    pub nics: Vec<String>,
}

/// Takes the stanzas (and `auto`/`allow-*` mentions) of NICs that `managed`
/// claims out of `text`.
pub fn strip(text: &str, managed: &dyn Fn(&str) -> bool, how: Strip) -> Stripped {
    let mut out = Stripped {
        lines: Vec::new(),
        at: None,
        nics: Vec::new(),
    };
    let mut dropping = false;
    let mut in_block = false;
    let mut after_drop = false;
    let mut noted = false;
    for line in logical_lines(text) {
        let trimmed = line.trim();
        if how == Strip::Delete && trimmed == BEGIN {
            in_block = true;
            out.at.get_or_insert(out.lines.len());
            continue;
        }
        if in_block {
            in_block = trimmed != END;
            after_drop = true;
            continue;
        }
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        let first = words.first().copied().unwrap_or("");
        let mut keep: Vec<String> = vec![line.clone()];
        let mut hit: Vec<String> = Vec::new();
        if starts_stanza(first) {
            dropping = false;
            if first == "auto" || first.starts_with("allow-") {
                let (ours, rest): (Vec<&str>, Vec<&str>) = words[1..].iter().partition(|n| managed(base(n)));
                if !ours.is_empty() {
                    hit = ours.iter().map(|n| base(n).to_string()).collect();
                    keep = if rest.is_empty() {
                        Vec::new()
                    } else {
                        vec![format!("{first} {}", rest.join(" "))]
                    };
                }
            } else if first == "iface" && words.get(1).is_some_and(|n| managed(base(n))) {
                dropping = true;
                hit = vec![base(words[1]).to_string()];
                keep = Vec::new();
            }
        } else if dropping && !trimmed.is_empty() && !trimmed.starts_with('#') {
            keep = Vec::new();
            hit = vec![String::new()];
        }
        if hit.is_empty() {
            if !(how == Strip::Delete && after_drop && trimmed.is_empty()) {
                out.lines.push(line);
                after_drop = false;
            }
            continue;
        }
        for nic in hit.into_iter().filter(|n| !n.is_empty()) {
            if !out.nics.contains(&nic) {
                out.nics.push(nic);
            }
        }
        match how {
            Strip::Delete => {
                out.at.get_or_insert(out.lines.len());
                out.lines.extend(keep);
                after_drop = true;
            }
            Strip::Comment(dest) => {
                if !noted {
                    out.lines.push(format!("{NOTE} these interfaces moved to {dest}"));
                    noted = true;
                }
                out.lines.extend(line.lines().map(|l| format!("#{l}")));
                out.lines.extend(keep.into_iter().filter(|k| *k != line));
            }
        }
    }
    if let Some(at) = out.at {
        out.at = Some(at.min(out.lines.len()));
    }
    out
}

/// Where `source`/`source-directory` lines in [`INTERFACES`] lead.
pub struct Sources {
    /// The file in `interfaces.d` that we own, if the main file sources one.
    pub ours: Option<String>,
    /// Every other sourced file that exists.
    pub others: Vec<String>,
    /// Every sourced file that exists, ours included, in reading order.
    pub all: Vec<String>,
}

/// Matches a file name as glob(3) does for ifupdown's `source`: `*` and `?`
/// (not `/`), a leading dot only literally, everything else literally.
fn glob_name(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    glob(pattern, name)
}

fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], name) || (!name.is_empty() && name[0] != b'/' && glob(pattern, &name[1..]))
        }
        (Some(b'?'), Some(c)) if *c != b'/' => glob(&pattern[1..], &name[1..]),
        (Some(p), Some(c)) if p == c => glob(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// `run-parts` names, as `source-directory` reads them.
fn run_parts_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Follows the `source` lines of `main` (one level), choosing our own file
/// among `candidates` (names in `interfaces.d`).
pub fn sources(files: &Files, main: &str, candidates: &[&str]) -> Result<Sources, NetError> {
    let mut out = Sources {
        ours: None,
        others: Vec::new(),
        all: Vec::new(),
    };
    for line in logical_lines(main) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (kw, arg) = match words[..] {
            [kw @ ("source" | "source-directory"), arg, ..] => (kw, arg),
            _ => continue,
        };
        let arg = if arg.starts_with('/') {
            arg.to_string()
        } else {
            format!("/etc/network/{arg}")
        };
        let (dir, pattern) = if kw == "source" {
            match arg.rsplit_once('/') {
                Some((d, p)) => (d.to_string(), Some(p.to_string())),
                None => continue,
            }
        } else {
            (arg.trim_end_matches('/').to_string(), None)
        };
        let matches = |name: &str| match &pattern {
            Some(p) => glob_name(p.as_bytes(), name.as_bytes()),
            None => run_parts_name(name),
        };
        if out.ours.is_none() && dir == "/etc/network/interfaces.d" {
            out.ours = candidates.iter().find(|c| matches(c)).map(|c| format!("{dir}/{c}"));
        }
        for name in files.list(&dir)? {
            let path = format!("{dir}/{name}");
            if !matches(&name) || out.all.contains(&path) {
                continue;
            }
            out.all.push(path.clone());
            if !candidates.contains(&name.as_str()) {
                out.others.push(path);
            }
        }
    }
    Ok(out)
}

/// The whole configuration ifupdown reads now, as one file: the main file
/// without its `source` lines, then every sourced file. `ifdown -i` on it
/// takes a NIC down the way it was brought up, after the real files have
/// been replaced.
pub fn flatten(files: &Files, candidates: &[&str]) -> Result<Option<String>, NetError> {
    let Some(main) = files.read(INTERFACES)? else {
        return Ok(None);
    };
    let mut out = format!("# {INTERFACES} and the files it sources, as they were before this change\n");
    for line in logical_lines(&main) {
        let first = line.split_whitespace().next().unwrap_or("");
        if first != "source" && first != "source-directory" {
            out.push_str(&line);
            out.push('\n');
        }
    }
    for path in sources(files, &main, candidates)?.all {
        out.push_str(&format!("\n# {path}\n"));
        out.push_str(&files.read(&path)?.unwrap_or_default());
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "source /etc/network/interfaces.d/*\n\n# The loopback network interface\nauto lo\niface lo inet loopback\n\n# The primary network interface\nallow-hotplug eth0\niface eth0 inet dhcp\n    dns-search example.com\n\nauto eth9 eth0\niface eth9 inet manual\n";

    #[test]
    fn deletes_managed_stanzas_and_keeps_the_rest() {
        let s = strip(DEBIAN, &|n| n == "eth0", Strip::Delete);
        let text = s.lines.join("\n");
        assert!(!text.contains("eth0"), "{text}");
        assert!(text.contains("iface lo inet loopback") && text.contains("auto eth9\niface eth9 inet manual"));
        assert_eq!(s.nics, vec!["eth0"]);
        assert_eq!(s.lines[s.at.unwrap()], "auto eth9");
    }

    #[test]
    fn comments_out_managed_stanzas_once() {
        let s = strip(DEBIAN, &|n| n == "eth0", Strip::Comment("/x"));
        let text = s.lines.join("\n") + "\n";
        assert!(text.contains("#allow-hotplug eth0\n#iface eth0 inet dhcp\n#    dns-search example.com\n"));
        assert!(text.contains("#auto eth9 eth0\nauto eth9\n"));
        assert_eq!(
            strip(&text, &|n| n == "eth0", Strip::Comment("/x")).lines.join("\n") + "\n",
            text
        );
    }

    #[test]
    fn globs() {
        assert!(glob(b"*", b"50-singularity"));
        assert!(glob(b"*.cfg", b"50-singularity.cfg"));
        assert!(!glob(b"*.cfg", b"50-singularity"));
        assert!(glob(b"5?-*", b"50-x"));
        assert!(!glob_name(b"*", b".keep") && glob_name(b".*", b".keep"));
        assert!(run_parts_name("50-singularity") && !run_parts_name("50-singularity.cfg"));
    }
}
