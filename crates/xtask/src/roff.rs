//! Just enough roff for hand-written man pages.

/// Escapes text for use inside a roff line: backslashes and hyphens (so that
/// options and paths stay copy-pasteable), and `` `code` `` spans become bold.
pub fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for (i, part) in text.split('`').enumerate() {
        let code = i % 2 == 1;
        if code {
            out.push_str("\\fB");
        }
        for c in part.chars() {
            match c {
                '\\' => out.push_str("\\e"),
                '-' => out.push_str("\\-"),
                _ => out.push(c),
            }
        }
        if code {
            out.push_str("\\fR");
        }
    }
    out
}

/// A text line: escaped, and protected from being read as a request when it
/// starts with `.` or `'`.
pub fn line(text: &str) -> String {
    let escaped = inline(text);
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}\n")
    } else {
        format!("{escaped}\n")
    }
}

/// Quotes a macro argument.
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", inline(text).replace('"', "\\(dq"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_hyphens_backslashes_and_code() {
        assert_eq!(
            inline(r"a-b \n `singularity apply`"),
            r"a\-b \en \fBsingularity apply\fR"
        );
    }

    #[test]
    fn protects_leading_dot_and_quote() {
        assert_eq!(line(".bak files"), "\\&.bak files\n");
        assert_eq!(line("'x'"), "\\&'x'\n");
        assert_eq!(line("plain"), "plain\n");
    }

    #[test]
    fn quotes_arguments() {
        assert_eq!(quoted(r#"say "hi""#), r#""say \(dqhi\(dq""#);
    }
}
