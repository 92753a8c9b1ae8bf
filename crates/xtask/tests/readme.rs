//! README.md keeps up with the code: every configuration key of
//! `singularity::config::KEYS` is in its configuration table, every long
//! option of `singularity`'s command line is in its synopsis, and it says what
//! the test command needs.

use clap::CommandFactory;
use std::collections::BTreeSet;
use std::path::Path;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap()
}

/// The lines of the section under the heading `## {title}`.
fn section<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
    let heading = format!("## {title}");
    text.lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .collect()
}

/// `(section, key)` pairs of the configuration table: rows
/// `| section | key, key | ... |`.
fn table_keys(text: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for line in section(text, "Configuration") {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // A row is "", section, keys, default, meaning, "".
        if cells.len() < 4 || cells[1] == "section" || cells[1].starts_with("---") {
            continue;
        }
        for key in cells[2].split(',') {
            out.insert((cells[1].to_string(), key.trim().trim_matches('`').to_string()));
        }
    }
    out
}

/// The long options written in the agent's synopsis: the first code block of
/// "Command line", up to the operator tools' `singularity-host` line.
fn synopsis_options(text: &str) -> BTreeSet<String> {
    let lines = section(text, "Command line");
    let block = lines
        .iter()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```") && !l.starts_with("singularity-host"));
    let mut out = BTreeSet::new();
    for line in block {
        for (i, _) in line.match_indices("--") {
            let name: String = line[i + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Every long option of a command and its subcommands, except clap's own
/// --help and --version.
fn long_options(cmd: &clap::Command, out: &mut BTreeSet<String>) {
    for arg in cmd.get_arguments() {
        if let Some(long) = arg.get_long() {
            if long != "help" && long != "version" {
                out.insert(long.to_string());
            }
        }
    }
    for sub in cmd.get_subcommands() {
        long_options(sub, out);
    }
}

#[test]
fn every_configuration_key_is_in_the_readme_table() {
    let table = table_keys(&readme());
    let missing: Vec<String> = singularity::config::KEYS
        .iter()
        .filter(|k| !table.contains(&(k.section.to_string(), k.key.to_string())))
        .map(|k| format!("[{}] {}", k.section, k.key))
        .collect();
    assert!(missing.is_empty(), "README.md's configuration table lacks {missing:?}");
}

#[test]
fn every_long_option_is_in_the_readme_synopsis() {
    let written = synopsis_options(&readme());
    let mut options = BTreeSet::new();
    long_options(&singularity::cli::Cli::command(), &mut options);
    assert!(options.contains("run") && options.contains("noop"), "{options:?}");
    let missing: Vec<&String> = options.difference(&written).collect();
    assert!(missing.is_empty(), "README.md's synopsis lacks --{missing:?}");
}

#[test]
fn the_parsers_find_what_they_look_for() {
    let text = "## Configuration\n\n| section | key | default | meaning |\n| --- | --- | --- | --- |\n\
                | main | a, b | x | y |\n\n## Command line\n\n```\nsingularity [-l|--loglevel LEVEL] COMMAND\n  \
                daemon [--run DIR]\nsingularity-host [--json]\n```\n\n## Next\n";
    let keys: Vec<(String, String)> = table_keys(text).into_iter().collect();
    assert_eq!(keys, [("main".into(), "a".into()), ("main".into(), "b".into())]);
    let options: Vec<String> = synopsis_options(text).into_iter().collect();
    assert_eq!(options, ["loglevel", "run"]);
}

/// `scripts/test` waits for a dpkg lock another package manager holds rather
/// than failing at once, and the README says what the test command needs.
#[test]
fn the_test_command_waits_for_dpkg_and_its_needs_are_documented() {
    let script = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/test")).unwrap();
    let apt: Vec<&str> = script
        .lines()
        .filter(|l| l.trim_start().starts_with("apt-get") || l.contains(" apt-get "))
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim_start().starts_with("echo"))
        .collect();
    assert!(!apt.is_empty());
    for line in apt {
        assert!(line.contains("-o DPkg::Lock::Timeout="), "no lock timeout: {line}");
    }
    let needs = section(&readme(), "Two commands").join("\n");
    for word in ["root", "network", "GiB", "memory"] {
        assert!(
            needs.contains(word),
            "README's test command section does not mention {word}"
        );
    }
}
