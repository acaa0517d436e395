//! Pick cost per policy at 3, 100 and 1000 endpoints, plus circuit-breaker
//! admission. Run: `cargo bench -p meshroute-lb --bench lb`.
//!
//! Each iteration is one pick on a warm balancer (schedules and tables are
//! built on the first pick, outside the timing, as they are rebuilt only on
//! health changes). Consistent-hash picks get a fresh key per iteration. PEAK_EWMA picks
//! compare latency estimates: every endpoint has answered once before the timing.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use meshroute_lb::{
    hash_key, CircuitBreaker, CircuitLimits, Endpoint, EndpointSet, HashAlgorithm, HashSource,
    LbPolicy, LoadBalancer, PeakEwmaConfig, RandomConfig, Rng, SplitMix64,
};

fn set(n: usize, weighted: bool) -> EndpointSet {
    EndpointSet::new(
        (0..n)
            .map(|i| {
                let w = if weighted { 1 + (i % 5) as u32 } else { 1 };
                Endpoint::new(format!(
                    "10.{}.{}.{}:8080",
                    i / 65536,
                    (i / 256) % 256,
                    i % 256
                ))
                .with_weight(w)
            })
            .collect(),
    )
}

fn policies() -> Vec<(&'static str, LbPolicy, bool)> {
    let hashed = |algorithm| LbPolicy::ConsistentHash {
        source: HashSource::HttpHeaderName("x-user".into()),
        algorithm,
    };
    vec![
        ("round_robin", LbPolicy::RoundRobin, false),
        ("round_robin_weighted", LbPolicy::RoundRobin, true),
        ("random", LbPolicy::Random(RandomConfig::default()), false),
        ("least_request_p2c", LbPolicy::default(), false),
        ("least_request_weighted", LbPolicy::default(), true),
        (
            "peak_ewma",
            LbPolicy::PeakEwma(PeakEwmaConfig::default()),
            false,
        ),
        ("ring_hash", hashed(HashAlgorithm::default()), false),
        (
            "maglev",
            hashed(HashAlgorithm::Maglev { table_size: 65537 }),
            false,
        ),
    ]
}

fn bench_pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for (name, policy, weighted) in policies() {
        for n in [3usize, 100, 1000] {
            let endpoints = set(n, weighted);
            // Some load so least-request has something to compare.
            let _load: Vec<_> = (0..n)
                .step_by(3)
                .map(|i| endpoints.start_request(i))
                .collect();
            let mut lb = LoadBalancer::new(policy.clone()).expect("valid policy");
            let mut rng = SplitMix64::new(1);
            let mut keys = SplitMix64::new(2);
            // PEAK_EWMA: every endpoint has answered once (1-7 ms), so picks compare estimates.
            for i in 0..n {
                let latency = Duration::from_millis(1 + (i % 7) as u64);
                lb.record_latency(&endpoints, i, latency, Duration::from_secs(1));
            }
            lb.pick(&endpoints, Some(0), &mut rng)
                .expect("warm-up pick");
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    let key = Some(keys.next_u64());
                    black_box(lb.pick(&endpoints, key, &mut rng))
                })
            });
        }
    }
    group.finish();
}

fn bench_support(c: &mut Criterion) {
    c.bench_function("hash_key/16B", |b| {
        b.iter(|| black_box(hash_key(black_box(b"user-1234567890a"))))
    });
    let cb = CircuitBreaker::new(CircuitLimits::default().with_max_connections(64));
    c.bench_function("circuit/acquire_release", |b| {
        b.iter(|| black_box(cb.try_acquire_request().is_ok()))
    });
    let n = 1000;
    c.bench_function("rebuild/ring_hash_1000", |b| {
        b.iter_batched(
            || set(n, false),
            |endpoints| {
                let mut lb = LoadBalancer::new(policies()[5].1.clone()).unwrap();
                black_box(lb.pick(&endpoints, Some(1), &mut SplitMix64::new(0)))
            },
            BatchSize::LargeInput,
        )
    });
    c.bench_function("rebuild/maglev_1000", |b| {
        b.iter_batched(
            || set(n, false),
            |endpoints| {
                let mut lb = LoadBalancer::new(policies()[6].1.clone()).unwrap();
                black_box(lb.pick(&endpoints, Some(1), &mut SplitMix64::new(0)))
            },
            BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, bench_pick, bench_support);
criterion_main!(benches);
