//! ROUND_ROBIN, RANDOM, LEAST_REQUEST, PASSTHROUGH, health and panic mode.

mod common;

use common::{endpoints, equal_set, expected_uniform, histogram, pick_many};
use meshroute_lb::{
    EndpointSet, LbConfigError, LbPolicy, LeastRequestConfig, LoadBalancer, RandomConfig, Rng,
    Selection, SimpleLb, SplitMix64,
};

fn lb(policy: LbPolicy) -> LoadBalancer {
    LoadBalancer::new(policy).expect("valid policy")
}

#[test]
fn round_robin_rotates_in_order() {
    let set = equal_set(3);
    let mut b = lb(LbPolicy::RoundRobin);
    let picks = pick_many(&mut b, &set, 7, &mut SplitMix64::new(0));
    assert_eq!(picks, vec![0, 1, 2, 0, 1, 2, 0]);
}

#[test]
fn round_robin_skips_ejected_and_keeps_its_place() {
    let mut set = equal_set(4);
    let mut b = lb(LbPolicy::RoundRobin);
    let mut rng = SplitMix64::new(0);
    assert_eq!(pick_many(&mut b, &set, 2, &mut rng), vec![0, 1]);
    set.set_ejected(2, true);
    // Healthy list is [0, 1, 3]; the rotation counter (2) carries on.
    assert_eq!(pick_many(&mut b, &set, 4, &mut rng), vec![3, 0, 1, 3]);
}

#[test]
fn weighted_round_robin_is_exact_edf() {
    let set = EndpointSet::new(endpoints(&[1, 2, 3]));
    let mut b = lb(LbPolicy::RoundRobin);
    let picks = pick_many(&mut b, &set, 6000, &mut SplitMix64::new(0));
    assert_eq!(&picks[..6], &[2, 1, 2, 0, 1, 2], "interleaved, not bunched");
    assert_eq!(histogram(&picks, 3), vec![1000, 2000, 3000]);
}

#[test]
fn zero_weight_counts_as_one() {
    let set = EndpointSet::new(endpoints(&[0, 1]));
    let mut b = lb(LbPolicy::RoundRobin);
    let picks = pick_many(&mut b, &set, 4, &mut SplitMix64::new(0));
    assert_eq!(picks, vec![0, 1, 0, 1], "equal weights => plain rotation");
}

#[test]
fn random_picks_are_the_seeded_stream() {
    let set = equal_set(5);
    let mut b = lb(LbPolicy::Random(RandomConfig::default()));
    let picks = pick_many(&mut b, &set, 50, &mut SplitMix64::new(42));
    assert_eq!(picks, expected_uniform(42, 5, 50));
}

#[test]
fn random_ignores_weights_like_envoy_unless_asked() {
    let set = EndpointSet::new(endpoints(&[1, 9]));
    let mut uniform = lb(LbPolicy::Random(RandomConfig::default()));
    let h = histogram(
        &pick_many(&mut uniform, &set, 20_000, &mut SplitMix64::new(1)),
        2,
    );
    assert!((h[0] as i64 - 10_000).abs() < 400, "uniform: {h:?}");

    let mut weighted = lb(LbPolicy::Random(RandomConfig {
        honor_weights: true,
    }));
    let h = histogram(
        &pick_many(&mut weighted, &set, 20_000, &mut SplitMix64::new(1)),
        2,
    );
    // Expect 2000 ± 3 sigma (sigma = sqrt(20000 * 0.1 * 0.9) ≈ 42).
    assert!((h[0] as i64 - 2_000).abs() < 130, "weighted: {h:?}");
}

#[test]
fn least_request_p2c_prefers_the_less_loaded_host() {
    let set = equal_set(2);
    let _busy: Vec<_> = (0..3).map(|_| set.start_request(0)).collect();
    let mut b = lb(LbPolicy::default());
    let picks = pick_many(&mut b, &set, 4000, &mut SplitMix64::new(9));
    // Host 0 wins only when both samples are host 0: probability 1/4.
    let h = histogram(&picks, 2);
    assert!((h[0] as i64 - 1000).abs() < 90, "{h:?}");
}

#[test]
fn least_request_p2c_matches_the_reference_loop() {
    let set = equal_set(4);
    let active = [3u32, 0, 1, 2];
    let _guards: Vec<_> = active
        .iter()
        .enumerate()
        .flat_map(|(i, &n)| (0..n).map(move |_| i))
        .map(|i| set.start_request(i))
        .collect();
    let mut b = lb(LbPolicy::LeastRequest(LeastRequestConfig::default()));
    let picks = pick_many(&mut b, &set, 200, &mut SplitMix64::new(5));
    // Envoy's loop: first sample is the candidate; a later sample replaces it
    // only with strictly fewer active requests.
    let mut r = SplitMix64::new(5);
    let expected: Vec<usize> = (0..200)
        .map(|_| {
            let a = (r.next_u64() % 4) as usize;
            let b = (r.next_u64() % 4) as usize;
            if active[b] < active[a] {
                b
            } else {
                a
            }
        })
        .collect();
    assert_eq!(picks, expected);
}

#[test]
fn least_request_unequal_weights_use_load_adjusted_edf() {
    let set = EndpointSet::new(endpoints(&[1, 3]));
    let mut b = lb(LbPolicy::default());
    let idle = histogram(&pick_many(&mut b, &set, 4000, &mut SplitMix64::new(0)), 2);
    assert_eq!(idle, vec![1000, 3000], "no load: plain weighted EDF");

    // Two requests in flight on the heavy host: 3 / (2 + 1) = 1, same as host 0.
    let set = EndpointSet::new(endpoints(&[1, 3]));
    let _g = (set.start_request(1), set.start_request(1));
    let mut b = lb(LbPolicy::default());
    let loaded = histogram(&pick_many(&mut b, &set, 4000, &mut SplitMix64::new(0)), 2);
    assert!((loaded[0] as i64 - 2000).abs() <= 2, "{loaded:?}");
}

#[test]
fn least_conn_and_unspecified_are_least_request() {
    for simple in [SimpleLb::LeastConn, SimpleLb::Unspecified] {
        assert!(matches!(LbPolicy::from(simple), LbPolicy::LeastRequest(_)));
    }
}

#[test]
fn passthrough_selects_nothing() {
    let mut b = lb(LbPolicy::Passthrough);
    let set = equal_set(0);
    assert_eq!(
        b.pick(&set, None, &mut SplitMix64::new(0)),
        Some(Selection::Passthrough)
    );
    assert_eq!(Selection::Passthrough.endpoint(), None);
}

#[test]
fn all_ejected_without_panic_is_no_healthy_upstream() {
    let mut set = equal_set(3);
    for i in 0..3 {
        set.set_ejected(i, true);
    }
    for policy in [LbPolicy::RoundRobin, LbPolicy::default()] {
        let mut b = lb(policy);
        assert_eq!(b.pick(&set, None, &mut SplitMix64::new(0)), None);
    }
    let mut b = lb(LbPolicy::RoundRobin);
    assert_eq!(b.pick(&equal_set(0), None, &mut SplitMix64::new(0)), None);
}

#[test]
fn panic_threshold_uses_all_endpoints() {
    let mut set = equal_set(4);
    set.set_ejected(0, true);
    set.set_ejected(1, true);
    set.set_ejected(2, true);
    // 25% healthy < 50% threshold: panic, rotate over all four.
    let mut b = lb(LbPolicy::RoundRobin).with_panic_threshold(50);
    assert!(b.in_panic(&set));
    let sel = b.pick(&set, None, &mut SplitMix64::new(0));
    assert_eq!(
        sel,
        Some(Selection::Endpoint {
            index: 0,
            panic: true
        })
    );
    // Back to 50% healthy: not below the threshold, so no panic.
    set.set_ejected(0, false);
    assert!(!b.in_panic(&set));
    let picks = pick_many(&mut b, &set, 4, &mut SplitMix64::new(0));
    assert!(picks.iter().all(|&p| p == 0 || p == 3), "{picks:?}");
}

#[test]
fn invalid_policies_fail_at_construction() {
    let lr = LbPolicy::LeastRequest(LeastRequestConfig {
        choice_count: 1,
        ..Default::default()
    });
    assert_eq!(
        LoadBalancer::new(lr).unwrap_err(),
        LbConfigError::ChoiceCountTooSmall(1)
    );
    let lr = LbPolicy::LeastRequest(LeastRequestConfig {
        active_request_bias: -1.0,
        ..Default::default()
    });
    assert!(matches!(
        LoadBalancer::new(lr),
        Err(LbConfigError::InvalidBias(_))
    ));
}

#[test]
fn least_request_reads_caller_counts_with_pick_with_active() {
    // The set's own gauges say nothing; the caller's counts (Envoy's rq_active) load endpoint 1.
    let set = equal_set(2);
    let mut b = lb(LbPolicy::LeastRequest(LeastRequestConfig::default()));
    let mut rng = SplitMix64::new(3);
    let loaded = |index: usize| if index == 1 { 5 } else { 0 };
    let picks: Vec<usize> = (0..200)
        .map(|_| {
            b.pick_with_active(&set, None, &mut rng, loaded)
                .and_then(Selection::endpoint)
                .expect("a pick")
        })
        .collect();
    // P2C picks 1 only when both samples are 1: about a quarter of the time.
    let ones = picks.iter().filter(|&&i| i == 1).count();
    assert!(
        (25..=75).contains(&ones),
        "endpoint 1 picked {ones} times of 200"
    );
    // Other policies ignore the counts.
    let mut rr = lb(LbPolicy::RoundRobin);
    let rotation: Vec<usize> = (0..4)
        .map(|_| {
            rr.pick_with_active(&set, None, &mut rng, loaded)
                .and_then(Selection::endpoint)
                .expect("a pick")
        })
        .collect();
    assert_eq!(rotation, vec![0, 1, 0, 1]);
}
