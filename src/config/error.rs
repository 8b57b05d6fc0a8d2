//! Configuration errors: where (file, line, column), what is wrong and how to
//! fix it, collected so that one run of `jisr check-config` reports them all.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A position in a configuration file; line and column are 1-based, the
/// column counts characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// The configuration file.
    pub file: PathBuf,
    /// Line number, from 1.
    pub line: usize,
    /// Column number (in characters), from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem in a configuration file, with a concrete way to fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}error: {message}\n  fix: {fix}", at.as_ref().map(|at| format!("{at}: ")).unwrap_or_default())]
pub struct ConfigError {
    /// Where the problem is, when it is in the file (not, e.g., an unreadable file).
    pub at: Option<Location>,
    /// What is wrong.
    pub message: String,
    /// What to change.
    pub fix: String,
}

impl ConfigError {
    /// An error at `at` (if known) with a message and a fix.
    pub fn new(at: Option<Location>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            at,
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// Every problem found in a configuration file, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_all(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn render_all(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigErrors {
    /// Adds one error.
    pub fn push(&mut self, error: ConfigError) {
        self.0.push(error);
    }

    /// True when no error was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many errors were found.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The errors, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// Puts the errors in file order (errors without a position first) and
    /// drops exact duplicates, which TOML error recovery can produce.
    pub(super) fn sort(&mut self) {
        self.0
            .sort_by_key(|e| e.at.as_ref().map(|at| (at.line, at.column)));
        self.0.dedup();
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        Self(vec![error])
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// What `jisr check-config` prints: every error, a blank line between them,
/// then a count such as `2 errors in config/jisr.toml`.
pub fn report(errors: &ConfigErrors) -> String {
    let mut out = String::new();
    for error in errors {
        out.push_str(&error.to_string());
        out.push_str("\n\n");
    }
    let count = match errors.len() {
        1 => "1 error".to_owned(),
        n => format!("{n} errors"),
    };
    let file = errors.iter().find_map(|e| e.at.as_ref().map(|at| &at.file));
    match file {
        Some(file) => out.push_str(&format!("{count} in {}", file.display())),
        None => out.push_str(&format!("{count} in the configuration")),
    }
    out
}

/// The text of a configuration file, to turn byte offsets into locations.
pub(super) struct Source {
    file: PathBuf,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
    text: String,
}

impl Source {
    pub(super) fn new(text: &str, file: &Path) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            file: file.to_path_buf(),
            line_starts,
            text: text.to_owned(),
        }
    }

    /// The location of a byte offset (clamped to the text).
    pub(super) fn at(&self, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        // `line_starts[0] == 0`, so the partition point is at least 1.
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        let column = self.text[start..offset].chars().count() + 1;
        Location {
            file: self.file.clone(),
            line,
            column,
        }
    }

    /// The location where a span starts.
    pub(super) fn span(&self, span: &Range<usize>) -> Location {
        self.at(span.start)
    }
}
