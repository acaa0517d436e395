//! PEAK_EWMA (meshroute's latency-aware balancer): the estimate and the pick, on a fake clock.
//!
//! The statistical tests run a small closed-loop simulation — `CLIENTS` clients, each sending its
//! next request as soon as the previous one answered, every endpoint answering after its own
//! latency (±10 % jitter) — entirely on simulated time, seeded, so every run gives the same
//! figures; the tolerances stated in each test leave room for a change of seed, not for a
//! different behaviour.

mod common;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use common::endpoints;
use meshroute_lb::{
    ActiveRequest, CircuitLimits, Cluster, Endpoint, EndpointSet, LbConfigError, LbPolicy,
    LoadBalancer, LocalOrigin, Outcome, PeakEwmaConfig, Rng, SplitMix64, PEAK_EWMA_PENALTY,
};

const CLIENTS: usize = 8;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn peak() -> LbPolicy {
    LbPolicy::PeakEwma(PeakEwmaConfig::default())
}

/// Picks over time: (when, endpoint).
struct Run {
    picks: Vec<(Duration, usize)>,
}

impl Run {
    /// Share of the picks in `[from, to)` that went to `endpoint`.
    fn share(&self, endpoint: usize, from: Duration, to: Duration) -> f64 {
        let window: Vec<usize> = self
            .picks
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|&(_, i)| i)
            .collect();
        assert!(!window.is_empty(), "no picks in {from:?}..{to:?}");
        window.iter().filter(|&&i| i == endpoint).count() as f64 / window.len() as f64
    }

    fn count(&self, endpoint: usize, from: Duration, to: Duration) -> usize {
        self.picks
            .iter()
            .filter(|&&(t, i)| i == endpoint && t >= from && t < to)
            .count()
    }
}

/// `CLIENTS` closed-loop clients over `set` until `until`; `latency(endpoint, now)` is how long
/// an endpoint takes to answer a request sent at `now`. Every answer is reported to the balancer
/// (`record_latency`), as the proxyless client does.
fn simulate(
    policy: LbPolicy,
    set: &EndpointSet,
    latency: impl Fn(usize, Duration) -> Duration,
    until: Duration,
    seed: u64,
) -> Run {
    let mut lb = LoadBalancer::new(policy).expect("valid policy");
    let mut rng = SplitMix64::new(seed);
    let mut jitter = SplitMix64::new(seed ^ 0x5EED);
    let mut in_flight: Vec<Option<(ActiveRequest, Duration)>> =
        (0..CLIENTS).map(|_| None).collect();
    // (answer time, client): the next answer first.
    let mut answers: BinaryHeap<Reverse<(Duration, usize)>> = BinaryHeap::new();
    let mut picks = Vec::new();
    let mut send = |client: usize,
                    now: Duration,
                    lb: &mut LoadBalancer,
                    rng: &mut SplitMix64,
                    in_flight: &mut Vec<Option<(ActiveRequest, Duration)>>,
                    answers: &mut BinaryHeap<Reverse<(Duration, usize)>>| {
        let index = lb
            .pick_at(set, None, rng, now)
            .and_then(|s| s.endpoint())
            .expect("an endpoint");
        picks.push((now, index));
        let scale = 0.9 + 0.2 * (jitter.next_u64() as f64 / u64::MAX as f64);
        let took = latency(index, now).mul_f64(scale);
        in_flight[client] = Some((set.start_request(index), took));
        answers.push(Reverse((now + took, client)));
    };
    for client in 0..CLIENTS {
        // Clients start 1 ms apart.
        let start = ms(client as u64);
        send(
            client,
            start,
            &mut lb,
            &mut rng,
            &mut in_flight,
            &mut answers,
        );
    }
    while let Some(Reverse((now, client))) = answers.pop() {
        if now >= until {
            break;
        }
        let (request, took) = in_flight[client].take().expect("a request in flight");
        let index = request.endpoint();
        drop(request);
        lb.record_latency(set, index, took, now);
        send(client, now, &mut lb, &mut rng, &mut in_flight, &mut answers);
    }
    Run { picks }
}

fn four() -> EndpointSet {
    EndpointSet::new(endpoints(&[1, 1, 1, 1]))
}

/// Endpoint 3 is 10 times slower than the others.
fn one_slow(index: usize, _now: Duration) -> Duration {
    if index == 3 {
        ms(100)
    } else {
        ms(10)
    }
}

#[test]
fn a_slow_endpoints_share_drops_far_below_least_requests() {
    let (from, to) = (Duration::from_secs(5), Duration::from_secs(30));
    for seed in [1, 2, 3] {
        let set = four();
        let ewma = simulate(peak(), &set, one_slow, to, seed).share(3, from, to);
        let set = four();
        let lr = simulate(LbPolicy::default(), &set, one_slow, to, seed).share(3, from, to);
        eprintln!("seed {seed}: slow endpoint share, PEAK_EWMA {ewma:.4}, LEAST_REQUEST {lr:.4}");
        // A quarter without load awareness; least request still sends it a few percent (it
        // only sees the slow endpoint's longer queue); peak EWMA only probes it.
        assert!(
            ewma < 0.01,
            "seed {seed}: PEAK_EWMA gave the slow endpoint {ewma:.4}"
        );
        assert!(
            lr > 0.02,
            "seed {seed}: LEAST_REQUEST gave the slow endpoint {lr:.4}"
        );
        assert!(ewma * 4.0 < lr, "seed {seed}: {ewma:.4} vs {lr:.4}");
    }
}

#[test]
fn a_slow_endpoint_is_still_probed_as_its_estimate_decays() {
    let set = four();
    let run = simulate(peak(), &set, one_slow, Duration::from_secs(120), 7);
    // Between probes the slow endpoint's estimate decays with τ = 10 s until its cost falls
    // under a fast endpoint's: a probe every few tens of seconds, never nothing.
    let probes = run.count(3, Duration::from_secs(10), Duration::from_secs(120));
    eprintln!("probes of the slow endpoint in 110 s: {probes}");
    assert!((2..=60).contains(&probes), "{probes} probes");
}

#[test]
fn an_endpoint_that_gets_fast_again_recovers_its_share() {
    let set = four();
    let healed_at = Duration::from_secs(20);
    let latency = |index: usize, now: Duration| {
        if index == 3 && now < healed_at {
            ms(100)
        } else {
            ms(10)
        }
    };
    let run = simulate(peak(), &set, latency, Duration::from_secs(120), 11);
    let slow = run.share(3, Duration::from_secs(5), healed_at);
    let healed = run.share(3, Duration::from_secs(80), Duration::from_secs(120));
    eprintln!("endpoint 3: share {slow:.4} while slow, {healed:.4} from 60 s after it healed");
    assert!(slow < 0.02, "{slow}");
    // Back to a fair quarter, ±0.04 (the estimate has had 6 τ to forget the 100 ms).
    assert!((healed - 0.25).abs() <= 0.04, "{healed}");
}

#[test]
fn without_slow_endpoints_the_load_is_even() {
    let set = four();
    let run = simulate(peak(), &set, |_, _| ms(10), Duration::from_secs(20), 5);
    for i in 0..4 {
        let share = run.share(i, Duration::from_secs(2), Duration::from_secs(20));
        assert!((share - 0.25).abs() <= 0.03, "endpoint {i}: {share}");
    }
}

#[test]
fn a_new_endpoint_gets_one_request_until_it_has_answered() {
    let old = four();
    let mut lb = LoadBalancer::new(peak()).expect("valid");
    let mut rng = SplitMix64::new(3);
    let now = Duration::from_secs(1);
    for i in 0..4 {
        lb.record_latency(&old, i, ms(10), now);
    }
    // A membership change: the same four addresses and one more (a new set, as on an update).
    let mut grown = endpoints(&[1, 1, 1, 1]);
    grown.push(Endpoint::new("10.9.9.9:8080"));
    let set = EndpointSet::new(grown);
    let mut held: Vec<ActiveRequest> = Vec::new();
    let mut to_new = 0;
    for _ in 0..40 {
        let index = lb
            .pick_at(&set, None, &mut rng, now)
            .and_then(|s| s.endpoint())
            .expect("pick");
        to_new += usize::from(index == 4);
        held.push(set.start_request(index)); // nothing answers: the load only grows
    }
    assert_eq!(
        to_new, 1,
        "the new endpoint got {to_new} of 40 requests in flight"
    );
    // The known endpoints kept their estimates across the new set (by address).
    assert_eq!(lb.latency_estimate(&set, 0, now), Some(ms(10)));
    assert_eq!(lb.latency_estimate(&set, 4, now), None);
    // Its first answer is fast: from then on it is an endpoint like the others, and the least
    // loaded (one request in flight against about ten).
    lb.record_latency(&set, 4, ms(10), now);
    let index = (0..20)
        .filter(|_| {
            lb.pick_at(&set, None, &mut rng, now)
                .and_then(|s| s.endpoint())
                == Some(4)
        })
        .count();
    assert!(
        index >= 5,
        "picked {index} of 20 times once known and least loaded"
    );
}

#[test]
fn the_two_candidates_differ_so_the_worse_of_two_is_never_chosen() {
    let set = EndpointSet::new(endpoints(&[1, 1]));
    let mut lb = LoadBalancer::new(peak()).expect("valid");
    let now = Duration::from_secs(1);
    lb.record_latency(&set, 0, ms(50), now);
    lb.record_latency(&set, 1, ms(5), now);
    let mut rng = SplitMix64::new(9);
    for _ in 0..100 {
        assert_eq!(
            lb.pick_at(&set, None, &mut rng, now)
                .and_then(|s| s.endpoint()),
            Some(1)
        );
    }
    // Load on the fast one: 5 ms × 11 > 50 ms × 1.
    let _busy: Vec<_> = (0..10).map(|_| set.start_request(1)).collect();
    assert_eq!(
        lb.pick_at(&set, None, &mut rng, now)
            .and_then(|s| s.endpoint()),
        Some(0)
    );
}

#[test]
fn weights_divide_the_cost() {
    let set = EndpointSet::new(endpoints(&[1, 4]));
    let mut lb = LoadBalancer::new(peak()).expect("valid");
    let now = Duration::from_secs(1);
    lb.record_latency(&set, 0, ms(10), now);
    lb.record_latency(&set, 1, ms(30), now); // 30 ms / 4 < 10 ms / 1
    let mut rng = SplitMix64::new(1);
    assert_eq!(
        lb.pick_at(&set, None, &mut rng, now)
            .and_then(|s| s.endpoint()),
        Some(1)
    );
}

#[test]
fn estimates_survive_ejection_and_decay_on_the_callers_clock() {
    let mut set = four();
    let mut lb = LoadBalancer::new(peak()).expect("valid");
    let mut rng = SplitMix64::new(2);
    lb.record_latency(&set, 2, ms(400), Duration::from_secs(10));
    set.set_ejected(2, true);
    lb.pick_at(&set, None, &mut rng, Duration::from_secs(10)); // rebuilds without endpoint 2
    set.set_ejected(2, false);
    lb.pick_at(&set, None, &mut rng, Duration::from_secs(10));
    assert_eq!(
        lb.latency_estimate(&set, 2, Duration::from_secs(10)),
        Some(ms(400))
    );
    // τ later, e^-1 of it; pick() without a time uses the latest time given.
    let later = lb
        .latency_estimate(&set, 2, Duration::from_secs(20))
        .expect("known");
    assert!(
        (later.as_secs_f64() - 0.4 * (-1f64).exp()).abs() < 1e-9,
        "{later:?}"
    );
    lb.pick(&set, None, &mut rng);
}

#[test]
fn an_attempt_without_a_response_counts_as_at_least_the_failure_latency() {
    let mut cluster =
        Cluster::new(endpoints(&[1, 1]), peak(), CircuitLimits::default(), None).expect("valid");
    let now = Duration::from_secs(1);
    cluster.record_latency(
        0,
        Outcome::LocalOrigin(LocalOrigin::ConnectFailed),
        ms(1),
        now,
    );
    cluster.record_latency(1, Outcome::Http(503), ms(1), now);
    let estimate = |c: &Cluster, i| c.balancer().latency_estimate(c.endpoints(), i, now);
    assert_eq!(estimate(&cluster, 0), Some(Duration::from_secs(1)));
    assert_eq!(
        estimate(&cluster, 1),
        Some(ms(1)),
        "an answer, even a 503, is its latency"
    );
    let mut rng = SplitMix64::new(4);
    assert_eq!(
        cluster
            .pick_at(None, &mut rng, now)
            .and_then(|s| s.endpoint()),
        Some(1)
    );
}

#[test]
fn other_policies_ignore_latencies_and_a_zero_decay_is_refused() {
    let set = four();
    let mut lb = LoadBalancer::new(LbPolicy::RoundRobin).expect("valid");
    lb.record_latency(&set, 0, ms(10), Duration::ZERO);
    assert_eq!(lb.latency_estimate(&set, 0, Duration::ZERO), None);
    let zero = PeakEwmaConfig {
        decay: Duration::ZERO,
        ..PeakEwmaConfig::default()
    };
    assert_eq!(
        LoadBalancer::new(LbPolicy::PeakEwma(zero)).err(),
        Some(LbConfigError::ZeroDecay(Duration::ZERO))
    );
    // An endpoint that never answered, with a request in flight, loses against any estimate.
    let set = EndpointSet::new(endpoints(&[1, 1]));
    let mut lb = LoadBalancer::new(peak()).expect("valid");
    let now = Duration::from_secs(1);
    lb.record_latency(&set, 1, Duration::from_secs(3600), now);
    let _held: Vec<_> = (0..100).map(|_| set.start_request(1)).collect();
    let _first = set.start_request(0);
    let mut rng = SplitMix64::new(1);
    let cost_1 = 3600.0 * 101.0;
    assert!(cost_1 < PEAK_EWMA_PENALTY);
    assert_eq!(
        lb.pick_at(&set, None, &mut rng, now)
            .and_then(|s| s.endpoint()),
        Some(1)
    );
}
