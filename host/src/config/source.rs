//! The text of a config file, kept after loading so that byte spans (from
//! `toml::Spanned` fields or toml errors) can be turned into line:column and
//! problems can be reported against the file long after it was parsed.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::problems::{Problem, Problems};

/// A 1-based line and column; the column counts characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A config file's name (as the user gave it) and its full text. Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct Source {
    file: PathBuf,
    text: Arc<str>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The text can be long; it adds nothing to a debug dump.
        f.debug_struct("Source").field("file", &self.file).field("len", &self.text.len()).finish()
    }
}

impl Source {
    pub fn new(file: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        Self { file: file.into(), text: text.into() }
    }

    /// The file name used in messages.
    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Line and column of a byte offset. Offsets past the end (toml reports
    /// "unexpected end of file" there) land just after the last character.
    pub fn position(&self, offset: usize) -> Position {
        let text = &*self.text;
        let mut offset = offset.min(text.len());
        // A span from another text could split a character; never panic on it.
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position { line: before.matches('\n').count() + 1, column: before[line_start..].chars().count() + 1 }
    }

    /// A problem at `span` in this file.
    pub fn problem(&self, span: Range<usize>, message: impl Into<String>) -> Problem {
        Problem { file: self.file.clone(), position: Some(self.position(span.start)), message: message.into() }
    }

    /// An empty list of problems that renders positions against this file.
    pub fn problems(&self) -> Problems {
        Problems::new(self.clone())
    }

    /// The span of the value at `path` (keys, or array indices as decimal
    /// strings), e.g. `["routes", "2", "concurrency"]`. When the path does not
    /// exist in full (the key was left at its default) this is the span of the
    /// deepest part that does, so the caller still gets the best place to point
    /// at. `None` when not even the first key exists or the text is not TOML.
    pub fn locate(&self, path: &[&str]) -> Option<Range<usize>> {
        self.walk(path, false)
    }

    /// Like [`Source::locate`] but the span of the last key itself (e.g. the
    /// `echo` of `[plugins.echo]`), for problems about a name.
    pub fn locate_key(&self, path: &[&str]) -> Option<Range<usize>> {
        self.walk(path, true)
    }

    /// Whether the full `path` is written in the file (not left to a default).
    pub fn contains(&self, path: &[&str]) -> bool {
        self.walk_exact(path, false).is_some()
    }

    fn walk(&self, path: &[&str], key: bool) -> Option<Range<usize>> {
        // Re-parsing on each lookup keeps `Source` free of self-references; it
        // runs only when there is a problem to report, on a small file.
        (1..=path.len()).rev().find_map(|n| self.walk_exact(&path[..n], key && n == path.len()))
    }

    fn walk_exact(&self, path: &[&str], key: bool) -> Option<Range<usize>> {
        let root = DeTable::parse(&self.text).ok()?;
        let (first, rest) = path.split_first()?;
        let (mut key_span, mut value) = entry(root.get_ref(), first)?;
        for segment in rest {
            (key_span, value) = match value.get_ref() {
                DeValue::Table(table) => entry(table, segment)?,
                DeValue::Array(array) => {
                    let item = array.get(segment.parse::<usize>().ok()?)?;
                    (item.span(), item)
                }
                _ => return None,
            };
        }
        Some(if key { key_span } else { value.span() })
    }
}

fn entry<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<(Range<usize>, &'a Spanned<DeValue<'i>>)> {
    table.get_key_value(key).map(|(k, v)| (k.span(), v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: usize, column: usize) -> Position {
        Position { line, column }
    }

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let s = Source::new("f.toml", "ab\ncdé = 1\r\nx");
        assert_eq!(s.position(0), pos(1, 1));
        assert_eq!(s.position(1), pos(1, 2));
        assert_eq!(s.position(2), pos(1, 3)); // the newline itself
        assert_eq!(s.position(3), pos(2, 1));
        // `é` is two bytes but one column.
        assert_eq!(s.position(8), pos(2, 5));
        assert_eq!(s.position(13), pos(3, 1)); // after `\r\n`
        // Past the end, and inside a multi-byte character: no panic.
        assert_eq!(s.position(999), pos(3, 2));
        assert_eq!(s.position(6), pos(2, 3));
        assert_eq!(s.position(7), pos(2, 4));
        assert_eq!(Source::new("e", "").position(0), pos(1, 1));
    }

    #[test]
    fn locate_values_keys_and_fallbacks() {
        let text = "[nats]\nurl = \"nats://x\"\n\n[plugins.echo]\npath = \"e.wasm\"\n\n[[routes]]\nname = \"a\"\n\n[[routes]]\nname = \"b\"\nconcurrency = 0\n";
        let s = Source::new("f.toml", text);
        let at = |span: Option<Range<usize>>| span.map(|r| s.position(r.start));
        assert_eq!(at(s.locate(&["nats", "url"])), Some(pos(2, 7)));
        assert_eq!(at(s.locate(&["routes", "1", "concurrency"])), Some(pos(12, 15)));
        // Absent key: the enclosing `[[routes]]` header.
        assert_eq!(at(s.locate(&["routes", "0", "concurrency"])), Some(pos(7, 1)));
        assert_eq!(at(s.locate_key(&["plugins", "echo"])), Some(pos(4, 10)));
        assert!(s.contains(&["plugins", "echo", "path"]));
        assert!(!s.contains(&["plugins", "echo", "memory"]));
        assert_eq!(s.locate(&["host"]), None);
        assert_eq!(s.locate(&["routes", "7"]).map(|r| s.position(r.start)), Some(pos(7, 1)));
    }
}
