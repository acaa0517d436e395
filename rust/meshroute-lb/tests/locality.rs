//! Locality load balancing end to end in meshroute-lb: a DestinationRule traffic policy (Istio
//! JSON) and a client placement give a cluster whose picks follow Envoy's priorities
//! (overprovisioning factor 1.4), locality weights and panic threshold; and slow start.
//!
//! Statistical checks are seeded (`SplitMix64`) and state their tolerance; time is a
//! `Duration` handed to each pick, never the system clock.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use meshroute_lb::istio::TrafficPolicy;
use meshroute_lb::{
    Cluster, Endpoint, EndpointSet, LbPolicy, LoadBalancer, Locality, Placement, SlowStart,
    SplitMix64,
};

/// Two endpoints in each of `us/a`, `us/b`, `eu/c` (indices 0-1, 2-3, 4-5).
fn endpoints() -> Vec<Endpoint> {
    ["us/a", "us/a", "us/b", "us/b", "eu/c", "eu/c"]
        .iter()
        .enumerate()
        .map(|(i, l)| {
            Endpoint::new(format!("10.0.0.{i}:80"))
                .with_locality(Locality::parse(l))
                .with_label("version", if i % 2 == 0 { "v1" } else { "v2" })
        })
        .collect()
}

fn client(locality: &str) -> Placement {
    Placement {
        locality: Locality::parse(locality),
        labels: BTreeMap::new(),
    }
}

fn cluster(policy: &str, at: &str) -> Cluster {
    let policy = TrafficPolicy::from_json(policy).expect("policy");
    Cluster::for_client(endpoints(), &policy, &client(at)).expect("cluster")
}

/// Picks per endpoint over `n` picks.
fn picks(c: &mut Cluster, n: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64::new(seed);
    let mut out = vec![0; c.endpoints().len()];
    for _ in 0..n {
        let i = c
            .pick(None, &mut rng)
            .and_then(|s| s.endpoint())
            .expect("a pick");
        out[i] += 1;
    }
    out
}

fn eject(c: &mut Cluster, index: usize) {
    use meshroute_lb::Outcome;
    for _ in 0..5 {
        c.record(index, Outcome::Http(503), Duration::ZERO);
    }
    assert!(c.endpoints().is_ejected(index), "endpoint {index} ejected");
}

const OUTLIER: &str =
    r#""outlierDetection": {"consecutive5xxErrors": 5, "maxEjectionPercent": 100}"#;

#[test]
fn with_outlier_detection_the_default_failover_keeps_traffic_in_the_client_zone() {
    let mut c = cluster(
        &format!(r#"{{"loadBalancer": {{"simple": "ROUND_ROBIN"}}, {OUTLIER}}}"#),
        "us/a",
    );
    let priorities: Vec<_> = (0..6).map(|i| c.endpoints().priority(i)).collect();
    assert_eq!(
        priorities,
        [0, 0, 1, 1, 2, 2].map(Some),
        "same zone, same region, elsewhere"
    );
    assert_eq!(picks(&mut c, 600, 1), vec![300, 300, 0, 0, 0, 0]);
}

#[test]
fn traffic_spills_to_the_next_priority_as_the_healthy_share_drops() {
    let mut c = cluster(
        &format!(r#"{{"loadBalancer": {{"simple": "ROUND_ROBIN"}}, {OUTLIER}}}"#),
        "us/a",
    );
    eject(&mut c, 0);
    // us/a: 1 of 2 healthy, health 1.4 × 50 % = 70 %: 30 % of the requests go to us/b.
    assert_eq!(
        c.balancer().priority_load(c.endpoints()).load,
        vec![70, 30, 0]
    );
    let got = picks(&mut c, 10_000, 2);
    assert_eq!(got[0], 0, "the ejected endpoint gets nothing");
    let share = (got[2] + got[3]) as f64 / 10_000.0;
    assert!((share - 0.30).abs() < 0.02, "us/b got {share} (30 % ± 2)");
    assert_eq!(got[4] + got[5], 0);
    // The whole zone out: everything to us/b.
    eject(&mut c, 1);
    let got = picks(&mut c, 100, 3);
    assert_eq!(got[2] + got[3], 100, "{got:?}");
}

#[test]
fn without_outlier_detection_there_is_no_failover() {
    let mut c = cluster(r#"{"loadBalancer": {"simple": "ROUND_ROBIN"}}"#, "us/a");
    assert!((0..6).all(|i| c.endpoints().priority(i) == Some(0)));
    assert_eq!(picks(&mut c, 600, 1), vec![100; 6]);
}

#[test]
fn locality_lb_disabled_by_the_rule() {
    let mut c = cluster(
        &format!(
            r#"{{"loadBalancer": {{"simple": "ROUND_ROBIN", "localityLbSetting": {{"enabled": false}}}}, {OUTLIER}}}"#
        ),
        "us/a",
    );
    assert_eq!(picks(&mut c, 600, 1), vec![100; 6]);
}

#[test]
fn region_failover_rule_orders_the_other_regions() {
    let policy = format!(
        r#"{{"loadBalancer": {{"localityLbSetting": {{"failover": [{{"from": "eu", "to": "us"}}]}}}}, {OUTLIER}}}"#
    );
    let c = cluster(&policy, "eu/c");
    let priorities: Vec<_> = (0..6).map(|i| c.endpoints().priority(i)).collect();
    assert_eq!(priorities, [1, 1, 1, 1, 0, 0].map(Some));
    assert!(
        c.endpoints().locality_weighted(),
        "explicit failover rules: locality-weighted"
    );
}

#[test]
fn distribute_splits_by_the_rule_weights_and_drops_unlisted_localities() {
    let policy = r#"{"loadBalancer": {"simple": "ROUND_ROBIN", "localityLbSetting": {"distribute": [
        {"from": "us/*", "to": {"us/a": 20, "eu/*": 80}}]}}}"#;
    let mut c = cluster(policy, "us/b");
    let got = picks(&mut c, 10_000, 4);
    assert_eq!(got[2] + got[3], 0, "us/b is not listed: {got:?}");
    let eu = (got[4] + got[5]) as f64 / 10_000.0;
    assert!((eu - 0.80).abs() < 0.01, "eu got {eu} (80 % ± 1)");
    // A rule for other clients leaves every locality in.
    let mut other = cluster(policy, "eu/c");
    assert!(picks(&mut other, 600, 5).iter().all(|&n| n > 0));
}

#[test]
fn a_locality_weight_follows_its_healthy_share_within_a_priority() {
    let policy = format!(
        r#"{{"loadBalancer": {{"simple": "ROUND_ROBIN", "localityLbSetting": {{"distribute": [
        {{"from": "*", "to": {{"us/a": 50, "us/b": 50}}}}]}}}}, {OUTLIER}}}"#
    );
    let mut c = cluster(&policy, "us/a");
    eject(&mut c, 2);
    // us/b: weight 50 × min(1, 1.4 × 1/2) = 35 against us/a's 50.
    let got = picks(&mut c, 8_500, 6);
    assert_eq!(got[2], 0);
    let b = got[3] as f64 / 8_500.0;
    assert!((b - 35.0 / 85.0).abs() < 0.01, "us/b got {b}");
}

#[test]
fn failover_priority_prefers_endpoints_matching_the_client_labels() {
    let policy = format!(
        r#"{{"loadBalancer": {{"simple": "ROUND_ROBIN", "localityLbSetting": {{"failoverPriority": [
        "version", "topology.kubernetes.io/region"]}}}}, {OUTLIER}}}"#
    );
    let policy = TrafficPolicy::from_json(&policy).expect("policy");
    let at = Placement {
        locality: Locality::parse("eu/c"),
        labels: [("version".to_owned(), "v2".to_owned())].into(),
    };
    let c = Cluster::for_client(endpoints(), &policy, &at).expect("cluster");
    let priorities: Vec<_> = (0..6).map(|i| c.endpoints().priority(i)).collect();
    // v2 in eu first (5), then v2 elsewhere (1, 3), then every v1.
    assert_eq!(priorities, [2, 1, 2, 1, 2, 0].map(Some));
}

#[test]
fn panic_threshold_applies_per_priority() {
    let policy = r#"{"loadBalancer": {"simple": "ROUND_ROBIN"},
        "outlierDetection": {"consecutive5xxErrors": 5, "maxEjectionPercent": 100, "minHealthPercent": 60}}"#;
    let mut c = cluster(policy, "us/a");
    for i in [0, 1, 2, 3, 5] {
        eject(&mut c, i);
    }
    // Health 0 / 0 / 70: total 70 < 100 and every priority under 60 %: total panic, the load
    // by host counts, each priority over all its hosts.
    let load = c.balancer().priority_load(c.endpoints());
    assert_eq!(load.panic, vec![true, true, true]);
    let got = picks(&mut c, 3_000, 7);
    assert!(got.iter().all(|&n| n > 300), "{got:?}");
}

#[test]
fn consistent_hash_chooses_the_priority_with_the_key() {
    let policy = format!(
        r#"{{"loadBalancer": {{"consistentHash": {{"httpHeaderName": "u"}}}}, {OUTLIER}}}"#
    );
    let mut c = cluster(&policy, "us/a");
    eject(&mut c, 0);
    let mut rng = SplitMix64::new(8);
    for key in 0..200u64 {
        let h = meshroute_lb::hash_key(&key.to_le_bytes());
        let first = c.pick(Some(h), &mut rng).and_then(|s| s.endpoint());
        assert!((0..5).all(|_| c.pick(Some(h), &mut rng).and_then(|s| s.endpoint()) == first));
    }
}

/// Three endpoints, the last one joined at `joined`; slow start `window`.
fn warming(policy: LbPolicy, joined: Duration, slow: SlowStart) -> (LoadBalancer, EndpointSet) {
    let mut list = common::endpoints(&[1, 1, 1]);
    list[2] = list[2].clone().added_at(joined);
    let lb = LoadBalancer::new(policy)
        .expect("policy")
        .with_slow_start(Some(slow));
    (lb, EndpointSet::new(list))
}

fn share_of_new(lb: &mut LoadBalancer, set: &EndpointSet, now: Duration, n: usize) -> f64 {
    let mut rng = SplitMix64::new(9);
    let new = (0..n)
        .filter(|_| {
            lb.pick_at(set, None, &mut rng, now)
                .and_then(|s| s.endpoint())
                == Some(2)
        })
        .count();
    new as f64 / n as f64
}

#[test]
fn slow_start_ramps_a_new_endpoint_up_over_the_window() {
    let slow = SlowStart::new(Duration::from_secs(10));
    let t = Duration::from_secs;
    for policy in [LbPolicy::RoundRobin, LbPolicy::default()] {
        // At the start: the minimum 10 % of its weight, 0.1 / 2.1 of the picks.
        let (mut lb, set) = warming(policy.clone(), t(100), slow);
        let at_start = share_of_new(&mut lb, &set, t(100), 2_100);
        assert!(
            (at_start - 0.1 / 2.1).abs() < 0.01,
            "{policy:?}: {at_start}"
        );
        // Half-way: weight 0.5, 0.5 / 2.5 = 20 %.
        let (mut lb, set) = warming(policy.clone(), t(100), slow);
        let half = share_of_new(&mut lb, &set, t(105), 2_500);
        assert!((half - 0.2).abs() < 0.01, "{policy:?}: {half}");
        // Warm: a third, and the balancer leaves the schedule for plain rotation / P2C.
        let warm = share_of_new(&mut lb, &set, t(111), 3_000);
        assert!((warm - 1.0 / 3.0).abs() < 0.02, "{policy:?}: {warm}");
    }
}

#[test]
fn slow_start_aggression_and_minimum() {
    let slow = SlowStart {
        window: Duration::from_secs(10),
        aggression: 2.0,
        min_weight_percent: 50.0,
    };
    // 1 s in: (0.1)^(1/2) ≈ 0.316, under the 50 % minimum.
    assert_eq!(slow.factor(Duration::from_secs(1)), 0.5);
    // 6.4 s in: 0.64^(1/2) = 0.8.
    assert!((slow.factor(Duration::from_millis(6400)) - 0.8).abs() < 1e-12);
    let (mut lb, set) = warming(LbPolicy::RoundRobin, Duration::ZERO, slow);
    let got = share_of_new(&mut lb, &set, Duration::from_millis(6400), 2_800);
    assert!((got - 0.8 / 2.8).abs() < 0.01, "{got}");
}

#[test]
fn slow_start_is_ignored_by_other_policies() {
    let lb = LoadBalancer::new(LbPolicy::Random(Default::default()))
        .expect("random")
        .with_slow_start(Some(SlowStart::new(Duration::from_secs(1))));
    assert!(lb.slow_start().is_none());
}
