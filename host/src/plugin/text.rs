//! Text a plugin controls (log lines, stdout, reject and retry reasons) on its
//! way into the host's log or a terminal. Control characters are escaped, so a
//! plugin cannot start a line that looks like the host's own or send terminal
//! escape sequences, and the text is cut, so one message cannot flood the log.

/// The longest plugin text kept, as in dead-letter headers.
pub(crate) const MAX_TEXT: usize = 1024;

/// `text` with control characters escaped (`\n`, `\u{1b}`…) and cut after
/// [`MAX_TEXT`] bytes of the original, saying how much was cut.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_TEXT) + 16);
    let mut used = 0;
    for c in text.chars() {
        if used + c.len_utf8() > MAX_TEXT {
            out.push_str(&format!("… ({} more bytes cut)", text.len() - used));
            return out;
        }
        used += c.len_utf8();
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn a_plugin_cannot_forge_lines_or_flood_the_log() {
        assert_eq!(printable("ok\tfine"), "ok\tfine");
        assert_eq!(printable("x\n2026-12-05 ERROR switchyard: forged"), "x\\n2026-12-05 ERROR switchyard: forged");
        assert_eq!(printable("\u{1b}[31mred"), "\\u{1b}[31mred");
        let long = "é".repeat(1000);
        let cut = printable(&long);
        assert!(cut.starts_with(&"é".repeat(512)) && cut.ends_with("… (976 more bytes cut)"), "{cut}");
    }
}
