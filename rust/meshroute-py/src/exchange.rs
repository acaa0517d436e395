//! `RouteTable.exchange` / `RouteTable.extproc_answer` for serve: request headers in (bytes or
//! str), the core's answer out as plain tuples, or as the ext_proc bytes serve writes
//! (`meshroute_extproc`). Only conversion lives here; the answer is
//! `meshroute_core::RouteTable::exchange`.

use meshroute_core as core;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::args::Pairs;

/// The listener a request arrived on (docs/envoy.md, ext_proc initial metadata); build one per
/// listener and reuse it. ``gateway_port`` set: a gateway listener (with a namespace or labels:
/// that of the one gateway proxy they name); else the mesh listener.
#[pyclass(frozen, eq, module = "meshroute._core", name = "ListenerContext")]
#[derive(PartialEq)]
pub(crate) struct ListenerContext {
    pub(crate) inner: core::ListenerContext,
}

#[pymethods]
impl ListenerContext {
    #[new]
    #[pyo3(signature = (gateway_port=None, source_namespace=None, source_labels=None))]
    fn new(
        gateway_port: Option<u16>,
        source_namespace: Option<String>,
        source_labels: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let labels = Pairs::extract(source_labels, "source_labels")?;
        let source_labels = labels
            .views()?
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(Self {
            inner: core::ListenerContext {
                gateway_port,
                source_namespace,
                source_labels,
            },
        })
    }

    #[getter]
    fn gateway_port(&self) -> Option<u16> {
        self.inner.gateway_port
    }

    #[getter]
    fn source_namespace(&self) -> Option<&str> {
        self.inner.source_namespace.as_deref()
    }

    #[getter]
    fn source_labels(&self) -> Vec<(String, String)> {
        self.inner.source_labels.clone()
    }

    fn __repr__(&self) -> String {
        let port = self
            .inner
            .gateway_port
            .map_or_else(|| "None".to_owned(), |p| p.to_string());
        let ns = self
            .inner
            .source_namespace
            .as_ref()
            .map_or_else(|| "None".to_owned(), |n| format!("{n:?}"));
        let labels: Vec<String> = self
            .inner
            .source_labels
            .iter()
            .map(|(k, v)| format!("({k:?}, {v:?})"))
            .collect();
        format!(
            "ListenerContext(gateway_port={port}, source_namespace={ns}, source_labels=[{}])",
            labels.join(", ")
        )
    }
}

/// The request headers, kept alive as Python objects while the core borrows their bytes.
pub(crate) struct Headers<'py> {
    items: Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>,
}

impl<'py> Headers<'py> {
    /// An iterable of ``(name, value)`` pairs, each ``bytes`` or ``str``.
    pub(crate) fn extract(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        let mut items = Vec::new();
        for item in obj.try_iter()? {
            let pair: (Bound<'py, PyAny>, Bound<'py, PyAny>) = item?.extract().map_err(|_| {
                PyTypeError::new_err("headers must be (name, value) pairs of bytes or str")
            })?;
            items.push(pair);
        }
        Ok(Self { items })
    }

    /// Borrowed byte views, valid while `self` lives.
    pub(crate) fn views(&self) -> PyResult<Vec<(&[u8], &[u8])>> {
        self.items
            .iter()
            .map(|(k, v)| Ok((bytes_of(k)?, bytes_of(v)?)))
            .collect()
    }
}

fn bytes_of<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    if let Ok(b) = obj.downcast::<PyBytes>() {
        return Ok(b.as_bytes());
    }
    if let Ok(s) = obj.downcast::<PyString>() {
        return Ok(s.to_str()?.as_bytes());
    }
    Err(PyTypeError::new_err(format!(
        "header names and values must be bytes or str, got {}",
        obj.get_type()
    )))
}

/// ``(kind, outcome, status, set, append, remove, response_set, response_append,
/// response_remove, body, details, fault_delay, fault_abort)``; header values are ``bytes``.
pub(crate) fn to_tuple(py: Python<'_>, answer: core::Exchange) -> PyResult<Bound<'_, PyTuple>> {
    let none = || py.None().into_bound(py);
    match answer {
        core::Exchange::Forward(f) => {
            let (rs, ra, rr) = match &f.response {
                Some(r) => (
                    headers(py, &r.set)?.into_any(),
                    headers(py, &r.append)?.into_any(),
                    names(py, &r.remove)?.into_any(),
                ),
                None => (none(), none(), none()),
            };
            PyTuple::new(
                py,
                [
                    PyString::new(py, "forward").into_any(),
                    PyString::new(py, f.outcome).into_any(),
                    none(),
                    headers(py, &f.set)?.into_any(),
                    headers(py, &f.append)?.into_any(),
                    names(py, &f.remove)?.into_any(),
                    rs,
                    ra,
                    rr,
                    none(),
                    none(),
                    f.fault_delay.into_pyobject(py)?.to_owned().into_any(),
                    f.fault_abort.into_pyobject(py)?.to_owned().into_any(),
                ],
            )
        }
        core::Exchange::Reply(r) => {
            let no = false.into_pyobject(py)?.to_owned().into_any();
            PyTuple::new(
                py,
                [
                    PyString::new(py, "reply").into_any(),
                    PyString::new(py, r.outcome).into_any(),
                    r.status.into_pyobject(py)?.into_any(),
                    headers(py, &r.headers)?.into_any(),
                    headers(py, &r.append)?.into_any(),
                    PyList::empty(py).into_any(),
                    none(),
                    none(),
                    none(),
                    PyBytes::new(py, &r.body).into_any(),
                    PyString::new(py, r.details).into_any(),
                    no.clone(),
                    no,
                ],
            )
        }
    }
}

/// ``(outcome, request_answer, response_answer | None, fault_delay, fault_abort)``.
pub(crate) fn to_answer<'py>(
    py: Python<'py>,
    answer: &meshroute_extproc::Answer,
) -> PyResult<Bound<'py, PyTuple>> {
    let response = match &answer.response {
        Some(bytes) => PyBytes::new(py, bytes).into_any(),
        None => py.None().into_bound(py),
    };
    PyTuple::new(
        py,
        [
            // Interned: serve looks the outcome up in a dict per request.
            PyString::intern(py, answer.outcome).into_any(),
            PyBytes::new(py, &answer.request).into_any(),
            response,
            answer.fault_delay.into_pyobject(py)?.to_owned().into_any(),
            answer.fault_abort.into_pyobject(py)?.to_owned().into_any(),
        ],
    )
}

/// ``[(name, value bytes), ...]``.
fn headers<'py>(py: Python<'py>, list: &[core::Header]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(
        py,
        list.iter()
            .map(|(k, v)| {
                PyTuple::new(
                    py,
                    [
                        name(py, k).into_any(),
                        PyBytes::new(py, v.as_bytes()).into_any(),
                    ],
                )
            })
            .collect::<PyResult<Vec<_>>>()?,
    )
}

/// ``[name, ...]``.
fn names<'py>(py: Python<'py>, list: &[String]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, list.iter().map(|k| name(py, k)))
}

/// A header name as a Python ``str``; the control headers, in every forwarded answer, are made
/// once and shared.
fn name<'py>(py: Python<'py>, s: &str) -> Bound<'py, PyString> {
    static CONTROL: GILOnceCell<Vec<Py<PyString>>> = GILOnceCell::new();
    let control = CONTROL.get_or_init(py, || {
        core::CONTROL_HEADERS
            .iter()
            .map(|n| PyString::new(py, n).unbind())
            .collect()
    });
    match core::CONTROL_HEADERS.iter().position(|c| *c == s) {
        Some(i) => control
            .get(i)
            .map_or_else(|| PyString::new(py, s), |n| n.bind(py).clone()),
        None => PyString::new(py, s),
    }
}
