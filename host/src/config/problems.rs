//! Everything wrong with a config file, collected rather than stopping at the
//! first problem, and rendered one per line as `FILE:LINE:COLUMN: error: MESSAGE`
//! (or `FILE: error: MESSAGE` without a position) plus a closing count.
//!
//! Other subsystems add their own problems (e.g. a plugin module that does not
//! export the handler) through [`Problems::push_spanned`] with the span of the
//! config value that caused them, so `switchyard check` reports them the same way.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::source::{Position, Source};

/// One problem. `position` is `None` when it concerns the file as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub position: Option<Position>,
    /// Lowercase, one line, quoting the offending value in backticks.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{}:{}:{}: error: {}", self.file.display(), p.line, p.column, self.message),
            None => write!(f, "{}: error: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for Problem {}

/// The problems found in one config file; an error when not empty.
#[derive(Debug, Clone)]
pub struct Problems {
    file: PathBuf,
    source: Option<Source>,
    list: Vec<Problem>,
}

impl Problems {
    /// An empty list whose spans are resolved against `source`.
    pub fn new(source: Source) -> Self {
        Self { file: source.file().to_path_buf(), source: Some(source), list: Vec::new() }
    }

    /// An empty list for a file whose text is not known (e.g. it could not be
    /// read); spans pushed here render without a position.
    pub fn without_source(file: impl Into<PathBuf>) -> Self {
        Self { file: file.into(), source: None, list: Vec::new() }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn source(&self) -> Option<&Source> {
        self.source.as_ref()
    }

    /// A problem about the file as a whole.
    pub fn push(&mut self, message: impl Into<String>) {
        self.list.push(Problem { file: self.file.clone(), position: None, message: message.into() });
    }

    /// A problem at a byte span of the file, e.g. `plugin.path.span()`.
    pub fn push_spanned(&mut self, span: Range<usize>, message: impl Into<String>) {
        let position = self.source.as_ref().map(|s| s.position(span.start));
        self.list.push(Problem { file: self.file.clone(), position, message: message.into() });
    }

    /// A problem at the value of a key path such as `["routes", "2", "batch"]`,
    /// or at the nearest enclosing item written in the file when the key was
    /// left at its default (see [`Source::locate`]).
    pub fn push_at(&mut self, path: &[&str], message: impl Into<String>) {
        let span = self.source.as_ref().and_then(|s| s.locate(path));
        self.push_optional(span, message);
    }

    /// Like [`Problems::push_at`] but pointing at the key itself (for names).
    pub fn push_at_key(&mut self, path: &[&str], message: impl Into<String>) {
        let span = self.source.as_ref().and_then(|s| s.locate_key(path));
        self.push_optional(span, message);
    }

    fn push_optional(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        match span {
            Some(span) => self.push_spanned(span, message),
            None => self.push(message),
        }
    }

    /// Adds an already built problem (e.g. from [`Source::problem`]).
    pub fn push_problem(&mut self, problem: Problem) {
        self.list.push(problem);
    }

    pub fn extend(&mut self, other: Problems) {
        self.list.extend(other.list);
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The number of distinct problems (as rendered).
    pub fn len(&self) -> usize {
        self.sorted().len()
    }

    /// The problems in file order (whole-file problems first).
    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.sorted().into_iter()
    }

    /// `Ok(value)` when there is no problem, else `Err(self)`.
    pub fn into_result<T>(self, value: T) -> Result<T, Problems> {
        if self.is_empty() { Ok(value) } else { Err(self) }
    }

    fn sorted(&self) -> Vec<&Problem> {
        let mut sorted: Vec<&Problem> = self.list.iter().collect();
        // Stable: problems at the same place keep the order they were found in.
        sorted.sort_by_key(|p| p.position);
        sorted.dedup_by(|a, b| a == b);
        sorted
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sorted = self.sorted();
        for problem in &sorted {
            writeln!(f, "{problem}")?;
        }
        let n = sorted.len();
        let noun = if n == 1 { "problem" } else { "problems" };
        write!(f, "{n} {noun} found in {}", self.file.display())
    }
}

impl std::error::Error for Problems {}

impl<'a> IntoIterator for &'a Problems {
    type Item = &'a Problem;
    type IntoIter = std::vec::IntoIter<&'a Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.sorted().into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sorted_with_and_without_position() {
        let source = Source::new("run.toml", "a = 1\nb = 2\n");
        let mut problems = source.problems();
        problems.push_spanned(6..7, "second `b`");
        problems.push("whole file");
        problems.push_spanned(0..1, "first `a`");
        problems.push_spanned(0..1, "first `a`");
        assert_eq!(
            problems.to_string(),
            "run.toml: error: whole file\n\
             run.toml:1:1: error: first `a`\n\
             run.toml:2:1: error: second `b`\n\
             3 problems found in run.toml"
        );
        assert_eq!(problems.iter().count(), 3);
    }

    #[test]
    fn without_source_has_no_positions() {
        let mut problems = Problems::without_source("gone.toml");
        problems.push_spanned(3..4, "x");
        assert_eq!(problems.to_string(), "gone.toml: error: x\n1 problem found in gone.toml");
        assert!(problems.into_result(()).is_err());
        assert!(Problems::without_source("f").into_result(7).is_ok());
    }
}
