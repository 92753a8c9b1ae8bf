//! `singularity-configurators(7)`: protocol v1 of external configurators,
//! the contract an administrator's program keeps, in any language.

use crate::roff::{line, quoted};

/// (section heading, paragraphs). A paragraph starting with `  ` is shown
/// as an indented example, verbatim.
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "DESCRIPTION",
        &[
            "An external configurator is an executable that serves commands of the singularity agent's protocol, \
             new ones or built-in ones, without recompiling the agent. The agent finds configurators in the \
             directories given by `singularity daemon -d DIR...` or `configurators` in the [daemon] section of \
             singularity.conf (default /etc/singularity/configurators, absent unless created). The daemon reads \
             them when it starts and again on SIGHUP (`systemctl reload singularity`); no other command runs \
             them.",
            "This page describes protocol version 1.",
        ],
    ),
    (
        "DISCOVERY",
        &[
            "Every regular executable file in those directories is a configurator, in file-name order, except \
             hidden files (.name) and editor backups (name~). A directory that does not exist is skipped quietly.",
            "A file that is a symbolic link, or that is not owned by root (or by the daemon's user), or that is \
             writable by group or others, is skipped with a warning naming it; so is a directory, or any \
             directory above it, that someone else could change (a sticky directory of root's, like /tmp, is \
             allowed above it): whoever can change them could make the agent run their code as root. The file is \
             checked again before every run.",
            "The agent runs `EXE --describe` (5 s at most), which must print one JSON object:",
            "  {\"function\": \"kms\", \"commands\": [\"kmsactivate\"]}",
            "The function may be a built-in one (network, hosts, hostname, resolvers, password, file, update) or \
             a new name; names are 1 to 64 ASCII letters, digits, _ or -. The functions setting (and -F) enables \
             and restricts it like a built-in function; all enables every configurator. The features command lists \
             the commands of enabled configurators. A configurator whose --describe fails or prints anything else \
             is skipped with a warning. A name in functions that no configurator declares is a warning too: its \
             commands answer 404 until one does. version, features, keyinit and password are the agent's own: a \
             configurator that declares one of them is skipped.",
        ],
    ),
    (
        "REQUESTS",
        &[
            "For a request naming one of its commands, the agent runs EXE with no arguments, an empty environment \
             apart from PATH and LANG, the managed root as working directory, in a process group of its own, \
             and writes one JSON object on its standard input:",
            "  {\"command\": \"kmsactivate\", \"value\": <the request's value, as sent>, \"configuration\": {...}}",
            "configuration holds the vm-data parsed as for resetnetwork when the command is resetnetwork or the \
             configurator's function is network, hosts, hostname or resolvers, else {}:",
            "  {\"hostname\": \"web1\", \"interfaces\": [{\"key\": \"BC764E206C5B\", \"mac\": \"bc:76:4e:20:6c:5b\", \
             \"label\": \"public\", \"ipv4\": [\"203.0.113.10/24\"], \"gateway4\": \"203.0.113.1\", \"ipv6\": [], \
             \"gateway6\": null, \"routes\": [{\"destination\": \"10.0.0.0/8\", \"gateway\": \"10.0.0.1\"}], \
             \"dns\": [\"198.51.100.53\"]}]}",
            "It must print one JSON object and exit 0:",
            "  {\"returncode\": \"0\", \"message\": \"\", \"files\": {\"/etc/sysconfig/rhn/up2date\": \
             {\"content\": \"...\", \"mode\": \"0644\"}}}",
            "returncode and message are strings; files is optional. A configurator may be run again for the \
             same request if the agent stops while handling it (a crash, a kill), so what it does must give the \
             same result twice.",
            "Each file's path is absolute and in normal \
             form (no . or .. components, no repeated or trailing /), content is UTF-8 text and mode an octal \
             string from 0000 to 0777 for a new file (default 0644; an existing file keeps its mode and owner).",
        ],
    ),
    (
        "WHAT THE AGENT DOES WITH THE ANSWER",
        &[
            "The agent, not the configurator, writes files, with the guarantees of a built-in command: the path \
             policy (allowed_paths of [file]), atomic replacement, a copy in the cache for `singularity apply \
             FUNCTION`, optional backups, and rollback. When a command has a built-in configurator and external \
             ones (e.g. resetnetwork), the built-in plan and every configurator's files are one change: if \
             anything fails, nothing is changed.",
            "A configurator that answers a returncode other than \"0\" vetoes the change: no file of any \
             configurator, and nothing of the built-in plan, is applied, and its returncode and message are the \
             reply. When every configurator answers \"0\", everything is applied and the reply is the built-in \
             one's (if it is not \"0\") or \"0\" with the messages joined by \"; \".",
            "A configurator that takes longer than configurator_timeout of [daemon] (30 s by default; it and \
             everything in its process group is killed), prints more than 1 MiB, exits with a status other than \
             0, prints anything but that object, or names a file outside the policy gets the request answered \
             \"500\" with a message naming the configurator and the reason, and nothing changes.",
        ],
    ),
    (
        "EXAMPLE",
        &[
            "dist/examples/configurators/kmsactivate in the source tree serves the kmsactivate command of the old \
             Rackspace agents: it writes /etc/sysconfig/rhn/up2date from {\"domains\": [...]}.",
        ],
    ),
];

/// Renders the page; `version` is the agent's.
pub fn render(version: &str) -> String {
    let mut out = format!(
        ".TH SINGULARITY-CONFIGURATORS 7 \"\" {} \"Miscellaneous Information Manual\"\n",
        quoted(&format!("singularity {version}"))
    );
    out.push_str(".SH NAME\n");
    out.push_str(&line(
        "singularity-configurators - external configurators of the singularity guest agent (protocol v1)",
    ));
    for (heading, paragraphs) in SECTIONS {
        out.push_str(&format!(".SH {}\n", quoted(heading)));
        for (i, p) in paragraphs.iter().enumerate() {
            if i > 0 {
                out.push_str(".PP\n");
            }
            match p.strip_prefix("  ") {
                Some(example) => {
                    out.push_str(".RS 4\n.nf\n");
                    out.push_str(&line(example));
                    out.push_str(".fi\n.RE\n");
                }
                None => out.push_str(&line(p)),
            }
        }
    }
    out.push_str(".SH \"SEE ALSO\"\n");
    out.push_str(&line("singularity(8), singularity-daemon(8), singularity.conf(5)"));
    out
}
