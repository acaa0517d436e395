//! `RouteTable.client_exchange`: `exchange` as the proxyless client (`meshroute.client`) applies
//! it — the same core answer, with the header mutation already applied to the request's headers
//! (Envoy's ext_proc order: remove, set, append) and the control headers taken out of what the
//! upstream gets and handed over by position. Only conversion lives here: the decision is
//! `meshroute_core::RouteTable::exchange`.

use meshroute_core as core;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

/// The request as the client holds it: header names in any case (`host` becomes `:authority`).
pub(crate) struct ClientRequest<'a> {
    pub(crate) method: &'a [u8],
    pub(crate) scheme: &'a [u8],
    pub(crate) authority: &'a [u8],
    pub(crate) path: &'a [u8],
    /// Lower-case names, `host` left out.
    pub(crate) headers: Vec<(Vec<u8>, &'a [u8])>,
}

impl<'a> ClientRequest<'a> {
    /// Borrow ``headers`` (``[(name, value), ...]`` of bytes) from Python.
    pub(crate) fn headers(
        list: &'a [(Bound<'_, PyBytes>, Bound<'_, PyBytes>)],
    ) -> Vec<(Vec<u8>, &'a [u8])> {
        list.iter()
            .map(|(k, v)| (k.as_bytes().to_ascii_lowercase(), v.as_bytes()))
            .filter(|(k, _)| k != b"host")
            .collect()
    }

    /// What `RouteTable::exchange` reads: pseudo-headers, then the headers.
    pub(crate) fn envoy_view(&self) -> Vec<(&[u8], &[u8])> {
        let mut out: Vec<(&[u8], &[u8])> = Vec::with_capacity(self.headers.len() + 4);
        out.push((b":method", self.method));
        out.push((b":scheme", self.scheme));
        out.push((b":authority", self.authority));
        out.push((b":path", self.path));
        out.extend(self.headers.iter().map(|(k, v)| (k.as_slice(), *v)));
        out
    }
}

/// Extracts ``[(bytes, bytes), ...]``.
pub(crate) fn byte_pairs<'py>(
    obj: &Bound<'py, PyAny>,
) -> PyResult<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
    obj.extract()
        .map_err(|_| PyTypeError::new_err("headers must be a list of (bytes, bytes) pairs"))
}

/// ``("reply", outcome, status, headers, body, details)`` or ``("forward", outcome, upstream
/// headers, authority, path, controls, response)``: ``controls`` has one value (bytes) or None
/// per ``CONTROL_HEADERS`` entry, in that order; ``response`` is ``(set, append, remove)`` or
/// None. Header names are lower-case bytes.
pub(crate) fn to_tuple<'py>(
    py: Python<'py>,
    req: &ClientRequest<'_>,
    answer: core::Exchange,
) -> PyResult<Bound<'py, PyTuple>> {
    let f = match answer {
        core::Exchange::Reply(r) => {
            let headers = PyList::empty(py);
            for (k, v) in r.headers.iter().chain(&r.append) {
                headers.append(pair(py, k.to_ascii_lowercase().as_bytes(), v.as_bytes())?)?;
            }
            return PyTuple::new(
                py,
                [
                    PyString::intern(py, "reply").into_any(),
                    PyString::intern(py, r.outcome).into_any(),
                    r.status.into_pyobject(py)?.into_any(),
                    headers.into_any(),
                    PyBytes::new(py, &r.body).into_any(),
                    PyString::intern(py, r.details).into_any(),
                ],
            );
        }
        core::Exchange::Forward(f) => f,
    };
    let control = |name: &str| core::CONTROL_HEADERS.iter().position(|c| *c == name);
    let mut gone: Vec<String> = f.remove.iter().map(|k| k.to_ascii_lowercase()).collect();
    let mut controls: Vec<Option<&str>> = vec![None; core::CONTROL_HEADERS.len()];
    let (mut authority, mut path) = (req.authority, req.path);
    let mut added: Vec<(String, &str)> = Vec::new();
    for (k, v) in &f.set {
        let name = k.to_ascii_lowercase();
        match name.as_str() {
            ":authority" => authority = v.as_bytes(),
            ":path" => path = v.as_bytes(),
            n if n.starts_with(':') => {}
            n => {
                if let Some(i) = control(n) {
                    if let Some(slot) = controls.get_mut(i) {
                        *slot = Some(v);
                    }
                } else {
                    added.push((name.clone(), v));
                }
                gone.push(name);
            }
        }
    }
    let upstream = PyList::empty(py);
    for (k, v) in &req.headers {
        let kept = std::str::from_utf8(k).map_or(true, |name| {
            !gone.iter().any(|g| g == name) && control(name).is_none()
        });
        if kept {
            upstream.append(pair(py, k, v)?)?;
        }
    }
    for (k, v) in &added {
        upstream.append(pair(py, k.as_bytes(), v.as_bytes())?)?;
    }
    for (k, v) in &f.append {
        let name = k.to_ascii_lowercase();
        if control(&name).is_none() {
            upstream.append(pair(py, name.as_bytes(), v.as_bytes())?)?;
        }
    }
    let controls = PyTuple::new(
        py,
        controls.iter().map(|v| match v {
            Some(v) => PyBytes::new(py, v.as_bytes()).into_any(),
            None => py.None().into_bound(py),
        }),
    )?;
    let response = match &f.response {
        Some(r) => {
            let list = |items: &[core::Header]| -> PyResult<Bound<'py, PyList>> {
                let out = PyList::empty(py);
                for (k, v) in items {
                    out.append(pair(py, k.to_ascii_lowercase().as_bytes(), v.as_bytes())?)?;
                }
                Ok(out)
            };
            let remove = PyList::new(
                py,
                r.remove
                    .iter()
                    .map(|k| PyBytes::new(py, k.to_ascii_lowercase().as_bytes())),
            )?;
            PyTuple::new(
                py,
                [
                    list(&r.set)?.into_any(),
                    list(&r.append)?.into_any(),
                    remove.into_any(),
                ],
            )?
            .into_any()
        }
        None => py.None().into_bound(py),
    };
    PyTuple::new(
        py,
        [
            PyString::intern(py, "forward").into_any(),
            PyString::intern(py, f.outcome).into_any(),
            upstream.into_any(),
            PyBytes::new(py, authority).into_any(),
            PyBytes::new(py, path).into_any(),
            controls.into_any(),
            response,
        ],
    )
}

fn pair<'py>(py: Python<'py>, k: &[u8], v: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, [PyBytes::new(py, k), PyBytes::new(py, v)])
}
