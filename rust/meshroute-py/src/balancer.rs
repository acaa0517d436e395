//! `Balancer`: one upstream cluster as one client sees it — `meshroute_lb::Cluster` (load
//! balancer, circuit breaker, outlier detection) built from endpoints and the cluster's effective
//! traffic policy JSON (`meshroute_lb::istio`), behind a mutex so every thread can share it.
//! Time (`now`, seconds on any monotonic clock) and the RNG seed are the caller's.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use meshroute_lb::istio::TrafficPolicy;
use meshroute_lb::{
    ActiveRequests, CircuitBreaker, Cluster, Endpoint, HashAlgorithm, HashSource, LbPolicy,
    LocalOrigin, Locality, Outcome, Placement, RequestPermit, RetryPermit, SplitMix64,
};
use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

/// ``Balancer.hash_source``: (kind, name, cookie path, cookie ttl seconds).
type HashSourceTuple = (&'static str, Option<String>, Option<String>, Option<f64>);

/// Sweeps run at most this many times in one catch-up (a clock that jumped far ahead).
const MAX_CATCH_UP_SWEEPS: u32 = 1024;

struct State {
    cluster: Cluster,
    rng: SplitMix64,
    /// When the next outlier sweep is due; set from the first `now` seen.
    next_sweep: Option<Duration>,
}

#[derive(Default)]
struct Permits {
    next: u64,
    requests: HashMap<u64, RequestPermit>,
    retries: HashMap<u64, RetryPermit>,
}

/// One cluster's endpoints with its DestinationRule policy. ``endpoints`` are ``(address,
/// weight)`` pairs (weight 0 reads as 1), ``policy`` the effective traffic policy as JSON text
/// (Istio field names; ``"{}"``: Istio's defaults), ``seed`` fixes the balancer's random draws.
///
/// Locality load balancing: ``localities`` (``region/zone/subzone`` per endpoint) and ``labels``
/// (a dict per endpoint), with the calling workload's ``client_locality`` and ``client_labels``,
/// place the endpoints in Envoy's priorities as Istio would for that workload (the policy's
/// ``localityLbSetting``, failover only with ``outlierDetection``). Slow start (``warmup``):
/// endpoints not in ``previous`` (the balancer this one replaces) joined at ``now``; those in it
/// keep their join time; without ``previous``, none is warming up (Envoy's initial hosts).
#[pyclass(frozen, module = "meshroute._core", name = "Balancer")]
pub(crate) struct Balancer {
    state: Mutex<State>,
    permits: Mutex<Permits>,
    breaker: CircuitBreaker,
    active: ActiveRequests,
    addresses: Vec<String>,
    kind: &'static str,
    hash: Option<HashSource>,
    interval: Option<Duration>,
    connect_timeout: f64,
    unsupported: Vec<&'static str>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Seconds as a `Duration`: negative and NaN read as 0, and anything past ~31 700 years as that,
/// so deadlines computed from it (`now + ejection time`) cannot overflow.
fn instant(now: f64) -> Duration {
    Duration::try_from_secs_f64(now.clamp(0.0, 1e12)).unwrap_or(Duration::ZERO)
}

fn kind_of(policy: &LbPolicy) -> &'static str {
    match policy {
        LbPolicy::RoundRobin => "ROUND_ROBIN",
        LbPolicy::Random(_) => "RANDOM",
        LbPolicy::LeastRequest(_) => "LEAST_REQUEST",
        LbPolicy::ConsistentHash {
            algorithm: HashAlgorithm::RingHash { .. },
            ..
        } => "RING_HASH",
        LbPolicy::ConsistentHash {
            algorithm: HashAlgorithm::Maglev { .. },
            ..
        } => "MAGLEV",
        LbPolicy::Passthrough => "PASSTHROUGH",
        LbPolicy::PeakEwma(_) => "PEAK_EWMA",
    }
}

impl Balancer {
    fn check(&self, index: usize) -> PyResult<()> {
        if index < self.addresses.len() {
            Ok(())
        } else {
            Err(PyIndexError::new_err(format!(
                "endpoint {index} out of range ({} endpoints)",
                self.addresses.len()
            )))
        }
    }

    /// Run the outlier sweeps due by `now` (Envoy runs one every `interval`).
    fn sweep_due(&self, st: &mut State, now: Duration) -> Vec<usize> {
        let Some(interval) = self.interval.filter(|i| !i.is_zero()) else {
            return Vec::new();
        };
        let due = *st.next_sweep.get_or_insert(now.saturating_add(interval));
        let mut returned = Vec::new();
        let mut at = due;
        let mut runs = 0;
        while at <= now {
            returned.extend(st.cluster.sweep(at));
            at = at.saturating_add(interval);
            runs += 1;
            if runs >= MAX_CATCH_UP_SWEEPS {
                returned.extend(st.cluster.sweep(now));
                at = now.saturating_add(interval);
                break;
            }
        }
        st.next_sweep = Some(at);
        returned
    }
}

#[pymethods]
impl Balancer {
    #[new]
    #[pyo3(signature = (
        endpoints, policy="{}", seed=None, *, localities=None, labels=None,
        client_locality="", client_labels=None, now=0.0, previous=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        endpoints: Vec<(String, u32)>,
        policy: &str,
        seed: Option<u64>,
        localities: Option<Vec<String>>,
        labels: Option<Vec<BTreeMap<String, String>>>,
        client_locality: &str,
        client_labels: Option<BTreeMap<String, String>>,
        now: f64,
        previous: Option<PyRef<'_, Balancer>>,
    ) -> PyResult<Self> {
        let tp =
            TrafficPolicy::from_json(policy).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let n = endpoints.len();
        for (name, len) in [
            ("localities", localities.as_ref().map(Vec::len)),
            ("labels", labels.as_ref().map(Vec::len)),
        ] {
            if len.is_some_and(|len| len != n) {
                return Err(PyValueError::new_err(format!(
                    "{name} must give one entry per endpoint ({n})"
                )));
            }
        }
        let joined: HashMap<String, Option<Duration>> = match &previous {
            Some(old) => lock(&old.state)
                .cluster
                .endpoints()
                .endpoints()
                .iter()
                .map(|e| (e.address.clone(), e.added_at))
                .collect(),
            None => HashMap::new(),
        };
        let addresses: Vec<String> = endpoints.iter().map(|(a, _)| a.clone()).collect();
        let mut localities = localities.map(Vec::into_iter);
        let mut labels = labels.map(Vec::into_iter);
        let list = endpoints
            .into_iter()
            .map(|(a, w)| {
                let added_at = match joined.get(&a) {
                    Some(at) => *at,
                    None if previous.is_some() => Some(instant(now)),
                    None => None,
                };
                let mut e = Endpoint::new(a).with_weight(w);
                e.added_at = added_at;
                if let Some(l) = localities.as_mut().and_then(Iterator::next) {
                    e.locality = Locality::parse(&l);
                }
                if let Some(l) = labels.as_mut().and_then(Iterator::next) {
                    e.labels = l;
                }
                e
            })
            .collect();
        let kind = kind_of(&tp.lb);
        let hash = match &tp.lb {
            LbPolicy::ConsistentHash { source, .. } => Some(source.clone()),
            _ => None,
        };
        let client = Placement {
            locality: Locality::parse(client_locality),
            labels: client_labels.unwrap_or_default(),
        };
        let cluster = Cluster::for_client(list, &tp, &client)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let seed =
            seed.unwrap_or_else(|| RandomState::new().hash_one(std::time::SystemTime::now()));
        Ok(Self {
            breaker: cluster.breaker().clone(),
            active: cluster.endpoints().active_requests().clone(),
            state: Mutex::new(State {
                cluster,
                rng: SplitMix64::new(seed),
                next_sweep: None,
            }),
            permits: Mutex::new(Permits::default()),
            addresses,
            kind,
            hash,
            interval: tp.outlier.map(|o| o.interval),
            connect_timeout: tp.connect_timeout.as_secs_f64(),
            unsupported: tp.unsupported,
        })
    }

    /// The endpoint addresses, by index.
    #[getter]
    fn addresses(&self) -> Vec<String> {
        self.addresses.clone()
    }

    fn __len__(&self) -> usize {
        self.addresses.len()
    }

    /// ``LEAST_REQUEST``, ``ROUND_ROBIN``, ``RANDOM``, ``RING_HASH``, ``MAGLEV``, ``PEAK_EWMA``
    /// (the ``meshroute.io/load-balancer`` annotation) or ``PASSTHROUGH`` (no endpoint selection:
    /// the original destination).
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind
    }

    /// What a consistent hash hashes: ``(kind, name, cookie path, cookie ttl seconds)`` with kind
    /// ``header``, ``cookie``, ``source_ip`` or ``query``; None without consistent hashing.
    #[getter]
    fn hash_source(&self) -> Option<HashSourceTuple> {
        Some(match self.hash.as_ref()? {
            HashSource::HttpHeaderName(n) => ("header", Some(n.clone()), None, None),
            HashSource::HttpCookie { name, path, ttl } => (
                "cookie",
                Some(name.clone()),
                path.clone(),
                ttl.map(|t| t.as_secs_f64()),
            ),
            HashSource::UseSourceIp => ("source_ip", None, None, None),
            HashSource::HttpQueryParameterName(n) => ("query", Some(n.clone()), None, None),
        })
    }

    /// ``connectionPool.tcp.connectTimeout`` in seconds (10 by default).
    #[getter]
    fn connect_timeout(&self) -> f64 {
        self.connect_timeout
    }

    /// Policy fields present but not applied (``tls``, ``retryBudget``, …).
    #[getter]
    fn unsupported(&self) -> Vec<&'static str> {
        self.unsupported.clone()
    }

    /// Each endpoint's Envoy priority (0 first), None for one locality load balancing leaves
    /// out (a ``distribute`` rule sending its locality nothing).
    #[getter]
    fn priorities(&self) -> Vec<Option<u32>> {
        let st = lock(&self.state);
        let set = st.cluster.endpoints();
        (0..set.len()).map(|i| set.priority(i)).collect()
    }

    /// The share of requests (percent) each priority gets with the endpoints' health now
    /// (Envoy's priority load, overprovisioning factor 1.4).
    #[getter]
    fn priority_load(&self) -> Vec<u32> {
        let st = lock(&self.state);
        st.cluster
            .balancer()
            .priority_load(st.cluster.endpoints())
            .load
    }

    /// Whether localities are balanced by weight within a priority (Istio: ``distribute``, or
    /// explicit ``failover`` / ``failoverPriority`` rules with outlier detection).
    #[getter]
    fn locality_weighted(&self) -> bool {
        lock(&self.state).cluster.endpoints().locality_weighted()
    }

    /// Slow start in force: ``(window seconds, aggression, minimum percent)``, or None.
    #[getter]
    fn slow_start(&self) -> Option<(f64, f64, f64)> {
        let st = lock(&self.state);
        st.cluster
            .balancer()
            .slow_start()
            .map(|s| (s.window.as_secs_f64(), s.aggression, s.min_weight_percent))
    }

    /// Pick an endpoint index; None: no healthy endpoint ("no healthy upstream", 503), or a
    /// PASSTHROUGH policy. ``hash_key`` (str or bytes) is the request's consistent-hash key, None
    /// when the request lacks it (a random endpoint, as Envoy). Runs the outlier sweeps due by
    /// ``now`` first; PEAK_EWMA decays its latency estimates to ``now``.
    #[pyo3(signature = (hash_key=None, now=0.0))]
    fn pick(&self, hash_key: Option<&Bound<'_, PyAny>>, now: f64) -> PyResult<Option<usize>> {
        let hash = match hash_key {
            None => None,
            Some(k) if k.is_none() => None,
            Some(k) => Some(meshroute_lb::hash_key(key_bytes(k)?)),
        };
        let mut st = lock(&self.state);
        self.sweep_due(&mut st, instant(now));
        let State { cluster, rng, .. } = &mut *st;
        Ok(cluster
            .pick_at(hash, rng, instant(now))
            .and_then(|s| s.endpoint()))
    }

    /// ``pick``, then ``acquire`` and, when the ticket holds a connection at once, ``start`` on the
    /// endpoint, in one call: ``(index, ticket, active)``. ``index`` None: no healthy endpoint
    /// (nothing acquired); ``ticket`` None: overflow; ``active`` False: the request waits as
    /// pending (``start`` it once ``is_active``).
    #[pyo3(signature = (hash_key=None, now=0.0))]
    fn begin(
        &self,
        hash_key: Option<&Bound<'_, PyAny>>,
        now: f64,
    ) -> PyResult<(Option<usize>, Option<u64>, bool)> {
        let Some(index) = self.pick(hash_key, now)? else {
            return Ok((None, None, false));
        };
        let Some(ticket) = self.acquire() else {
            return Ok((Some(index), None, false));
        };
        let active = self.is_active(ticket);
        if active {
            self.active.start(index);
        }
        Ok((Some(index), Some(ticket), active))
    }

    /// ``finish`` on ``index`` (when ``started``), ``release`` of ``ticket`` and ``release_retry``
    /// of ``retry_ticket`` (when given), in one call.
    #[pyo3(signature = (index, ticket, started, retry_ticket=None))]
    fn end(
        &self,
        index: Option<usize>,
        ticket: u64,
        started: bool,
        retry_ticket: Option<u64>,
    ) -> PyResult<()> {
        if let (Some(index), true) = (index, started) {
            self.finish(index)?;
        }
        self.release(ticket);
        if let Some(retry) = retry_ticket {
            self.release_retry(retry);
        }
        Ok(())
    }

    /// Admit a request under the circuit breaker: a ticket (pass it to ``release``), or None on
    /// overflow (503 with ``x-envoy-overloaded: true``). The request may wait as pending first:
    /// see ``is_active``.
    fn acquire(&self) -> Option<u64> {
        let permit = self.breaker.try_acquire_request().ok()?;
        let mut p = lock(&self.permits);
        let ticket = p.next;
        p.next += 1;
        p.requests.insert(ticket, permit);
        Some(ticket)
    }

    /// Whether request ``ticket`` holds a connection (False while it waits in the pending queue).
    fn is_active(&self, ticket: u64) -> bool {
        lock(&self.permits)
            .requests
            .get(&ticket)
            .is_some_and(RequestPermit::is_active)
    }

    /// Finish (or cancel) request ``ticket``; the oldest pending request gets its connection.
    fn release(&self, ticket: u64) {
        let permit = lock(&self.permits).requests.remove(&ticket);
        drop(permit);
    }

    /// Start a retry under ``maxRetries``: a ticket for ``release_retry``, or None (no retry).
    fn acquire_retry(&self) -> Option<u64> {
        let permit = self.breaker.try_acquire_retry().ok()?;
        let mut p = lock(&self.permits);
        let ticket = p.next;
        p.next += 1;
        p.retries.insert(ticket, permit);
        Some(ticket)
    }

    fn release_retry(&self, ticket: u64) {
        let permit = lock(&self.permits).retries.remove(&ticket);
        drop(permit);
    }

    /// Count a request in flight on endpoint ``index`` (LEAST_REQUEST's input).
    fn start(&self, index: usize) -> PyResult<()> {
        self.check(index)?;
        self.active.start(index);
        Ok(())
    }

    /// Count one request fewer in flight on ``index``.
    fn finish(&self, index: usize) -> PyResult<()> {
        self.check(index)?;
        self.active.finish(index);
        Ok(())
    }

    /// Requests in flight on ``index``.
    fn active(&self, index: usize) -> PyResult<u32> {
        self.check(index)?;
        Ok(self.active.get(index))
    }

    /// Feed one outcome on endpoint ``index`` to outlier detection: an upstream status (int; it
    /// also counts as a connect success), or ``"connect-failure"``, ``"timeout"``, ``"reset"``,
    /// ``"connect-success"``. True when the endpoint was ejected by it. ``latency`` (seconds
    /// from sending the attempt to its response or failure) feeds PEAK_EWMA's estimate (other
    /// policies ignore it; an attempt without a response counts as at least 1 s).
    #[pyo3(signature = (index, outcome, now=0.0, latency=None))]
    fn record(
        &self,
        index: usize,
        outcome: &Bound<'_, PyAny>,
        now: f64,
        latency: Option<f64>,
    ) -> PyResult<bool> {
        self.check(index)?;
        let outcome = if let Ok(status) = outcome.extract::<u16>() {
            Outcome::Http(status)
        } else {
            let text: String = outcome.extract().map_err(|_| {
                PyTypeError::new_err("outcome must be an HTTP status (int) or a str")
            })?;
            Outcome::LocalOrigin(match text.as_str() {
                "connect-failure" => LocalOrigin::ConnectFailed,
                "timeout" => LocalOrigin::Timeout,
                "reset" => LocalOrigin::Reset,
                "connect-success" => LocalOrigin::ConnectSuccess,
                other => {
                    return Err(PyValueError::new_err(format!(
                    "unknown outcome {other:?}: connect-failure, timeout, reset or connect-success"
                )))
                }
            })
        };
        let now = instant(now);
        let mut st = lock(&self.state);
        self.sweep_due(&mut st, now);
        if let Some(latency) = latency {
            st.cluster
                .record_latency(index, outcome, instant(latency), now);
        }
        if matches!(outcome, Outcome::Http(_)) {
            // A response proves the connection was made: with split local-origin errors this
            // resets the local-failure run (a no-op otherwise).
            let connected = Outcome::LocalOrigin(LocalOrigin::ConnectSuccess);
            st.cluster.record(index, connected, now);
        }
        Ok(st.cluster.record(index, outcome, now).is_some())
    }

    /// Run the outlier sweeps due by ``now``; the endpoints brought back.
    fn sweep(&self, now: f64) -> Vec<usize> {
        let mut st = lock(&self.state);
        self.sweep_due(&mut st, instant(now))
    }

    /// PEAK_EWMA: endpoint ``index``'s latency estimate in seconds as a pick at ``now`` sees it
    /// (decayed since its last observation); None before its first answer, and for other
    /// policies.
    #[pyo3(signature = (index, now=0.0))]
    fn latency_estimate(&self, index: usize, now: f64) -> PyResult<Option<f64>> {
        self.check(index)?;
        let st = lock(&self.state);
        let cluster = &st.cluster;
        Ok(cluster
            .balancer()
            .latency_estimate(cluster.endpoints(), index, instant(now))
            .map(|d| d.as_secs_f64()))
    }

    /// Whether outlier detection ejected endpoint ``index``.
    fn is_ejected(&self, index: usize) -> PyResult<bool> {
        self.check(index)?;
        Ok(lock(&self.state).cluster.endpoints().is_ejected(index))
    }

    /// Endpoints not ejected.
    #[getter]
    fn healthy_count(&self) -> usize {
        lock(&self.state).cluster.endpoints().healthy_count()
    }

    /// Envoy's cluster counters and gauges for this client (``upstream_rq_pending_overflow``,
    /// ``upstream_cx_active``, …, ``ejections_overflow``).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.breaker.stats();
        let out = PyDict::new(py);
        out.set_item(
            "upstream_rq_pending_overflow",
            s.upstream_rq_pending_overflow,
        )?;
        out.set_item("upstream_cx_overflow", s.upstream_cx_overflow)?;
        out.set_item("upstream_rq_retry_overflow", s.upstream_rq_retry_overflow)?;
        out.set_item("upstream_rq_total", s.upstream_rq_total)?;
        out.set_item("upstream_rq_pending_total", s.upstream_rq_pending_total)?;
        out.set_item("upstream_cx_total", s.upstream_cx_total)?;
        out.set_item("upstream_cx_max_requests", s.upstream_cx_max_requests)?;
        out.set_item("upstream_rq_active", s.upstream_rq_active)?;
        out.set_item("upstream_rq_pending_active", s.upstream_rq_pending_active)?;
        out.set_item("upstream_cx_active", s.upstream_cx_active)?;
        out.set_item("upstream_rq_retry_active", s.upstream_rq_retry_active)?;
        let st = lock(&self.state);
        let overflow = st.cluster.outlier().map_or(0, |o| o.ejections_overflow());
        out.set_item("ejections_overflow", overflow)?;
        out.set_item("ejections_active", st.cluster.endpoints().ejected_count())?;
        Ok(out)
    }

    fn __repr__(&self) -> String {
        format!(
            "<Balancer {} {} endpoints>",
            self.kind,
            self.addresses.len()
        )
    }
}

fn key_bytes<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    if let Ok(b) = obj.downcast::<PyBytes>() {
        return Ok(b.as_bytes());
    }
    if let Ok(s) = obj.downcast::<PyString>() {
        return Ok(s.to_str()?.as_bytes());
    }
    Err(PyTypeError::new_err("hash_key must be str, bytes or None"))
}
