//! Files made of shell variable assignments (`ifcfg-*`, `rc.conf`,
//! `/etc/conf.d/net`, `/etc/conf.d/hostname`, SUSE's `config`): split into
//! assignments and other lines, so that we replace only our keys and keep the
//! rest byte for byte. Quoted values may span lines. No I/O here.

/// One piece of a shell variable file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// `KEY=value` (possibly `export KEY=…`, possibly several lines).
    Var {
        /// The variable name.
        key: String,
        /// The raw text, without the final newline.
        text: String,
    },
    /// A comment, blank or other line, without its newline.
    Other(String),
}

/// The variable name an assignment line starts with.
fn assignment(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let t = t.strip_prefix("export ").map(str::trim_start).unwrap_or(t);
    let end = t.find('=')?;
    let key = &t[..end];
    let mut bytes = key.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    (first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')).then_some(key)
}

/// Whether a quote is still open at the end of `text` (the part after `=`).
fn open_quote(text: &str) -> Option<char> {
    let mut quote = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '#') => return None,
            (None, '\'') | (None, '"') => quote = Some(c),
            (Some('"'), '\\') | (None, '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    quote
}

/// Splits a file into items.
pub fn parse(text: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(key) = assignment(line) else {
            items.push(Item::Other(line.to_string()));
            continue;
        };
        let key = key.to_string();
        let mut raw = line.to_string();
        while let Some((_, value)) = raw.split_once('=') {
            if open_quote(value).is_none() {
                break;
            }
            match lines.next() {
                Some(next) => {
                    raw.push('\n');
                    raw.push_str(next);
                }
                None => break,
            }
        }
        items.push(Item::Var { key, text: raw });
    }
    items
}

/// The value of an assignment's raw text, with quotes removed.
pub fn value(text: &str) -> String {
    let Some((_, v)) = text.split_once('=') else {
        return String::new();
    };
    let mut out = String::new();
    let mut quote = None;
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '#') | (None, ' ') | (None, '\t') => break,
            (None, '\'') | (None, '"') => quote = Some(c),
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            (Some(q), c) if c == q => quote = None,
            (_, c) => out.push(c),
        }
    }
    out
}

/// The value of the last assignment to `key`.
pub fn get(text: &str, key: &str) -> Option<String> {
    parse(text).into_iter().rev().find_map(|i| match i {
        Item::Var { key: k, text } if k == key => Some(value(&text)),
        _ => None,
    })
}

/// `name` (an interface name) as part of a variable name: anything but
/// letters and digits becomes `_` (`eth0.100` → `eth0_100`).
pub fn var_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// `value` in double quotes, escaped for sh.
pub fn quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Removes every assignment whose key `ours` claims and every `Other` line
/// `marker` claims, and puts `block` (lines without final newlines) where the
/// first removed item was, or at the end. The result ends with a newline.
pub fn replace_block(
    text: &str,
    ours: impl Fn(&str) -> bool,
    marker: impl Fn(&str) -> bool,
    block: &[String],
) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut at = None;
    for item in parse(text) {
        let (drop, line) = match item {
            Item::Var { key, text } => (ours(&key), text),
            Item::Other(line) => (marker(&line), line),
        };
        if drop {
            at.get_or_insert(out.len());
        } else {
            out.push(line);
        }
    }
    let at = match at {
        Some(i) => i,
        None => {
            if !block.is_empty() && out.last().is_some_and(|l| !l.trim().is_empty()) {
                out.push(String::new());
            }
            out.len()
        }
    };
    out.splice(at..at, block.iter().cloned());
    let mut joined = out.join("\n");
    if !joined.is_empty() {
        joined.push('\n');
    }
    joined
}

/// Sets `key` to the raw assignment `line`: the first assignment is replaced
/// in place, later ones are dropped, and it is appended if there was none.
pub fn set(text: &str, key: &str, line: &str) -> String {
    let mut seen = false;
    let mut out: Vec<String> = Vec::new();
    for item in parse(text) {
        match item {
            Item::Var { key: k, .. } if k == key => {
                if !seen {
                    out.push(line.to_string());
                    seen = true;
                }
            }
            Item::Var { text, .. } => out.push(text),
            Item::Other(l) => out.push(l),
        }
    }
    if !seen {
        out.push(line.to_string());
    }
    out.join("\n") + "\n"
}

/// The assignments of `text` whose keys `ours` does not claim, raw, in order
/// (keys other tools put in `ifcfg-*`, such as firewalld's `ZONE`).
pub fn foreign(text: Option<&str>, ours: impl Fn(&str) -> bool) -> Vec<String> {
    parse(text.unwrap_or(""))
        .into_iter()
        .filter_map(|i| match i {
            Item::Var { key, text } if !ours(&key) => Some(text),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RC: &str =
        "# rc.conf\nhostname=\"old\"\nifconfig_xn0=\"DHCP\"\nsshd_enable=\"YES\"\nmulti=\"a\nb\"\nexport X='y z' # c\n";

    #[test]
    fn parses_multiline_and_values() {
        let items = parse(RC);
        assert_eq!(items.len(), 6);
        assert_eq!(get(RC, "multi").as_deref(), Some("a\nb"));
        assert_eq!(get(RC, "X").as_deref(), Some("y z"));
        assert_eq!(get(RC, "hostname").as_deref(), Some("old"));
        assert_eq!(value("A=plain # comment"), "plain");
        assert_eq!(value(r#"A="q\"x""#), "q\"x");
    }

    #[test]
    fn replaces_only_our_keys_in_place() {
        let block = vec!["ifconfig_xn0=\"inet 10.0.0.2/24\"".to_string()];
        let out = replace_block(RC, |k| k.starts_with("ifconfig_xn0"), |_| false, &block);
        assert_eq!(
            out,
            "# rc.conf\nhostname=\"old\"\nifconfig_xn0=\"inet 10.0.0.2/24\"\nsshd_enable=\"YES\"\nmulti=\"a\nb\"\nexport X='y z' # c\n"
        );
        assert_eq!(
            replace_block(&out, |k| k.starts_with("ifconfig_xn0"), |_| false, &block),
            out
        );
        let appended = replace_block("a=1\n", |_| false, |_| false, &block);
        assert_eq!(appended, "a=1\n\nifconfig_xn0=\"inet 10.0.0.2/24\"\n");
    }

    #[test]
    fn set_replaces_or_appends() {
        assert_eq!(set("a=1\nb=2\nb=3\n", "b", "b=\"x\""), "a=1\nb=\"x\"\n");
        assert_eq!(set("a=1\n", "b", "b=\"x\""), "a=1\nb=\"x\"\n");
        assert_eq!(quote("a\"$b"), "\"a\\\"\\$b\"");
    }
}
