//! `CompileError`: why an IR document was rejected, and where.

use std::fmt;

/// Stable category of a compile error (a slug that never changes, for the Python side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The JSON does not follow the IR schema (syntax, types, unknown or missing fields).
    Schema,
    /// Unsupported `version`.
    Version,
    /// A regex (or a regex rewrite template) does not compile.
    Regex,
    /// Destination weights are unusable (no destination, or a total of 0 with several).
    Weight,
    /// An index (VsId, TargetId, RouteId, ...) points outside its table.
    Reference,
    /// A value is out of range or a combination is forbidden.
    Value,
}

impl ErrorKind {
    /// The stable slug: `schema`, `version`, `regex`, `weight`, `reference`, `value`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schema => "schema",
            Self::Version => "version",
            Self::Regex => "regex",
            Self::Weight => "weight",
            Self::Reference => "reference",
            Self::Value => "value",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The IR could not be compiled into a `RouteTable`.
///
/// Every weight, regex and reference problem is reported here, so that `route()` never fails.
/// `path` names the offending IR element, e.g. `routes[3].matches[0].headers[1].match.regex`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct CompileError {
    kind: ErrorKind,
    path: String,
    message: String,
}

// === impl CompileError ===

impl CompileError {
    pub(crate) fn new(
        kind: ErrorKind,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            path: path.into(),
            message: message.into(),
        }
    }

    /// The category of the problem.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Where in the IR document the problem is (`""` for the document itself).
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Shorthand used by the compiler.
pub(crate) type Result<T> = std::result::Result<T, CompileError>;
