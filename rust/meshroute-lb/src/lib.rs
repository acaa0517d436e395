//! Endpoint load balancing, circuit breaking and outlier ejection, as Envoy
//! does them for Istio, in pure Rust.
//!
//! * [`LoadBalancer`] picks an endpoint of an [`EndpointSet`] with the
//!   DestinationRule policy ([`LbPolicy`]): ROUND_ROBIN (rotation, or an EDF
//!   schedule for unequal weights), RANDOM, LEAST_REQUEST (power of two
//!   choices; EDF on `weight / (active + 1)` for unequal weights; Istio's
//!   default), consistent hash by ring hash or Maglev, and PASSTHROUGH; beyond Istio,
//!   PEAK_EWMA (power of two choices on a peak-sensitive latency estimate × (active + 1), fed
//!   by [`LoadBalancer::record_latency`]).
//! * Envoy's priority levels ([`priority_load`]: overprovisioning factor 1.4, panic threshold)
//!   and locality-weighted balancing over an [`EndpointSet`] placed in locality groups, and
//!   Istio's `localityLbSetting` ([`locality`]: `distribute`, `failover`, `failoverPriority`)
//!   placing them relative to the calling proxy; slow start ([`SlowStart`], Istio `warmup`).
//! * [`CircuitBreaker`] enforces `connectionPool` limits per client, per
//!   cluster, and reports overflows as Envoy counts them.
//! * [`OutlierDetector`] ejects endpoints after consecutive errors and returns
//!   them at the sweep after their ejection time.
//! * [`Cluster`] ties the three together.
//! * [`istio::TrafficPolicy`] reads a DestinationRule traffic policy (Istio JSON) into them.
//!
//! Everything is deterministic: randomness comes through [`Rng`] (use
//! [`SplitMix64`] with a fixed seed in tests) and time is passed in as a
//! [`std::time::Duration`] since an arbitrary epoch. Nothing reads the
//! system clock.
//!
//! Load-balancing state is per balancer (one per cluster per process), where
//! Envoy keeps it per worker thread; rotations and schedules are therefore
//! process-wide here.
//!
//! ```
//! use std::time::Duration;
//! use meshroute_lb::{
//!     CircuitLimits, Cluster, Endpoint, LbPolicy, OutlierDetection, Outcome, SplitMix64,
//! };
//!
//! let endpoints = vec![Endpoint::new("10.0.0.1:8080"), Endpoint::new("10.0.0.2:8080")];
//! let mut cluster = Cluster::new(
//!     endpoints,
//!     LbPolicy::RoundRobin,
//!     CircuitLimits::default().with_max_connections(100),
//!     Some(OutlierDetection::default()),
//! )
//! .unwrap();
//! let mut rng = SplitMix64::new(7);
//!
//! let index = cluster.pick(None, &mut rng).and_then(|s| s.endpoint()).unwrap();
//! let permit = cluster.breaker().try_acquire_request().expect("within limits");
//! let _in_flight = cluster.endpoints().start_request(index);
//! // ... send the request, then report what happened:
//! cluster.record(index, Outcome::Http(200), Duration::from_secs(1));
//! drop(permit);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod active;
mod balancer;
mod circuit;
mod circuit_limits;
mod cluster;
mod edf;
mod endpoint;
mod endpoint_set;
mod hash;
pub mod istio;
mod least_request;
pub mod locality;
mod maglev;
mod outlier;
mod outlier_config;
mod peak_ewma;
mod policy;
mod priority;
mod random;
mod ring_hash;
mod rng;
mod round_robin;
mod warmup;

pub use active::{ActiveRequest, ActiveRequests};
pub use balancer::{LoadBalancer, Selection};
pub use circuit::{CircuitBreaker, CircuitStats, ConnectionPermit, RequestPermit, RetryPermit};
pub use circuit_limits::{CircuitLimits, Overflow, UNLIMITED};
pub use cluster::Cluster;
pub use endpoint::Endpoint;
pub use endpoint_set::EndpointSet;
pub use hash::{hash_key, HashSource};
pub use locality::{Locality, LocalityGroup, LocalityLbSetting, Placement};
pub use outlier::{Ejection, EjectionReason, OutlierDetector};
pub use outlier_config::{LocalOrigin, Outcome, OutlierDetection};
pub use peak_ewma::PENALTY as PEAK_EWMA_PENALTY;
pub use policy::{
    HashAlgorithm, LbConfigError, LbPolicy, LeastRequestConfig, PeakEwmaConfig, RandomConfig,
    SimpleLb, SlowStart, DEFAULT_MAGLEV_TABLE_SIZE, DEFAULT_MAXIMUM_RING_SIZE,
    DEFAULT_MINIMUM_RING_SIZE, DEFAULT_PEAK_EWMA_DECAY, MAX_MAGLEV_TABLE_SIZE,
};
pub use priority::{choose_priority, priority_load, PriorityLoad, OVERPROVISIONING_FACTOR};
pub use rng::{Rng, SplitMix64};
