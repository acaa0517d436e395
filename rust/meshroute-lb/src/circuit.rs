//! Circuit breaking: DestinationRule `connectionPool` limits.
//!
//! Limits apply **per client proxy, per upstream cluster, across all of the
//! cluster's endpoints** (Envoy cluster circuit breakers; the Istio proto's
//! "per host" wording is inaccurate, istio/istio#42490). Tripping follows
//! Envoy's HTTP/1 connection pool:
//!
//! * a request takes an idle connection, or opens one while below
//!   `max_connections`;
//! * otherwise it is counted in `upstream_cx_overflow` and waits in the
//!   pending queue, unless the queue already holds `max_pending_requests`:
//!   then it is rejected at once (`upstream_rq_pending_overflow`);
//! * a request arriving while `max_requests` are active is rejected at once
//!   (Envoy counts that in `upstream_rq_pending_overflow` too);
//! * rejections are answered 503 with flag `UO` and `x-envoy-overloaded: true`.
//!
//! When a request finishes, its connection is reused (or closed after
//! `max_requests_per_connection` requests) and the oldest pending request is
//! dispatched. Connection setup is instantaneous here; in Envoy a request
//! waits in the queue while a new connection is being established too.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::circuit_limits::{CircuitLimits, Overflow};

/// Counters and gauges, named as Envoy's cluster stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CircuitStats {
    /// Requests rejected: pending queue full or `max_requests` reached.
    pub upstream_rq_pending_overflow: u64,
    /// Times a connection was needed while `max_connections` were open.
    pub upstream_cx_overflow: u64,
    /// Retries refused by `max_retries`.
    pub upstream_rq_retry_overflow: u64,
    /// Requests dispatched to a connection.
    pub upstream_rq_total: u64,
    /// Requests that had to wait in the pending queue.
    pub upstream_rq_pending_total: u64,
    /// Connections opened.
    pub upstream_cx_total: u64,
    /// Connections closed for reaching `max_requests_per_connection`.
    pub upstream_cx_max_requests: u64,
    /// Gauge: requests active on a connection.
    pub upstream_rq_active: u32,
    /// Gauge: requests waiting for a connection.
    pub upstream_rq_pending_active: u32,
    /// Gauge: open connections (HTTP and TCP).
    pub upstream_cx_active: u32,
    /// Gauge: retries in flight.
    pub upstream_rq_retry_active: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ticket {
    Pending,
    // Requests served by this request's connection so far, itself included.
    Active { served: u32 },
}

#[derive(Debug)]
struct State {
    limits: CircuitLimits,
    stats: CircuitStats,
    // Idle HTTP connections, by requests served so far; reused LIFO.
    idle: Vec<u32>,
    pending: VecDeque<u64>,
    tickets: HashMap<u64, Ticket>,
    next_ticket: u64,
}

impl State {
    /// Put a request on an idle or new connection, if possible.
    fn attach(&mut self) -> Option<u32> {
        let served = if let Some(s) = self.idle.pop() {
            s + 1
        } else if self.stats.upstream_cx_active < self.limits.max_connections {
            self.stats.upstream_cx_active += 1;
            self.stats.upstream_cx_total += 1;
            1
        } else {
            return None;
        };
        self.stats.upstream_rq_active += 1;
        self.stats.upstream_rq_total += 1;
        Some(served)
    }

    fn release_connection(&mut self, served: u32) {
        self.stats.upstream_rq_active -= 1;
        let limit = self.limits.max_requests_per_connection;
        if limit != 0 && served >= limit {
            self.stats.upstream_cx_active -= 1;
            self.stats.upstream_cx_max_requests += 1;
        } else {
            self.idle.push(served);
        }
        self.dispatch_pending();
    }

    /// Serve the queue in FIFO order while connections and `max_requests`
    /// allow; a request left pending waits for the next release.
    fn dispatch_pending(&mut self) {
        while let Some(&ticket) = self.pending.front() {
            if self.stats.upstream_rq_active >= self.limits.max_requests {
                return;
            }
            let Some(served) = self.attach() else { return };
            self.pending.pop_front();
            self.stats.upstream_rq_pending_active -= 1;
            self.tickets.insert(ticket, Ticket::Active { served });
        }
    }
}

/// The circuit breaker of one cluster, for one client. Cheap to clone: clones
/// share state, and permits release their resource when dropped.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Counters stay consistent even if a holder panicked mid-update of an
    // unrelated field; keep serving rather than cascading the panic.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CircuitBreaker {
    /// A breaker with `limits`, no connections and zeroed counters.
    pub fn new(limits: CircuitLimits) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                limits,
                stats: CircuitStats::default(),
                idle: Vec::new(),
                pending: VecDeque::new(),
                tickets: HashMap::new(),
                next_ticket: 0,
            })),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> CircuitLimits {
        lock(&self.state).limits
    }

    /// A snapshot of the counters and gauges.
    pub fn stats(&self) -> CircuitStats {
        lock(&self.state).stats
    }

    /// Admit an HTTP request: active at once, queued as pending, or rejected
    /// with [`Overflow::MaxRequests`] / [`Overflow::PendingRequests`].
    pub fn try_acquire_request(&self) -> Result<RequestPermit, Overflow> {
        let mut st = lock(&self.state);
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        let can_reuse = !st.idle.is_empty();
        if can_reuse || st.stats.upstream_cx_active < st.limits.max_connections {
            if st.stats.upstream_rq_active >= st.limits.max_requests {
                st.stats.upstream_rq_pending_overflow += 1;
                return Err(Overflow::MaxRequests);
            }
            let served = st.attach().expect("a connection is available");
            st.tickets.insert(ticket, Ticket::Active { served });
        } else {
            st.stats.upstream_cx_overflow += 1;
            if st.pending.len() as u64 >= u64::from(st.limits.max_pending_requests) {
                st.stats.upstream_rq_pending_overflow += 1;
                return Err(Overflow::PendingRequests);
            }
            st.pending.push_back(ticket);
            st.stats.upstream_rq_pending_active += 1;
            st.stats.upstream_rq_pending_total += 1;
            st.tickets.insert(ticket, Ticket::Pending);
        }
        drop(st);
        Ok(RequestPermit {
            state: Arc::clone(&self.state),
            ticket,
        })
    }

    /// Open a TCP (non-pooled) connection, or [`Overflow::Connections`].
    pub fn try_acquire_connection(&self) -> Result<ConnectionPermit, Overflow> {
        let mut st = lock(&self.state);
        if st.stats.upstream_cx_active >= st.limits.max_connections {
            st.stats.upstream_cx_overflow += 1;
            return Err(Overflow::Connections);
        }
        st.stats.upstream_cx_active += 1;
        st.stats.upstream_cx_total += 1;
        drop(st);
        Ok(ConnectionPermit {
            state: Arc::clone(&self.state),
        })
    }

    /// Start a retry, or [`Overflow::Retries`] (the retry is then skipped).
    pub fn try_acquire_retry(&self) -> Result<RetryPermit, Overflow> {
        let mut st = lock(&self.state);
        if st.stats.upstream_rq_retry_active >= st.limits.max_retries {
            st.stats.upstream_rq_retry_overflow += 1;
            return Err(Overflow::Retries);
        }
        st.stats.upstream_rq_retry_active += 1;
        drop(st);
        Ok(RetryPermit {
            state: Arc::clone(&self.state),
        })
    }
}

/// An admitted HTTP request. Dropping it finishes the request (or cancels
/// it while pending) and lets the next pending request through.
#[derive(Debug)]
#[must_use = "dropping the permit finishes the request"]
pub struct RequestPermit {
    state: Arc<Mutex<State>>,
    ticket: u64,
}

impl RequestPermit {
    /// `true` once the request holds a connection.
    pub fn is_active(&self) -> bool {
        matches!(
            lock(&self.state).tickets.get(&self.ticket),
            Some(Ticket::Active { .. })
        )
    }

    /// `true` while the request waits in the pending queue.
    pub fn is_pending(&self) -> bool {
        !self.is_active()
    }
}

impl Drop for RequestPermit {
    fn drop(&mut self) {
        let mut st = lock(&self.state);
        match st.tickets.remove(&self.ticket) {
            Some(Ticket::Active { served }) => st.release_connection(served),
            Some(Ticket::Pending) => {
                st.pending.retain(|&t| t != self.ticket);
                st.stats.upstream_rq_pending_active -= 1;
            }
            None => {}
        }
    }
}

/// An open TCP connection; dropping it closes the connection.
#[derive(Debug)]
#[must_use = "dropping the permit closes the connection"]
pub struct ConnectionPermit {
    state: Arc<Mutex<State>>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut st = lock(&self.state);
        st.stats.upstream_cx_active -= 1;
        // A freed connection slot may unblock a pending HTTP request.
        st.dispatch_pending();
    }
}

/// A retry in flight; dropping it frees the retry slot.
#[derive(Debug)]
#[must_use = "dropping the permit ends the retry"]
pub struct RetryPermit {
    state: Arc<Mutex<State>>,
}

impl Drop for RetryPermit {
    fn drop(&mut self) {
        lock(&self.state).stats.upstream_rq_retry_active -= 1;
    }
}
