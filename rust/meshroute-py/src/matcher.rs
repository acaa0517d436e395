//! `StringMatchSet`: the core's Istio `StringMatch` list for Python (CORS origins).

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
