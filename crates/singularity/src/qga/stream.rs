//! Finds requests in the byte stream, as qemu-ga's JSON streamer does: a
//! request ends where its braces balance (no newline needed), whitespace
//! between requests is ignored, and 0xFF, 0xFE or a control byte throws
//! away what was pending, answers one error and skips to the next
//! structural character (how clients resynchronise). The state lives as long
//! as the port: a request half-sent before a disconnection continues with
//! the next client's bytes, as with qemu-ga. Pure: bytes in, events out.

/// The largest request kept (qemu-ga allows 64 MiB for `guest-file-write`,
/// which this agent does not have; a password or a list of keys is far
/// smaller). A larger one is answered with qemu-ga's error and skipped
/// without being held.
pub const MAX_REQUEST: usize = 1024 * 1024;
/// The deepest nesting of arrays and objects kept.
pub const MAX_NESTING: usize = 128;

/// What the stream yields.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// The bytes of one complete top-level JSON value (normally an object).
    Value(Vec<u8>),
    /// An error to answer (qemu-ga's `desc`).
    Error(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between requests.
    Start,
    /// Inside an object or array, outside strings.
    Nested,
    /// Inside a string; `top` when it is the whole value.
    Str { top: bool, escape: bool },
    /// A keyword or number at the top level.
    Scalar,
    /// After an error: skipping to a structural or control byte.
    Recovery,
    /// After a stray `}` or `]`: skipping the ones that follow (one error
    /// for a run of them, not one each).
    Closers,
}

/// The streamer's state across reads.
#[derive(Debug)]
pub struct Stream {
    buf: Vec<u8>,
    depth: usize,
    state: State,
    /// Where the current string starts in `buf` (for error messages).
    token: usize,
    /// Where the bare word (keyword or number) being read inside a value
    /// starts in `buf`.
    word: Option<usize>,
    /// The first invalid keyword of the value being read: the value is
    /// answered with it once complete, as qemu-ga does.
    bad: Option<String>,
}

impl Default for Stream {
    fn default() -> Stream {
        Stream::new()
    }
}

fn is_control(b: u8) -> bool {
    (b < 0x20 && !matches!(b, b' ' | b'\t' | b'\n' | b'\r')) || b >= 0xFE
}

/// Whether a bare word is a JSON keyword or number.
fn valid_scalar(word: &[u8]) -> bool {
    matches!(word, b"true" | b"false" | b"null") || serde_json::from_slice::<serde_json::Number>(word).is_ok()
}

fn is_scalar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')
}

/// How qemu-ga shows a token in an error: ASCII as it is (the reply's
/// JSON escapes control characters), any other byte as U+FFFD.
fn shown(token: &[u8]) -> String {
    token
        .iter()
        .map(|&b| {
            if b.is_ascii() {
                b as char
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect()
}

impl Stream {
    /// An empty stream.
    pub fn new() -> Stream {
        Stream {
            buf: Vec::new(),
            depth: 0,
            state: State::Start,
            token: 0,
            word: None,
            bad: None,
        }
    }

    /// Whether a request is partly received.
    pub fn pending(&self) -> bool {
        !self.buf.is_empty()
    }

    fn reset(&mut self, state: State) {
        // A request may carry a password: do not leave it in freed memory
        // longer than needed (the allocator wipes what it frees).
        self.buf = Vec::new();
        self.depth = 0;
        self.token = 0;
        self.word = None;
        self.bad = None;
        self.state = state;
    }

    /// Ends the bare word being read inside a value, noting it if it is
    /// not a keyword or a number.
    fn end_word(&mut self, end: usize) {
        if let Some(start) = self.word.take() {
            let word = &self.buf[start..end];
            if self.bad.is_none() && !valid_scalar(word) {
                self.bad = Some(format!("JSON parse error, invalid keyword '{}'", shown(word)));
            }
        }
    }

    fn stray(&mut self, from: usize, b: u8, out: &mut Vec<Event>) {
        let mut token = self.buf.get(from..).map(<[u8]>::to_vec).unwrap_or_default();
        token.push(b);
        out.push(Event::Error(format!("JSON parse error, stray '{}'", shown(&token))));
        self.reset(State::Recovery);
    }

    fn push(&mut self, b: u8, out: &mut Vec<Event>) -> bool {
        if self.buf.len() >= MAX_REQUEST {
            out.push(Event::Error("JSON token size limit exceeded".into()));
            self.reset(State::Recovery);
            return false;
        }
        self.buf.push(b);
        true
    }

    /// Feeds bytes; returns the events they complete, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        for &b in bytes {
            self.byte(b, &mut out);
        }
        out
    }

    fn byte(&mut self, b: u8, out: &mut Vec<Event>) {
        match self.state {
            State::Recovery => {
                if matches!(b, b'{' | b'}' | b'[' | b']') || (b < 0x20 && b != b'\t') || b >= 0xFE {
                    self.state = State::Start;
                    self.byte(b, out);
                }
            }
            State::Closers => {
                if !matches!(b, b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    self.state = State::Start;
                    self.byte(b, out);
                }
            }
            State::Start => match b {
                b' ' | b'\t' | b'\n' | b'\r' => {}
                b'{' | b'[' => {
                    self.buf.push(b);
                    self.depth = 1;
                    self.state = State::Nested;
                }
                b'"' => {
                    self.buf.push(b);
                    self.token = 0;
                    self.state = State::Str {
                        top: true,
                        escape: false,
                    };
                }
                b'}' | b']' => {
                    out.push(Event::Error("JSON parse error, expecting value".into()));
                    self.state = State::Closers;
                }
                b',' | b':' => out.push(Event::Error("JSON parse error, expecting value".into())),
                _ if is_scalar(b) => {
                    self.buf.push(b);
                    self.state = State::Scalar;
                }
                _ => self.stray(0, b, out),
            },
            State::Scalar => {
                if is_scalar(b) {
                    self.push(b, out);
                    return;
                }
                let token = std::mem::take(&mut self.buf);
                out.push(if valid_scalar(&token) {
                    Event::Value(token)
                } else {
                    Event::Error(format!("JSON parse error, invalid keyword '{}'", shown(&token)))
                });
                self.reset(State::Start);
                self.byte(b, out);
            }
            State::Nested => {
                if is_control(b) {
                    return self.stray(self.buf.len(), b, out);
                }
                if !self.push(b, out) {
                    return;
                }
                let at = self.buf.len() - 1;
                if is_scalar(b) {
                    self.word.get_or_insert(at);
                    return;
                }
                self.end_word(at);
                match b {
                    b'"' => {
                        self.token = at;
                        self.state = State::Str {
                            top: false,
                            escape: false,
                        };
                    }
                    b'{' | b'[' => {
                        self.depth += 1;
                        if self.depth > MAX_NESTING {
                            out.push(Event::Error("JSON nesting depth limit exceeded".into()));
                            self.reset(State::Recovery);
                        }
                    }
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            out.push(match self.bad.take() {
                                Some(bad) => Event::Error(bad),
                                None => Event::Value(std::mem::take(&mut self.buf)),
                            });
                            self.reset(State::Start);
                        }
                    }
                    _ => {}
                }
            }
            State::Str { top, escape } => {
                if !(0x20..0xFE).contains(&b) {
                    return self.stray(self.token, b, out);
                }
                if !self.push(b, out) {
                    return;
                }
                self.state = match (escape, b) {
                    (true, _) => State::Str { top, escape: false },
                    (false, b'\\') => State::Str { top, escape: true },
                    (false, b'"') if top => {
                        out.push(Event::Value(std::mem::take(&mut self.buf)));
                        self.reset(State::Start);
                        return;
                    }
                    (false, b'"') => State::Nested,
                    (false, _) => State::Str { top, escape: false },
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Value(v) => String::from_utf8_lossy(v).into_owned(),
                Event::Error(e) => format!("error: {e}"),
            })
            .collect()
    }

    fn run(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = Stream::new();
        let mut all = Vec::new();
        for c in chunks {
            all.extend(s.feed(c));
        }
        values(&all)
    }

    #[test]
    fn requests_end_where_braces_balance_across_reads() {
        assert_eq!(
            run(&[b"{\"execute\":\"guest-pi", b"ng\"} \r\n{\"a\":[1,{\"b\":\"}\"}]}{}"]),
            ["{\"execute\":\"guest-ping\"}", "{\"a\":[1,{\"b\":\"}\"}]}", "{}"]
        );
        // Escaped quotes do not end a string.
        assert_eq!(run(&[br#"{"a":"x\"}"}"#]), [r#"{"a":"x\"}"}"#]);
    }

    #[test]
    fn resync_bytes_drop_what_is_pending_with_one_error() {
        // qemu-ga's own messages for these (checked against 7.2).
        assert_eq!(
            run(&[b"\xff{\"execute\":\"guest-ping\"}"]),
            [
                "error: JSON parse error, stray '\u{FFFD}'",
                "{\"execute\":\"guest-ping\"}"
            ]
        );
        assert_eq!(
            run(&[b"{\"execute\":\"gue\xff{\"execute\":\"guest-ping\"}"]),
            [
                "error: JSON parse error, stray '\"gue\u{FFFD}'",
                "{\"execute\":\"guest-ping\"}"
            ]
        );
        assert_eq!(run(&[b"\x01{}"]), ["error: JSON parse error, stray '\u{1}'", "{}"]);
        // After an error, the rest up to a structural byte is skipped.
        assert_eq!(
            run(&[b"{\"id\":\"a\x01b\"}{}"]),
            [
                "error: JSON parse error, stray '\"a\u{1}'",
                "error: JSON parse error, expecting value",
                "{}"
            ]
        );
    }

    #[test]
    fn top_level_scalars_and_garbage() {
        assert_eq!(
            run(&[b"garbage{}"]),
            ["error: JSON parse error, invalid keyword 'garbage'", "{}"]
        );
        // A number or keyword ends only at a byte that cannot continue it.
        assert_eq!(run(&[b"1"]), Vec::<String>::new());
        assert_eq!(run(&[b"1", b" "]), ["1"]);
        assert_eq!(
            run(&[b"true", b"null "]),
            ["error: JSON parse error, invalid keyword 'truenull'"]
        );
        assert_eq!(run(&[b"\"str\""]), ["\"str\""]);
        assert_eq!(run(&[b"}}}]] {}"]), ["error: JSON parse error, expecting value", "{}"]);
        // Inside a value, the first bad word is the answer once it is complete.
        assert_eq!(
            run(&[br#"{"id":x,"y":[nul, -1.5e3, true]}"#]),
            ["error: JSON parse error, invalid keyword 'x'"]
        );
        assert_eq!(
            run(&[br#"{"a":[-1.5e3,true,null,"x y"]}"#]),
            [r#"{"a":[-1.5e3,true,null,"x y"]}"#]
        );
    }

    #[test]
    fn state_survives_between_feeds_as_it_does_between_clients() {
        let mut s = Stream::new();
        assert!(s.feed(b"{\"execute\":").is_empty());
        assert!(s.pending());
        // The next client's request completes the half-sent one; 0xFF is
        // how a client clears it.
        let v = values(&s.feed(b"\xff{\"execute\":\"guest-ping\"}"));
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].starts_with("error: JSON parse error, stray"));
        assert!(!s.pending());
    }

    #[test]
    fn limits_answer_once_and_hold_nothing() {
        let mut s = Stream::new();
        let mut big = b"{\"execute\":\"guest-ping\",\"arguments\":{\"x\":\"".to_vec();
        big.extend(std::iter::repeat_n(b'A', 3 * MAX_REQUEST));
        big.extend(b"\"}}{\"execute\":\"guest-ping\"}");
        let v = values(&s.feed(&big));
        assert_eq!(v[0], "error: JSON token size limit exceeded");
        assert_eq!(v.last().unwrap(), "{\"execute\":\"guest-ping\"}");
        assert!(v.len() <= 3, "{v:?}");
        assert!(s.buf.capacity() <= MAX_REQUEST);

        let mut deep = "[".repeat(2000);
        deep.push_str(&"]".repeat(2000));
        deep.push_str("{}");
        let v = run(&[deep.as_bytes()]);
        assert!(
            v.iter().any(|e| e == "error: JSON nesting depth limit exceeded"),
            "{v:?}"
        );
        assert_eq!(v.last().unwrap(), "{}");
        assert!(v.len() < 40, "{}", v.len());
    }
}
