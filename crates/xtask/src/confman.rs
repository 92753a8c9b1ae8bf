//! `singularity.conf(5)`, written from `singularity::config::KEYS`.

use crate::roff::{inline, line, quoted};
use clap::Command;
use singularity::config::KeyDef;

/// Where the packages install the configuration file.
pub const CONFIG_PATH: &str = "/etc/singularity/singularity.conf";

/// What a section is for; sections not named here get a generic sentence.
fn section_intro(section: &str) -> String {
    match section {
        "main" => "Settings shared by every subcommand.".to_string(),
        "daemon" => "The daemon, `singularity daemon`.".to_string(),
        "apply" => "`singularity apply`, which replays the cached files.".to_string(),
        "xen" => "The xen communicator: requests from the hypervisor through XenStore.".to_string(),
        "socket" => "The socket communicator: requests from a local Unix socket.".to_string(),
        other => format!("The {other} function."),
    }
}

/// The long option that sets the same value as `section.key` on the command
/// line: a global option for `[main]`, an option of the subcommand of the same
/// name for other sections.
fn command_line_option(cmd: &Command, section: &str, key: &str) -> Option<String> {
    let owner = if section == "main" {
        cmd
    } else {
        cmd.find_subcommand(section)?
    };
    owner
        .get_arguments()
        .find(|a| a.get_long() == Some(key))
        .map(|_| format!("--{key}"))
}

/// Renders the page. `cmd` is the built top-level command (for the
/// subcommand pages to refer to and for command-line equivalents).
pub fn render(cmd: &Command, keys: &[KeyDef]) -> String {
    let version = cmd.get_version().unwrap_or_default();
    let mut out = String::new();
    out.push_str(&format!(
        ".TH SINGULARITY.CONF 5 \"\" {} \"File Formats Manual\"\n",
        quoted(&format!("singularity {version}"))
    ));
    out.push_str(".SH NAME\n");
    out.push_str(&line(
        "singularity.conf - configuration file of the singularity guest agent",
    ));
    out.push_str(".SH SYNOPSIS\n");
    out.push_str(&format!(".I {}\n", inline(CONFIG_PATH)));
    out.push_str(".SH DESCRIPTION\n");
    out.push_str(&line(
        "The file is INI text. A line is a [section] header, a key = value (or key: value) setting, \
         blank, or a comment starting with # or ;. Unknown sections and keys are reported as warnings; \
         a value that is not accepted is an error naming the file and line.",
    ));
    out.push_str(".PP\n");
    out.push_str(&line(
        "Options given on the command line override the file. \
         The directory holding the file is chosen with `--configuration DIR`.",
    ));
    let prints_default = cmd
        .find_subcommand("config")
        .is_some_and(|c| c.get_arguments().any(|a| a.get_long() == Some("default")));
    if prints_default {
        out.push_str(".PP\n");
        out.push_str(&line(
            "`singularity config --default` prints the fully commented default file; \
             `singularity config` prints the settings in effect.",
        ));
    }
    out.push_str(".SH SECTIONS\n");
    let mut section = "";
    for k in keys {
        if k.section != section {
            section = k.section;
            out.push_str(&format!(".SS {}\n", quoted(&format!("[{section}]"))));
            out.push_str(&line(&section_intro(section)));
        }
        let default = if k.default.is_empty() {
            "\\fI(empty)\\fR".to_string()
        } else {
            format!("\\fI{}\\fR", inline(k.default))
        };
        out.push_str(".TP\n");
        out.push_str(&format!("\\fB{} =\\fR {default}\n", inline(k.key)));
        out.push_str(&line(k.doc));
        out.push_str(".IP\n");
        out.push_str(&line(&format!("Accepts: {}.", k.accepts)));
        if let Some(option) = command_line_option(cmd, k.section, k.key) {
            out.push_str(".IP\n");
            out.push_str(&line(&format!("Command line: `{option}`.")));
        }
    }
    out.push_str(".SH FILES\n");
    out.push_str(".TP\n");
    out.push_str(&format!(".I {}\n", inline(CONFIG_PATH)));
    out.push_str(&line("The configuration file."));
    out.push_str(".SH \"SEE ALSO\"\n");
    let mut refs = vec!["singularity(8)".to_string()];
    refs.extend(
        cmd.get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .map(|s| format!("singularity-{}(8)", s.get_name())),
    );
    out.push_str(&see_also(&refs));
    out
}

/// A SEE ALSO paragraph from `name(section)` references.
pub fn see_also(refs: &[String]) -> String {
    let mut out = String::new();
    for (i, r) in refs.iter().enumerate() {
        let (name, section) = r.trim_end_matches(')').split_once('(').unwrap_or((r.as_str(), ""));
        let sep = if i + 1 < refs.len() { "," } else { "" };
        out.push_str(&format!(".BR {} ({}){sep}\n", inline(name), section));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn page() -> String {
        let mut cmd = singularity::cli::Cli::command();
        cmd.build();
        render(&cmd, singularity::config::KEYS)
    }

    #[test]
    fn every_key_and_section_appears() {
        let page = page();
        for k in singularity::config::KEYS {
            assert!(page.contains(&format!("\\fB{} =\\fR", inline(k.key))), "{}", k.key);
            assert!(page.contains(&format!(".SS \"[{}]\"", k.section)), "{}", k.section);
            assert!(page.contains(&inline(k.accepts)), "{}", k.accepts);
        }
    }

    #[test]
    fn global_options_are_cross_referenced() {
        assert!(page().contains("Command line: \\fB\\-\\-loglevel\\fR."));
    }

    #[test]
    fn no_text_line_starts_a_request_by_accident() {
        for l in page().lines() {
            if let Some(rest) = l.strip_prefix('.') {
                let request = rest.split_whitespace().next().unwrap_or("");
                assert!(
                    ["TH", "SH", "SS", "TP", "IP", "PP", "I", "BR"].contains(&request),
                    "unexpected request line {l:?}"
                );
            }
        }
    }
}
