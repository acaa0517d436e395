//! Python arguments → borrowed string pairs, without copying the strings.
//!
//! Python `str` objects are kept alive in a `Vec<Bound<PyString>>` so that `&str` views into their
//! UTF-8 buffers can be handed to the core for the duration of one call.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

/// Owned handles to the Python strings of a name → value collection.
pub(crate) struct Pairs<'py> {
    items: Vec<(Bound<'py, PyString>, Bound<'py, PyString>)>,
}

impl<'py> Pairs<'py> {
    /// Accepts `None`, a `dict[str, str]`, or an iterable of `(str, str)` pairs (repeated names
    /// allowed, as HTTP headers may repeat).
    pub(crate) fn extract(obj: Option<&Bound<'py, PyAny>>, what: &str) -> PyResult<Self> {
        let Some(obj) = obj else {
            return Ok(Pairs { items: Vec::new() });
        };
        if obj.is_none() {
            return Ok(Pairs { items: Vec::new() });
        }
        let mut items = Vec::new();
        if let Ok(dict) = obj.downcast::<PyDict>() {
            items.reserve(dict.len());
            for (k, v) in dict.iter() {
                items.push((as_str(k, what)?, as_str(v, what)?));
            }
        } else {
            for item in obj.try_iter()? {
                let (k, v): (Bound<'py, PyAny>, Bound<'py, PyAny>) =
                    item?.extract().map_err(|_| {
                        PyTypeError::new_err(format!(
                            "{what} must be a dict or (name, value) pairs"
                        ))
                    })?;
                items.push((as_str(k, what)?, as_str(v, what)?));
            }
        }
        Ok(Pairs { items })
    }

    /// Borrowed views, valid while `self` lives.
    pub(crate) fn views(&self) -> PyResult<Vec<(&str, &str)>> {
        self.items
            .iter()
            .map(|(k, v)| Ok((k.to_str()?, v.to_str()?)))
            .collect()
    }
}

fn as_str<'py>(obj: Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyString>> {
    obj.downcast_into::<PyString>().map_err(|e| {
        PyTypeError::new_err(format!(
            "{what}: names and values must be str, got {}",
            e.into_inner().get_type()
        ))
    })
}
