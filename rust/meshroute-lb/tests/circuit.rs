//! Circuit breaking, mirroring the Istio circuit-breaking task.

use meshroute_lb::{CircuitBreaker, CircuitLimits, Overflow, UNLIMITED};

/// The Istio task's DestinationRule: maxConnections 1,
/// http1MaxPendingRequests 1, maxRequestsPerConnection 1.
fn istio_task() -> CircuitBreaker {
    CircuitBreaker::new(
        CircuitLimits::default()
            .with_max_connections(1)
            .with_http1_max_pending_requests(1)
            .with_max_requests_per_connection(1),
    )
}

#[test]
fn two_concurrent_requests_pass_the_third_overflows() {
    let cb = istio_task();
    let first = cb.try_acquire_request().expect("opens the one connection");
    assert!(first.is_active());
    let second = cb
        .try_acquire_request()
        .expect("waits in the pending queue");
    assert!(second.is_pending());
    let third = cb.try_acquire_request().unwrap_err();
    assert_eq!(third, Overflow::PendingRequests);
    assert_eq!(third.counter(), "upstream_rq_pending_overflow");

    let s = cb.stats();
    assert_eq!(s.upstream_rq_pending_overflow, 1);
    assert_eq!(
        s.upstream_cx_overflow, 2,
        "second and third wanted a connection"
    );
    assert_eq!((s.upstream_rq_active, s.upstream_rq_pending_active), (1, 1));

    // First finishes: its connection closes (1 request per connection) and
    // the pending request gets a fresh one.
    drop(first);
    assert!(second.is_active());
    let s = cb.stats();
    assert_eq!((s.upstream_cx_total, s.upstream_cx_max_requests), (2, 1));
    assert_eq!((s.upstream_cx_active, s.upstream_rq_pending_active), (1, 0));
    drop(second);
    assert_eq!(cb.stats().upstream_cx_active, 0);
}

#[test]
fn overflow_is_answered_503_uo_overloaded() {
    assert_eq!(Overflow::STATUS, 503);
    assert_eq!(Overflow::RESPONSE_FLAG, "UO");
    assert_eq!(Overflow::OVERLOADED_HEADER, ("x-envoy-overloaded", "true"));
    assert!(Overflow::BODY.ends_with("reset reason: overflow"));
}

#[test]
fn pending_queue_is_fifo_and_cancellable() {
    let cb = CircuitBreaker::new(
        CircuitLimits::default()
            .with_max_connections(1)
            .with_http1_max_pending_requests(2),
    );
    let a = cb.try_acquire_request().unwrap();
    let b = cb.try_acquire_request().unwrap();
    let c = cb.try_acquire_request().unwrap();
    drop(b); // cancelled while pending
    assert_eq!(cb.stats().upstream_rq_pending_active, 1);
    drop(a);
    assert!(c.is_active(), "c dispatched on the reused connection");
    assert_eq!(
        cb.stats().upstream_cx_total,
        1,
        "keep-alive: one connection"
    );
}

#[test]
fn max_requests_rejects_immediately() {
    let cb = CircuitBreaker::new(CircuitLimits::default().with_http2_max_requests(2));
    let held: Vec<_> = (0..2).map(|_| cb.try_acquire_request().unwrap()).collect();
    let err = cb.try_acquire_request().unwrap_err();
    assert_eq!(err, Overflow::MaxRequests);
    assert_eq!(
        err.counter(),
        "upstream_rq_pending_overflow",
        "Envoy's counter"
    );
    assert_eq!(cb.stats().upstream_rq_pending_overflow, 1);
    drop(held);
    assert!(cb.try_acquire_request().is_ok());
}

#[test]
fn tcp_connections_overflow() {
    let cb = CircuitBreaker::new(CircuitLimits::default().with_max_connections(2));
    let c1 = cb.try_acquire_connection().unwrap();
    let _c2 = cb.try_acquire_connection().unwrap();
    let err = cb.try_acquire_connection().unwrap_err();
    assert_eq!(
        (err, err.counter()),
        (Overflow::Connections, "upstream_cx_overflow")
    );
    drop(c1);
    assert!(cb.try_acquire_connection().is_ok());
    assert_eq!(cb.stats().upstream_cx_overflow, 1);
}

#[test]
fn a_closed_tcp_connection_unblocks_a_pending_request() {
    let cb = CircuitBreaker::new(CircuitLimits::default().with_max_connections(1));
    let tcp = cb.try_acquire_connection().unwrap();
    let req = cb.try_acquire_request().unwrap();
    assert!(req.is_pending());
    drop(tcp);
    assert!(req.is_active());
}

#[test]
fn retries_overflow() {
    let cb = CircuitBreaker::new(CircuitLimits::default().with_max_retries(1));
    let r = cb.try_acquire_retry().unwrap();
    let err = cb.try_acquire_retry().unwrap_err();
    assert_eq!(
        (err, err.counter()),
        (Overflow::Retries, "upstream_rq_retry_overflow")
    );
    assert_eq!(cb.stats().upstream_rq_retry_overflow, 1);
    drop(r);
    assert!(cb.try_acquire_retry().is_ok());
}

#[test]
fn zero_means_istio_default_unlimited() {
    let limits = CircuitLimits::default()
        .with_max_connections(0)
        .with_http1_max_pending_requests(0)
        .with_http2_max_requests(0)
        .with_max_retries(0);
    assert_eq!(limits, CircuitLimits::default());
    assert_eq!(limits.max_connections, UNLIMITED);
    assert_eq!(UNLIMITED, 4_294_967_295);
    let cb = CircuitBreaker::new(limits);
    let held: Vec<_> = (0..1000)
        .map(|_| cb.try_acquire_request().unwrap())
        .collect();
    assert!(held.iter().all(|p| p.is_active()));
}

#[test]
fn permits_cross_threads() {
    let cb = istio_task();
    let permit = cb.try_acquire_request().unwrap();
    std::thread::spawn(move || drop(permit)).join().unwrap();
    assert_eq!(cb.stats().upstream_rq_active, 0);
}
