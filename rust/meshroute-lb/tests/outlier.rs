//! Outlier detection: consecutive errors, sweeps, backoff, caps, panic.

mod common;

use std::time::Duration;

use common::{endpoints, equal_set};
use meshroute_lb::{
    CircuitLimits, Cluster, EjectionReason, EndpointSet, LbPolicy, LocalOrigin, Outcome,
    OutlierDetection, OutlierDetector, Selection, SplitMix64,
};

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn detector(n: usize, config: OutlierDetection) -> (OutlierDetector, EndpointSet) {
    (OutlierDetector::new(config, n), equal_set(n))
}

/// Record `n` outcomes on `endpoint`; the ejection, if any, from the last.
fn hit(
    d: &mut OutlierDetector,
    set: &mut EndpointSet,
    endpoint: usize,
    outcome: Outcome,
    n: usize,
    now: Duration,
) -> Option<meshroute_lb::Ejection> {
    (0..n).fold(None, |_, _| d.record(set, endpoint, outcome, now))
}

fn all_hosts(config: OutlierDetection) -> OutlierDetection {
    OutlierDetection {
        max_ejection_percent: 100,
        ..config
    }
}

#[test]
fn istio_defaults() {
    let d = OutlierDetection::default();
    assert_eq!(d.consecutive_5xx_errors, 5);
    assert_eq!(d.consecutive_gateway_errors, 0);
    assert_eq!((d.interval, d.base_ejection_time), (secs(10), secs(30)));
    assert_eq!((d.max_ejection_percent, d.min_health_percent), (10, 0));
    assert_eq!(d.max_ejection_time(), secs(300));
}

#[test]
fn five_consecutive_5xx_eject() {
    let (mut d, mut set) = detector(10, OutlierDetection::default());
    assert_eq!(
        hit(&mut d, &mut set, 3, Outcome::Http(500), 4, secs(1)),
        None
    );
    assert!(!set.is_ejected(3));
    let e = d.record(&mut set, 3, Outcome::Http(500), secs(1)).unwrap();
    assert_eq!(
        (e.endpoint, e.reason, e.duration),
        (3, EjectionReason::Consecutive5xx, secs(30))
    );
    assert!(set.is_ejected(3));
}

#[test]
fn success_in_between_resets() {
    let (mut d, mut set) = detector(10, OutlierDetection::default());
    hit(&mut d, &mut set, 0, Outcome::Http(503), 4, secs(0));
    d.record(&mut set, 0, Outcome::Http(200), secs(0));
    assert_eq!(
        hit(&mut d, &mut set, 0, Outcome::Http(503), 4, secs(0)),
        None
    );
    // A 4xx is a success for outlier detection too.
    d.record(&mut set, 0, Outcome::Http(404), secs(0));
    assert_eq!(
        hit(&mut d, &mut set, 0, Outcome::Http(503), 4, secs(0)),
        None
    );
    assert!(hit(&mut d, &mut set, 0, Outcome::Http(503), 1, secs(0)).is_some());
}

#[test]
fn returns_at_the_first_sweep_after_base_time() {
    let (mut d, mut set) = detector(10, OutlierDetection::default());
    hit(&mut d, &mut set, 1, Outcome::Http(500), 5, secs(5));
    assert_eq!(d.ejected_until(1), Some(secs(35)));
    for t in [10, 20, 30] {
        assert!(d.sweep(&mut set, secs(t)).is_empty(), "still out at {t}s");
    }
    assert_eq!(d.sweep(&mut set, secs(40)), vec![1]);
    assert!(!set.is_ejected(1));
}

#[test]
fn second_ejection_lasts_twice_as_long_then_decays() {
    let (mut d, mut set) = detector(10, OutlierDetection::default());
    hit(&mut d, &mut set, 0, Outcome::Http(500), 5, secs(0));
    assert_eq!(d.sweep(&mut set, secs(30)), vec![0]);
    // Fails again before the next sweep: 2 x 30s.
    let e = hit(&mut d, &mut set, 0, Outcome::Http(500), 5, secs(31)).unwrap();
    assert_eq!((e.duration, d.multiplier(0)), (secs(60), 2));
    assert_eq!(d.sweep(&mut set, secs(91)), vec![0]);
    // Healthy for two intervals: the multiplier steps down twice.
    d.sweep(&mut set, secs(101));
    d.sweep(&mut set, secs(111));
    assert_eq!(d.multiplier(0), 0);
    let e = hit(&mut d, &mut set, 0, Outcome::Http(500), 5, secs(112)).unwrap();
    assert_eq!(e.duration, secs(30));
}

#[test]
fn ejection_time_is_capped_at_300s() {
    let (mut d, mut set) = detector(10, OutlierDetection::default());
    let mut now = secs(0);
    let mut last = Duration::ZERO;
    for _ in 0..15 {
        last = hit(&mut d, &mut set, 0, Outcome::Http(500), 5, now)
            .unwrap()
            .duration;
        now += last;
        d.sweep(&mut set, now);
    }
    assert_eq!(last, secs(300));
    assert_eq!(d.multiplier(0), 10, "stops growing at the cap");
}

#[test]
fn max_ejection_percent_with_at_least_one() {
    // 3 hosts at 10%: 1/3 > 10%, yet the first ejection is always allowed.
    let (mut d, mut set) = detector(3, OutlierDetection::default());
    assert!(hit(&mut d, &mut set, 0, Outcome::Http(500), 5, secs(0)).is_some());
    assert!(hit(&mut d, &mut set, 1, Outcome::Http(500), 5, secs(0)).is_none());
    assert_eq!((set.ejected_count(), d.ejections_overflow()), (1, 1));

    // 4 hosts at 50%: two may go, the third may not.
    let config = OutlierDetection {
        max_ejection_percent: 50,
        ..Default::default()
    };
    let (mut d, mut set) = detector(4, config);
    for host in 0..3 {
        hit(&mut d, &mut set, host, Outcome::Http(502), 5, secs(0));
    }
    assert_eq!(set.ejected_count(), 2);
}

#[test]
fn gateway_errors_have_their_own_threshold() {
    let config = OutlierDetection {
        consecutive_gateway_errors: 3,
        ..all_hosts(OutlierDetection::default())
    };
    let (mut d, mut set) = detector(2, config);
    hit(&mut d, &mut set, 0, Outcome::Http(502), 2, secs(0));
    d.record(&mut set, 0, Outcome::Http(500), secs(0)); // breaks the gateway run
    assert_eq!(
        hit(&mut d, &mut set, 0, Outcome::Http(504), 1, secs(0)),
        None
    );
    // 5th consecutive 5xx overall: the 5xx threshold fires first.
    let e = d.record(&mut set, 0, Outcome::Http(503), secs(0)).unwrap();
    assert_eq!(e.reason, EjectionReason::Consecutive5xx);

    let e = hit(&mut d, &mut set, 1, Outcome::Http(503), 3, secs(0)).unwrap();
    assert_eq!(e.reason, EjectionReason::ConsecutiveGatewayFailure);
}

#[test]
fn local_origin_failures_count_as_5xx_unless_split() {
    let (mut d, mut set) = detector(10, OutlierDetection::default());
    let fail = Outcome::LocalOrigin(LocalOrigin::ConnectFailed);
    hit(&mut d, &mut set, 0, fail, 3, secs(0));
    d.record(
        &mut set,
        0,
        Outcome::LocalOrigin(LocalOrigin::ConnectSuccess),
        secs(0),
    );
    let e = hit(
        &mut d,
        &mut set,
        0,
        Outcome::LocalOrigin(LocalOrigin::Timeout),
        2,
        secs(0),
    );
    assert_eq!(
        e.unwrap().reason,
        EjectionReason::Consecutive5xx,
        "connect success ignored"
    );
}

#[test]
fn split_mode_counts_local_origin_separately() {
    let config = OutlierDetection {
        split_external_local_origin_errors: true,
        consecutive_local_origin_failures: 2,
        ..all_hosts(OutlierDetection::default())
    };
    let (mut d, mut set) = detector(2, config);
    let reset = Outcome::LocalOrigin(LocalOrigin::Reset);
    hit(&mut d, &mut set, 0, Outcome::Http(500), 4, secs(0));
    d.record(&mut set, 0, reset, secs(0));
    d.record(
        &mut set,
        0,
        Outcome::LocalOrigin(LocalOrigin::ConnectSuccess),
        secs(0),
    );
    assert!(
        !set.is_ejected(0),
        "local failures did not add to the 5xx run"
    );
    let e = hit(&mut d, &mut set, 0, reset, 2, secs(0)).unwrap();
    assert_eq!(e.reason, EjectionReason::ConsecutiveLocalOriginFailure);
    let e = hit(&mut d, &mut set, 1, Outcome::Http(500), 5, secs(0)).unwrap();
    assert_eq!(e.reason, EjectionReason::Consecutive5xx);
}

#[test]
fn zero_threshold_disables() {
    let config = OutlierDetection {
        consecutive_5xx_errors: 0,
        ..Default::default()
    };
    let (mut d, mut set) = detector(2, config);
    assert_eq!(
        hit(&mut d, &mut set, 0, Outcome::Http(500), 100, secs(0)),
        None
    );
}

#[test]
fn cluster_all_ejected_is_no_healthy_upstream_without_panic() {
    let mut c = Cluster::new(
        endpoints(&[1]),
        LbPolicy::RoundRobin,
        CircuitLimits::default(),
        Some(OutlierDetection::default()),
    )
    .unwrap();
    let mut rng = SplitMix64::new(0);
    for _ in 0..5 {
        c.record(0, Outcome::Http(503), secs(0));
    }
    assert!(
        c.endpoints().is_ejected(0),
        "the one host may always be ejected"
    );
    assert_eq!(c.pick(None, &mut rng), None, "503 UH");
    assert_eq!(c.sweep(secs(30)), vec![0]);
    assert!(c.pick(None, &mut rng).is_some());
}

#[test]
fn cluster_min_health_percent_is_the_panic_threshold() {
    let config = OutlierDetection {
        min_health_percent: 50,
        ..all_hosts(OutlierDetection::default())
    };
    let mut c = Cluster::new(
        endpoints(&[1, 1]),
        LbPolicy::RoundRobin,
        CircuitLimits::default(),
        Some(config),
    )
    .unwrap();
    let mut rng = SplitMix64::new(0);
    for _ in 0..5 {
        c.record(0, Outcome::Http(500), secs(0));
    }
    // 50% healthy is not below 50%: only host 1.
    assert_eq!(
        c.pick(None, &mut rng),
        Some(Selection::Endpoint {
            index: 1,
            panic: false
        })
    );
    for _ in 0..5 {
        c.record(1, Outcome::Http(500), secs(0));
    }
    // 0% healthy: panic, both hosts used again.
    let picks: Vec<_> = (0..2).map(|_| c.pick(None, &mut rng).unwrap()).collect();
    assert!(picks
        .iter()
        .all(|s| matches!(s, Selection::Endpoint { panic: true, .. })));
}

#[test]
fn cluster_without_outlier_detection_never_ejects() {
    let mut c = Cluster::new(
        endpoints(&[1]),
        LbPolicy::default(),
        CircuitLimits::default(),
        None,
    )
    .unwrap();
    for _ in 0..50 {
        assert_eq!(c.record(0, Outcome::Http(500), secs(0)), None);
    }
    assert!(c.pick(None, &mut SplitMix64::new(0)).is_some());
}
