//! Outlier detection: passive health checking by consecutive errors.
//!
//! Envoy, as Istio configures it: consecutive-error ejection happens "as
//! soon as the threshold is hit"; ejected hosts return at the first sweep
//! (every `interval`) after their ejection time, which is `base × n` for the
//! n-th ejection in a row, capped at max(300s, base). While a returned host
//! stays healthy, each sweep at least `interval` after its return lowers n
//! by one again. No more than `maxEjectionPercent` of the hosts are ejected,
//! except that one host may always be ejected. Success-rate ejection is
//! disabled by Istio and not modelled.
//!
//! Detection runs independently in every client; ejection state lives in the
//! [`EndpointSet`] so the balancer sees it directly.

use std::time::Duration;

use crate::endpoint_set::EndpointSet;
use crate::outlier_config::{is_gateway_error, LocalOrigin, Outcome, OutlierDetection};

/// Why a host was ejected (Envoy `OutlierEjectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EjectionReason {
    /// `consecutive5xxErrors` reached.
    Consecutive5xx,
    /// `consecutiveGatewayErrors` reached.
    ConsecutiveGatewayFailure,
    /// `consecutiveLocalOriginFailures` reached (split mode).
    ConsecutiveLocalOriginFailure,
}

/// An ejection that just happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ejection {
    /// The ejected endpoint.
    pub endpoint: usize,
    /// The threshold that was hit.
    pub reason: EjectionReason,
    /// How long it stays out (it returns at the first sweep after this).
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
struct Monitor {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    consecutive_local: u32,
    // Ejections in a row: the ejection-time multiplier.
    multiplier: u32,
    ejected_until: Option<Duration>,
    returned_at: Option<Duration>,
}

impl Monitor {
    fn reset_counters(&mut self) {
        self.consecutive_5xx = 0;
        self.consecutive_gateway = 0;
        self.consecutive_local = 0;
    }
}

/// Per-cluster outlier detector for one client.
#[derive(Debug, Clone)]
pub struct OutlierDetector {
    config: OutlierDetection,
    monitors: Vec<Monitor>,
    ejections_overflow: u64,
}

/// Hit `threshold` (0 = disabled) with this increment?
fn bump(counter: &mut u32, threshold: u32) -> bool {
    *counter = counter.saturating_add(1);
    threshold != 0 && *counter >= threshold
}

impl OutlierDetector {
    /// A detector for a set of `endpoints` hosts, none ejected.
    pub fn new(config: OutlierDetection, endpoints: usize) -> Self {
        Self {
            config,
            monitors: vec![Monitor::default(); endpoints],
            ejections_overflow: 0,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &OutlierDetection {
        &self.config
    }

    /// The ejection-time multiplier of `endpoint` (ejections in a row).
    pub fn multiplier(&self, endpoint: usize) -> u32 {
        self.monitors[endpoint].multiplier
    }

    /// When `endpoint`'s ejection time is up (it returns at the next sweep).
    pub fn ejected_until(&self, endpoint: usize) -> Option<Duration> {
        self.monitors[endpoint].ejected_until
    }

    /// Ejections refused because of `maxEjectionPercent` (Envoy
    /// `outlier_detection.ejections_overflow`).
    pub fn ejections_overflow(&self) -> u64 {
        self.ejections_overflow
    }

    /// Learn from one request's `outcome` on `endpoint` at time `now`; eject
    /// it at once if a threshold is reached and the cap allows.
    pub fn record(
        &mut self,
        set: &mut EndpointSet,
        endpoint: usize,
        outcome: Outcome,
        now: Duration,
    ) -> Option<Ejection> {
        let cfg = self.config;
        let m = &mut self.monitors[endpoint];
        let reason = if cfg.split_external_local_origin_errors {
            match outcome {
                Outcome::LocalOrigin(LocalOrigin::ConnectSuccess) => {
                    m.consecutive_local = 0;
                    None
                }
                Outcome::LocalOrigin(_) => bump(
                    &mut m.consecutive_local,
                    cfg.consecutive_local_origin_failures,
                )
                .then_some(EjectionReason::ConsecutiveLocalOriginFailure),
                Outcome::Http(status) => Self::external(m, &cfg, status),
            }
        } else {
            outcome
                .as_status()
                .and_then(|status| Self::external(m, &cfg, status))
        }?;
        self.eject(set, endpoint, reason, now)
    }

    /// Count an upstream status; a non-5xx resets both counters.
    fn external(m: &mut Monitor, cfg: &OutlierDetection, status: u16) -> Option<EjectionReason> {
        if !(500..600).contains(&status) {
            m.consecutive_5xx = 0;
            m.consecutive_gateway = 0;
            return None;
        }
        let gateway = if is_gateway_error(status) {
            bump(&mut m.consecutive_gateway, cfg.consecutive_gateway_errors)
        } else {
            // A non-gateway 5xx breaks a run of gateway errors.
            m.consecutive_gateway = 0;
            false
        };
        let any_5xx = bump(&mut m.consecutive_5xx, cfg.consecutive_5xx_errors);
        if gateway {
            Some(EjectionReason::ConsecutiveGatewayFailure)
        } else if any_5xx {
            Some(EjectionReason::Consecutive5xx)
        } else {
            None
        }
    }

    fn eject(
        &mut self,
        set: &mut EndpointSet,
        endpoint: usize,
        reason: EjectionReason,
        now: Duration,
    ) -> Option<Ejection> {
        if set.is_ejected(endpoint) {
            return None;
        }
        // The counters restart whether or not the cap lets the ejection
        // through, so the host needs a fresh run of errors to try again.
        self.monitors[endpoint].reset_counters();
        let (ejected, total) = (set.ejected_count() as u64, set.len() as u64);
        let within_cap = (ejected + 1) * 100 <= u64::from(self.config.max_ejection_percent) * total;
        if !(within_cap || ejected == 0) {
            self.ejections_overflow += 1;
            return None;
        }
        let cfg = &self.config;
        let m = &mut self.monitors[endpoint];
        // Stop growing the multiplier once the cap is reached, so a host that
        // keeps failing doesn't need many healthy intervals to come back down.
        if cfg.base_ejection_time * m.multiplier < cfg.max_ejection_time() {
            m.multiplier += 1;
        }
        let duration = (cfg.base_ejection_time * m.multiplier).min(cfg.max_ejection_time());
        m.ejected_until = Some(now + duration);
        set.set_ejected(endpoint, true);
        Some(Ejection {
            endpoint,
            reason,
            duration,
        })
    }

    /// The periodic sweep (call every `interval`): return hosts whose
    /// ejection time is up, and decay the multiplier of hosts that stayed
    /// healthy. Returns the endpoints brought back.
    pub fn sweep(&mut self, set: &mut EndpointSet, now: Duration) -> Vec<usize> {
        let interval = self.config.interval;
        let mut returned = Vec::new();
        for (i, m) in self.monitors.iter_mut().enumerate() {
            match m.ejected_until {
                Some(until) if until <= now => {
                    m.ejected_until = None;
                    m.returned_at = Some(now);
                    m.reset_counters();
                    set.set_ejected(i, false);
                    returned.push(i);
                }
                Some(_) => {}
                None => {
                    if m.multiplier > 0
                        && m.returned_at
                            .is_some_and(|t| now.saturating_sub(t) >= interval)
                    {
                        m.multiplier -= 1;
                    }
                }
            }
        }
        returned
    }
}
