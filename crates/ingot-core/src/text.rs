//! Showing text that came from a file (GGUF keys and values, tensor names, token strings, chat
//! templates, config.json fields) in a message or on the terminal.
//!
//! Such text is untrusted: one flipped length byte turns a key into a megabyte of tensor data, and
//! a hostile file can carry escape sequences that recolour, retitle or rewrite the terminal. So it
//! is never printed raw: [`quoted`] puts it in single quotes (the style of Ingot's messages),
//! escapes every control or otherwise invisible character (`\n`, `\u{1b}`, bidi overrides,
//! zero-width characters) and stops after [`MAX_CHARS`] bytes of output, saying how many characters it left out.
//! [`escaped`] does the same without quotes, for text shown as itself (a chat template in
//! `ingot inspect`, a whole error line).

use std::fmt::{self, Display, Write as _};

/// How much of a file-supplied string a message shows (bytes of output, escapes included).
pub const MAX_CHARS: usize = 200;

/// `s` in single quotes, escaped and capped at [`MAX_CHARS`]: `'general.name'`,
/// `'\u{1b}[31mred'`, `'aaaa…'… (1048376 more characters)`.
pub fn quoted(s: &str) -> Shown<'_> {
    Shown { s, max: MAX_CHARS, quote: true }
}

/// `s` without quotes, control and invisible characters escaped, capped at `max` bytes of
/// output. Quotes and backslashes are left alone, so it reads as the original text.
pub fn escaped(s: &str, max: usize) -> Shown<'_> {
    Shown { s, max, quote: false }
}

/// A string made safe to print; see [`quoted`] and [`escaped`].
#[derive(Clone, Copy, Debug)]
pub struct Shown<'a> {
    s: &'a str,
    max: usize,
    quote: bool,
}

impl Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quote {
            f.write_char('\'')?;
        }
        let mut budget = self.max;
        let mut rest = self.s.char_indices();
        let mut cut_at = None;
        let mut buf = String::with_capacity(12);
        for (i, c) in rest.by_ref() {
            buf.clear();
            push_char(&mut buf, c, self.quote);
            // Bytes, not characters: a cap on what reaches the terminal or a log line, whatever
            // the script (a CJK or emoji string is 3-4 bytes a character).
            let width = buf.len();
            if width > budget {
                cut_at = Some(i);
                break;
            }
            budget -= width;
            f.write_str(&buf)?;
        }
        if self.quote {
            f.write_char('\'')?;
        }
        if let Some(i) = cut_at {
            let left = self.s[i..].chars().count();
            write!(f, "… ({left} more character{})", if left == 1 { "" } else { "s" })?;
        }
        Ok(())
    }
}

/// One character as it is shown: itself when printable, else an escape.
fn push_char(out: &mut String, c: char, quote: bool) {
    match c {
        '\'' | '\\' if quote => {
            out.push('\\');
            out.push(c);
        }
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if is_visible(c) => out.push(c),
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// Whether `c` prints as a visible character. ASCII is decided directly; for the rest Rust's own
/// table decides (`str::escape_debug` escapes controls, format characters such as bidi overrides
/// and zero-width spaces, separators, private-use and unassigned code points). It is asked about
/// `c` after another character, because at the start of a string it would also escape combining
/// marks, which are ordinary text (accents, Devanagari vowel signs) in the middle of one.
fn is_visible(c: char) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_control();
    }
    if c.is_control() {
        return false;
    }
    let mut buf = [0u8; 5];
    buf[0] = b'a';
    let n = c.encode_utf8(&mut buf[1..]).len();
    match std::str::from_utf8(&buf[..1 + n]) {
        Ok(s) => s.escape_debug().count() == 2,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_only_quoted() {
        assert_eq!(quoted("general.name").to_string(), "'general.name'");
        assert_eq!(quoted("").to_string(), "''");
        assert_eq!(quoted("Ġthe é हिन्दी 中文").to_string(), "'Ġthe é हिन्दी 中文'");
        assert_eq!(escaped("{{ 'a' }}\\n", 100).to_string(), "{{ 'a' }}\\n");
    }

    #[test]
    fn controls_and_invisible_characters_are_escaped() {
        assert_eq!(quoted("\u{1b}[31mred").to_string(), "'\\u{1b}[31mred'");
        assert_eq!(quoted("a\nb\tc\r").to_string(), "'a\\nb\\tc\\r'");
        assert_eq!(quoted("it's a \\").to_string(), "'it\\'s a \\\\'");
        for c in ['\u{0}', '\u{7f}', '\u{85}', '\u{9b}', '\u{200b}', '\u{202e}', '\u{2066}', '\u{feff}', '\u{e000}'] {
            let shown = quoted(&format!("x{c}y")).to_string();
            assert_eq!(shown, format!("'x\\u{{{:x}}}y'", c as u32), "U+{:04X}", c as u32);
        }
        // Unquoted: the same escapes, quotes left alone.
        assert_eq!(escaped("it's \u{1b}]0;title\u{7}", 100).to_string(), "it's \\u{1b}]0;title\\u{7}");
    }

    #[test]
    fn long_text_is_capped_with_a_count() {
        let long = "a".repeat(1 << 20);
        let shown = quoted(&long).to_string();
        assert_eq!(shown, format!("'{}'… ({} more characters)", "a".repeat(MAX_CHARS), (1 << 20) - MAX_CHARS));
        // Exactly at the cap: nothing is cut.
        assert_eq!(quoted(&"b".repeat(MAX_CHARS)).to_string(), format!("'{}'", "b".repeat(MAX_CHARS)));
        // Escapes count against the cap, so a string of controls cannot grow past it.
        let shown = escaped(&"\u{1b}".repeat(1000), 60).to_string();
        assert!(shown.starts_with("\\u{1b}\\u{1b}") && shown.ends_with("… (990 more characters)"), "{shown}");
        assert_eq!(escaped("abc", 2).to_string(), "ab… (1 more character)");
    }
}

/// A library's error message made safe to show: parsers (serde, toml) quote the offending text
/// from the file in their messages, so it is escaped and capped like any file-supplied string.
pub fn error_text(e: &dyn Display) -> String {
    escaped(&e.to_string(), 300).to_string()
}
