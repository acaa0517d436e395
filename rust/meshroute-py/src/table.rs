//! `RouteTable`: a frozen handle on an immutable compiled table (`Arc`), shared by every thread.

use std::borrow::Cow;
use std::cell::RefCell;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use meshroute_core as core;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::args::Pairs;
use crate::decision::Decision;
use crate::CompileError;

thread_local! {
    // Unseeded calls draw from a per-thread stream seeded from the OS; seeded calls get their own.
    static THREAD_RNG: RefCell<core::SplitMix64> =
        RefCell::new(core::SplitMix64::new(RandomState::new().hash_one(std::time::SystemTime::now())));
}

/// The client context shared by every request of one call.
struct Context<'a, 'py> {
    scheme: &'a str,
    port: Option<u16>,
    // Borrowed in the common case: the hot path must not allocate for "mesh" or "ns/name".
    gateway: Cow<'a, str>,
    source_labels: Pairs<'py>,
    source_namespace: Option<Bound<'py, PyString>>,
    protocol: core::Protocol,
}

/// One request's own fields, kept alive as Python objects while the core borrows them.
struct Fields<'py> {
    host: Bound<'py, PyString>,
    path: Option<Bound<'py, PyString>>,
    method: Option<Bound<'py, PyString>>,
    headers: Pairs<'py>,
}

/// A compiled, immutable route table. Build it with ``RouteTable.from_json(ir)``.
#[pyclass(frozen, module = "meshroute._core", name = "RouteTable")]
pub(crate) struct RouteTable {
    inner: Arc<core::RouteTable>,
}

#[pymethods]
impl RouteTable {
    /// Compile the IR produced by ``meshroute.compile`` (JSON text).
    #[staticmethod]
    fn from_json(py: Python<'_>, ir: &str) -> PyResult<Self> {
        let table = py
            .allow_threads(|| core::RouteTable::from_json(ir))
            .map_err(|e| CompileError::new_err(e.to_string()))?;
        Ok(RouteTable {
            inner: Arc::new(table),
        })
    }

    /// This table with an IR patch applied (docs/ir.md, "Patch"): a new table sharing everything
    /// the patch leaves unchanged, built at the cost of the patch rather than of the whole IR.
    /// This table is left as it is; a bad patch raises ``CompileError`` like ``from_json``.
    fn patched(&self, py: Python<'_>, patch_json: &str) -> PyResult<Self> {
        let inner = &self.inner;
        let table = py
            .allow_threads(|| inner.patched(patch_json))
            .map_err(|e| CompileError::new_err(e.to_string()))?;
        Ok(RouteTable {
            inner: Arc::new(table),
        })
    }

    /// Number of compiled HTTP routes.
    #[getter]
    fn route_count(&self) -> usize {
        self.inner.route_count()
    }

    #[pyo3(signature = (host, path="/", method="GET", headers=None, *, scheme="http", port=None,
                        gateway="mesh", source_labels=None, source_namespace=None, protocol="http",
                        seed=None))]
    #[allow(clippy::too_many_arguments)]
    fn route<'py>(
        &self,
        host: &str,
        path: &str,
        method: &str,
        headers: Option<&Bound<'py, PyAny>>,
        scheme: &str,
        port: Option<u16>,
        gateway: &str,
        source_labels: Option<&Bound<'py, PyAny>>,
        source_namespace: Option<&Bound<'py, PyString>>,
        protocol: &str,
        seed: Option<u64>,
    ) -> PyResult<Decision> {
        let ctx = Context::new(
            scheme,
            port,
            gateway,
            source_labels,
            source_namespace,
            protocol,
        )?;
        let headers = Pairs::extract(headers, "headers")?;
        let decision = ctx.with_request(host, path, method, &headers, |req| match seed {
            Some(seed) => self.inner.route(req, &mut core::SplitMix64::new(seed)),
            None => THREAD_RNG.with_borrow_mut(|rng| self.inner.route(req, rng)),
        })?;
        Ok(Decision { inner: decision })
    }

    /// Route a batch. Each request is ``(host, path[, method[, headers]])`` or a dict with those
    /// keys; the keyword arguments are shared. With ``seed`` the batch draws from one seeded stream.
    #[pyo3(signature = (requests, *, scheme="http", port=None, gateway="mesh", source_labels=None,
                        source_namespace=None, protocol="http", seed=None))]
    #[allow(clippy::too_many_arguments)]
    fn route_many<'py>(
        &self,
        py: Python<'py>,
        requests: &Bound<'py, PyAny>,
        scheme: &str,
        port: Option<u16>,
        gateway: &str,
        source_labels: Option<&Bound<'py, PyAny>>,
        source_namespace: Option<&Bound<'py, PyString>>,
        protocol: &str,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let ctx = Context::new(
            scheme,
            port,
            gateway,
            source_labels,
            source_namespace,
            protocol,
        )?;
        let mut seeded = seed.map(core::SplitMix64::new);
        let out = PyList::empty(py);
        for item in requests.try_iter()? {
            let fields = Fields::from_item(&item?)?;
            let decision = fields.with_request(&ctx, |req| match seeded.as_mut() {
                Some(rng) => self.inner.route(req, rng),
                None => THREAD_RNG.with_borrow_mut(|rng| self.inner.route(req, rng)),
            })?;
            out.append(Decision { inner: decision })?;
        }
        Ok(out)
    }

    /// The whole answer an Envoy filter applies to one request (``meshroute_core``'s
    /// ``RouteTable::exchange``, docs/envoy.md): ``listener`` is the listener's context,
    /// ``headers`` the request headers as Envoy sends them (pseudo-headers included; bytes or
    /// str). ``seed`` draws the weighted pick, faults and mirrors from one seeded stream.
    #[pyo3(signature = (listener, headers, seed=None))]
    fn exchange<'py>(
        &self,
        py: Python<'py>,
        listener: &crate::exchange::ListenerContext,
        headers: &Bound<'py, PyAny>,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let answer = self.run_exchange(listener, headers, seed)?;
        crate::exchange::to_tuple(py, answer)
    }

    /// ``exchange`` as serve writes it (``meshroute_extproc``): ``(outcome, request_answer,
    /// response_answer, fault_delay, fault_abort)``, the answers serialized
    /// ``envoy.service.ext_proc.v3.ProcessingResponse`` messages (``response_answer`` None: the
    /// stream ends after the request answer).
    #[pyo3(signature = (listener, headers, seed=None))]
    fn extproc_answer<'py>(
        &self,
        py: Python<'py>,
        listener: &crate::exchange::ListenerContext,
        headers: &Bound<'py, PyAny>,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let answer = self.run_exchange(listener, headers, seed)?;
        crate::exchange::to_answer(py, &meshroute_extproc::answer(&answer))
    }

    /// ``exchange`` as the proxyless client applies it (``meshroute.client``): the request as
    /// the client holds it (``headers``: ``(name, value)`` bytes pairs in any case; ``host`` is
    /// ``authority``'s), the answer's mutation applied to those headers, the control headers by
    /// position (``CONTROL_HEADERS`` order) rather than in them. See ``client.rs``.
    #[pyo3(signature = (listener, method, scheme, authority, path, headers, seed=None))]
    #[allow(clippy::too_many_arguments)]
    fn client_exchange<'py>(
        &self,
        py: Python<'py>,
        listener: &crate::exchange::ListenerContext,
        method: &[u8],
        scheme: &[u8],
        authority: &[u8],
        path: &[u8],
        headers: &Bound<'py, PyAny>,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let held = crate::client::byte_pairs(headers)?;
        let req = crate::client::ClientRequest {
            method,
            scheme,
            authority,
            path,
            headers: crate::client::ClientRequest::headers(&held),
        };
        let view = req.envoy_view();
        let answer = match seed {
            Some(seed) => {
                self.inner
                    .exchange(&listener.inner, &view, &mut core::SplitMix64::new(seed))
            }
            None => {
                THREAD_RNG.with_borrow_mut(|rng| self.inner.exchange(&listener.inner, &view, rng))
            }
        };
        crate::client::to_tuple(py, &req, answer)
    }

    /// The effective DestinationRule traffic policy (JSON text, Istio field names; ``"{}"``:
    /// none) of ``cluster`` (``outbound|PORT|SUBSET|HOST``, as ``x-meshroute-cluster`` names it)
    /// for a client behind ``listener`` — what ``Decision.traffic_policy`` reports for a request
    /// routed there. None when that client has no such cluster. ``host`` selects the Gateway of a
    /// gateway listener, as ``exchange`` does.
    #[pyo3(signature = (listener, cluster, host=""))]
    fn cluster_policy(
        &self,
        listener: &crate::exchange::ListenerContext,
        cluster: &str,
        host: &str,
    ) -> Option<String> {
        self.inner
            .cluster_policy(&listener.inner, host, cluster)
            .map(str::to_owned)
    }

    /// Why a request gets its decision: every route block tried, in order, with its result (JSON).
    #[pyo3(signature = (host, path="/", method="GET", headers=None, *, scheme="http", port=None,
                        gateway="mesh", source_labels=None, source_namespace=None, protocol="http"))]
    #[allow(clippy::too_many_arguments)]
    fn explain<'py>(
        &self,
        host: &str,
        path: &str,
        method: &str,
        headers: Option<&Bound<'py, PyAny>>,
        scheme: &str,
        port: Option<u16>,
        gateway: &str,
        source_labels: Option<&Bound<'py, PyAny>>,
        source_namespace: Option<&Bound<'py, PyString>>,
        protocol: &str,
    ) -> PyResult<String> {
        let ctx = Context::new(
            scheme,
            port,
            gateway,
            source_labels,
            source_namespace,
            protocol,
        )?;
        let headers = Pairs::extract(headers, "headers")?;
        ctx.with_request(host, path, method, &headers, |req| self.inner.explain(req))
    }
}

impl RouteTable {
    /// `RouteTable::exchange` on Python headers, from `seed`'s stream or the thread's.
    fn run_exchange(
        &self,
        listener: &crate::exchange::ListenerContext,
        headers: &Bound<'_, PyAny>,
        seed: Option<u64>,
    ) -> PyResult<core::Exchange> {
        let held = crate::exchange::Headers::extract(headers)?;
        let views = held.views()?;
        Ok(match seed {
            Some(seed) => {
                self.inner
                    .exchange(&listener.inner, &views, &mut core::SplitMix64::new(seed))
            }
            None => {
                THREAD_RNG.with_borrow_mut(|rng| self.inner.exchange(&listener.inner, &views, rng))
            }
        })
    }
}

impl<'a, 'py> Context<'a, 'py> {
    fn new(
        scheme: &'a str,
        port: Option<u16>,
        gateway: &'a str,
        source_labels: Option<&Bound<'py, PyAny>>,
        source_namespace: Option<&Bound<'py, PyString>>,
        protocol: &str,
    ) -> PyResult<Self> {
        let protocol = match protocol {
            "http" => core::Protocol::Http,
            "tcp" => core::Protocol::Tcp,
            _ => return Err(PyValueError::new_err("protocol must be 'http' or 'tcp'")),
        };
        // Istio resolves a bare gateway name in the namespace of the referring resource; a caller
        // naming a gateway has no namespace of its own, so "default" stands in (as kubectl would).
        let gateway = if gateway == "mesh" || gateway.contains('/') {
            Cow::Borrowed(gateway)
        } else if gateway.is_empty() {
            return Err(PyValueError::new_err(
                "gateway must be 'mesh' or a Gateway name",
            ));
        } else {
            Cow::Owned(format!("default/{gateway}"))
        };
        Ok(Context {
            scheme,
            port,
            gateway,
            source_labels: Pairs::extract(source_labels, "source_labels")?,
            source_namespace: source_namespace.cloned(),
            protocol,
        })
    }
}

impl<'py> Context<'_, 'py> {
    /// Borrow the context's strings and run `f` on the core request.
    fn with_request<T>(
        &self,
        authority: &str,
        path: &str,
        method: &str,
        headers: &Pairs<'py>,
        f: impl FnOnce(&core::Request<'_>) -> T,
    ) -> PyResult<T> {
        let headers = headers.views()?;
        let labels = self.source_labels.views()?;
        let req = core::Request {
            authority,
            path,
            method,
            scheme: self.scheme,
            headers: &headers,
            port: self.port,
            gateway: &self.gateway,
            source_labels: &labels,
            source_namespace: match &self.source_namespace {
                Some(ns) => Some(ns.to_str()?),
                None => None,
            },
            protocol: self.protocol,
        };
        Ok(f(&req))
    }
}

impl<'py> Fields<'py> {
    fn from_item(item: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(tuple) = item.downcast::<PyTuple>() {
            let get = |i: usize| -> PyResult<Option<Bound<'py, PyAny>>> {
                if i < tuple.len() {
                    Ok(Some(tuple.get_item(i)?))
                } else {
                    Ok(None)
                }
            };
            if tuple.is_empty() || tuple.len() > 4 {
                return Err(PyTypeError::new_err(
                    "a request tuple is (host, path[, method[, headers]])",
                ));
            }
            return Ok(Fields {
                host: str_of(get(0)?.as_ref(), "host")?.expect("len checked"),
                path: str_of(get(1)?.as_ref(), "path")?,
                method: str_of(get(2)?.as_ref(), "method")?,
                headers: Pairs::extract(get(3)?.as_ref(), "headers")?,
            });
        }
        if let Ok(dict) = item.downcast::<PyDict>() {
            let host = str_of(dict.get_item("host")?.as_ref(), "host")?
                .ok_or_else(|| PyTypeError::new_err("a request dict needs 'host'"))?;
            return Ok(Fields {
                host,
                path: str_of(dict.get_item("path")?.as_ref(), "path")?,
                method: str_of(dict.get_item("method")?.as_ref(), "method")?,
                headers: Pairs::extract(dict.get_item("headers")?.as_ref(), "headers")?,
            });
        }
        if let Ok(host) = item.downcast::<PyString>() {
            return Ok(Fields {
                host: host.clone(),
                path: None,
                method: None,
                headers: Pairs::extract(None, "")?,
            });
        }
        Err(PyTypeError::new_err(
            "each request must be a tuple (host, path[, method[, headers]]), a dict or a host str",
        ))
    }

    /// Borrow the request's strings and run `f` on the core request.
    fn with_request<T>(
        &self,
        ctx: &Context<'_, 'py>,
        f: impl FnOnce(&core::Request<'_>) -> T,
    ) -> PyResult<T> {
        let path = match &self.path {
            Some(p) => p.to_str()?,
            None => "/",
        };
        let method = match &self.method {
            Some(m) => m.to_str()?,
            None => "GET",
        };
        ctx.with_request(self.host.to_str()?, path, method, &self.headers, f)
    }
}

fn str_of<'py>(
    obj: Option<&Bound<'py, PyAny>>,
    what: &str,
) -> PyResult<Option<Bound<'py, PyString>>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => o
            .downcast::<PyString>()
            .map(|s| Some(s.clone()))
            .map_err(|_| PyTypeError::new_err(format!("request {what} must be str"))),
    }
}
