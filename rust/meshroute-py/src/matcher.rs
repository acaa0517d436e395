//! `StringMatchSet`: the core's Istio `StringMatch` list for Python (CORS origins), and
//! `check_regex`: the core's RE2 check for validation.

use meshroute_core as core;
use pyo3::prelude::*;

use crate::CompileError;

/// Istio ``StringMatch``es (exact / prefix / RE2 full-match regex); a value matches when it
/// matches any of them.
#[pyclass(frozen, module = "meshroute._core")]
pub(crate) struct StringMatchSet {
    inner: core::StringMatchSet,
}

#[pymethods]
impl StringMatchSet {
    /// Compile a JSON list of IR ``StringMatch`` objects (``[{"exact": "a"}, {"regex": "b.*"}]``).
    #[staticmethod]
    fn from_json(json: &str) -> PyResult<Self> {
        core::StringMatchSet::from_json(json)
            .map(|inner| StringMatchSet { inner })
            .map_err(|e| CompileError::new_err(e.to_string()))
    }

    fn matches(&self, value: &str) -> bool {
        self.inner.matches(value)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

/// None if ``pattern`` compiles as the route table compiles an RE2 regex, else what is wrong
/// (an RE2 feature it lacks, a syntax error and its position, a size limit).
///
/// ``anchored``: a ``StringMatch`` regex (full match); False for a ``uriRegexRewrite`` match.
#[pyfunction]
#[pyo3(signature = (pattern, *, anchored = true))]
pub(crate) fn check_regex(pattern: &str, anchored: bool) -> Option<String> {
    core::check_regex(pattern, anchored).err()
}
