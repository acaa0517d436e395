//! `meshroute._core`: the thin PyO3 binding of `meshroute-core`.
//!
//! Only argument conversion lives here; every routing rule is in the core crate.
#![forbid(unsafe_code)]

mod args;
mod balancer;
mod client;
mod decision;
mod exchange;
mod matcher;
mod table;

use meshroute_core as core;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

pyo3::create_exception!(
    _core,
    CompileError,
    pyo3::exceptions::PyValueError,
    "The route-table IR could not be compiled (a bug in meshroute's compiler or an oversized regex)."
);

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("CompileError", m.py().get_type::<CompileError>())?;
    m.add_class::<table::RouteTable>()?;
    m.add_class::<decision::Decision>()?;
    m.add_class::<matcher::StringMatchSet>()?;
    m.add_class::<exchange::ListenerContext>()?;
    m.add_class::<balancer::Balancer>()?;
    m.add_function(wrap_pyfunction!(matcher::check_regex, m)?)?;
    // The names both engines and envoy-config share (docs/envoy.md), defined once, in the core.
    m.add("CLUSTER_HEADER", core::CLUSTER_HEADER)?;
    m.add("HASH_HEADER", core::HASH_HEADER)?;
    m.add("ORIGINAL_DST_HEADER", core::ORIGINAL_DST_HEADER)?;
    m.add("MAX_MIRRORS", core::MAX_MIRRORS)?;
    m.add("GRPC_STATUSES", PyTuple::new(m.py(), core::GRPC_STATUSES)?)?;
    m.add(
        "MIRROR_HEADERS",
        PyTuple::new(m.py(), core::MIRROR_HEADERS)?,
    )?;
    m.add(
        "CONTROL_HEADERS",
        PyTuple::new(m.py(), core::CONTROL_HEADERS)?,
    )?;
    m.add("PASSTHROUGH_CLUSTER", core::PASSTHROUGH_CLUSTER)?;
    m.add("BLACKHOLE_CLUSTER", core::BLACKHOLE_CLUSTER)?;
    Ok(())
}
