//! `Decision`: a frozen view of one routing decision. Cheap to create (indices into the table);
//! strings and the full dict are built only when asked for.

use meshroute_core as core;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// What happens to one request: outcome, status, matched route, destination and everything
/// applied on the way. ``to_dict()`` gives plain JSON-able data.
#[pyclass(frozen, module = "meshroute._core", name = "Decision")]
pub(crate) struct Decision {
    pub(crate) inner: core::Decision,
}

#[pymethods]
impl Decision {
    /// "route", "redirect", "direct_response", "abort", "no_route" or "no_cluster".
    #[getter]
    fn outcome(&self) -> &'static str {
        self.inner.outcome().as_str()
    }

    /// The HTTP status the client gets, for every outcome but "route" (None then).
    #[getter]
    fn status(&self) -> Option<u16> {
        self.inner.status()
    }

    /// "namespace/name" of the VirtualService whose route matched.
    #[getter]
    fn virtual_service(&self) -> Option<String> {
        self.inner
            .virtual_service()
            .map(|(ns, name)| format!("{ns}/{name}"))
    }

    #[getter]
    fn route_index(&self) -> Option<u32> {
        self.inner.route_index()
    }

    #[getter]
    fn route_name(&self) -> Option<&str> {
        self.inner.route_name()
    }

    #[getter]
    fn match_index(&self) -> Option<u32> {
        self.inner.match_index()
    }

    /// Destination FQDN.
    #[getter]
    fn host(&self) -> Option<&str> {
        self.inner.host()
    }

    #[getter]
    fn subset(&self) -> Option<&str> {
        self.inner.subset()
    }

    #[getter]
    fn port(&self) -> Option<u16> {
        self.inner.port()
    }

    /// Istio cluster name ``outbound|PORT|SUBSET|HOST``.
    #[getter]
    fn cluster(&self) -> Option<String> {
        self.inner.cluster()
    }

    /// Injected delay that fired for this request, in milliseconds.
    #[getter]
    fn delay_ms(&self) -> Option<u64> {
        self.inner.delay_ms()
    }

    /// The whole decision as JSON text.
    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// The whole decision as plain data (dicts, lists, str, int, None).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let loads = py.import("json")?.getattr("loads")?;
        Ok(loads
            .call1((self.inner.to_json(),))?
            .downcast_into::<PyDict>()?)
    }

    fn __repr__(&self) -> String {
        let d = &self.inner;
        match (d.cluster(), d.status()) {
            (Some(cluster), None) => format!("<Decision {} {}>", d.outcome().as_str(), cluster),
            (_, Some(status)) => format!("<Decision {} {}>", d.outcome().as_str(), status),
            (None, None) => format!("<Decision {}>", d.outcome().as_str()),
        }
    }
}
