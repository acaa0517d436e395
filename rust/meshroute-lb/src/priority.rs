//! Priority levels, Envoy's half of locality load balancing: how much of the traffic each
//! priority gets, and when a priority is in panic.
//!
//! Envoy gives each priority a *health*: its healthy hosts over its hosts, times the
//! overprovisioning factor 1.4, capped at 100 %. Priorities take the load in order, each as much
//! as its health allows (a priority 80 % healthy still takes everything: 0.8 × 1.4 > 1), the rest
//! spilling to the next; when the healths add up to less than 100, the loads are scaled up in
//! proportion (normalized total availability). A priority is in panic — balanced over all its
//! hosts, healthy or not — when the total availability is under 100 and its healthy share is
//! below the panic threshold; when every priority is in panic, the load follows the host counts.
//! With threshold 0 (Istio's default) and no healthy host anywhere, priority 0 gets everything,
//! and no host can be picked.
//!
//! Integer arithmetic as Envoy's (`LoadBalancerBase::recalculatePerPriorityState`,
//! `recalculatePerPriorityPanic`, `recalculateLoadInTotalPanic`, `choosePriority`), so the same
//! hosts give the same percentages.

/// Envoy's default overprovisioning factor, in percent (1.4).
pub const OVERPROVISIONING_FACTOR: u64 = 140;

/// One priority's hosts: `(healthy, total)`.
pub(crate) type Counts = (usize, usize);

/// The load of each priority (percentages adding up to 100) and which are in panic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriorityLoad {
    /// Percent of the requests each priority gets.
    pub load: Vec<u32>,
    /// Whether each priority is in panic (balanced over all its hosts).
    pub panic: Vec<bool>,
}

/// A priority's health: `min(100, 1.4 × 100 × healthy / total)`, 0 without hosts.
pub(crate) fn health(healthy: usize, total: usize) -> u32 {
    if total == 0 {
        return 0;
    }
    let h = OVERPROVISIONING_FACTOR * healthy as u64 / total as u64;
    u32::try_from(h.min(100)).unwrap_or(100)
}

/// Loads and panic flags for priorities with these `(healthy, total)` host counts, with Envoy's
/// `healthy_panic_threshold` `panic_threshold` (percent; 0 disables panic).
///
/// ```
/// use meshroute_lb::priority_load;
/// // 3 of 5 hosts healthy at priority 0: 84 % health, 16 % spills to priority 1.
/// let p = priority_load(&[(3, 5), (2, 2)], 0);
/// assert_eq!(p.load, vec![84, 16]);
/// ```
pub fn priority_load(counts: &[(usize, usize)], panic_threshold: u32) -> PriorityLoad {
    let n = counts.len();
    let mut out = PriorityLoad {
        load: vec![0; n],
        panic: vec![false; n],
    };
    if n == 0 {
        return out;
    }
    let healths: Vec<u32> = counts.iter().map(|&(h, t)| health(h, t)).collect();
    let total = healths.iter().map(|&h| u64::from(h)).sum::<u64>().min(100) as u32;
    // Envoy's `distributeLoad`: each priority its health, scaled to the total availability.
    let mut remaining = 100u32;
    let mut first = None;
    for (i, &h) in healths.iter().enumerate() {
        if let Some(scaled) = (h * 100).checked_div(total) {
            if first.is_none() && h > 0 {
                first = Some(i);
            }
            out.load[i] = remaining.min(scaled);
            remaining -= out.load[i];
        }
    }
    if let (Some(first), true) = (first, remaining > 0) {
        out.load[first] += remaining;
    }
    let threshold = panic_threshold.min(100);
    if threshold == 0 && total == 0 {
        out.load[0] = 100;
        return out;
    }
    let mut total_panic = true;
    for (i, &(healthy, hosts)) in counts.iter().enumerate() {
        out.panic[i] = total != 100 && in_panic(healthy, hosts, threshold);
        total_panic &= out.panic[i];
    }
    if total_panic {
        load_in_total_panic(counts, &mut out.load);
    }
    out
}

/// Envoy's `isHostSetInPanic`: the healthy share strictly below the threshold.
fn in_panic(healthy: usize, hosts: usize, threshold: u32) -> bool {
    let percent = if hosts == 0 {
        0.0
    } else {
        100.0 * healthy as f64 / hosts as f64
    };
    percent < f64::from(threshold)
}

/// Every priority in panic: the load follows the host counts, the remainder to the first
/// priority with hosts.
fn load_in_total_panic(counts: &[Counts], load: &mut [u32]) {
    let hosts: u64 = counts.iter().map(|&(_, t)| t as u64).sum();
    if hosts == 0 {
        load.fill(0);
        load[0] = 100;
        return;
    }
    let mut remaining = 100u32;
    let mut first = None;
    for (i, &(_, t)) in counts.iter().enumerate() {
        if first.is_none() && t > 0 {
            first = Some(i);
        }
        load[i] = u32::try_from(100 * t as u64 / hosts).unwrap_or(100);
        remaining -= load[i];
    }
    if let Some(first) = first {
        load[first] += remaining;
    }
}

/// The priority a draw selects: `draw % 100 + 1` against the cumulative loads (Envoy's
/// `choosePriority`).
pub fn choose_priority(load: &[u32], draw: u64) -> usize {
    let point = (draw % 100 + 1) as u32;
    let mut sum = 0;
    for (p, &l) in load.iter().enumerate() {
        sum += l;
        if point <= sum {
            return p;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_priority_zero_takes_everything() {
        assert_eq!(priority_load(&[(4, 4), (4, 4)], 0).load, vec![100, 0]);
        // 80 % healthy × 1.4 = 112 %: still all of it.
        assert_eq!(priority_load(&[(4, 5), (4, 4)], 0).load, vec![100, 0]);
    }

    #[test]
    fn traffic_spills_as_the_healthy_share_drops() {
        // Envoy's documentation example: P0 health 50 % ⇒ 70 %, the rest to P1.
        assert_eq!(priority_load(&[(5, 10), (10, 10)], 0).load, vec![70, 30]);
        assert_eq!(priority_load(&[(1, 10), (10, 10)], 0).load, vec![14, 86]);
        assert_eq!(priority_load(&[(0, 10), (10, 10)], 0).load, vec![0, 100]);
        // Three levels: P0 20 % healthy (28), P1 40 % (56), P2 takes the remaining 16.
        assert_eq!(
            priority_load(&[(2, 10), (4, 10), (10, 10)], 0).load,
            vec![28, 56, 16]
        );
    }

    #[test]
    fn loads_are_scaled_when_the_total_availability_is_short() {
        // Health 14 + 28 = 42: scaled to 33 / 66, the rounding remainder to the first.
        let p = priority_load(&[(1, 10), (2, 10)], 0);
        assert_eq!(p.load, vec![34, 66]);
        assert_eq!(p.panic, vec![false, false], "threshold 0: no panic");
    }

    #[test]
    fn panic_per_priority_and_total_panic() {
        // P0 10 % healthy < 50 %: panic there; P1 healthy: total availability 14 + 140 ⇒ 100,
        // so no panic at all.
        let p = priority_load(&[(1, 10), (10, 10)], 50);
        assert_eq!(p.panic, vec![false, false]);
        // Total availability 14 + 28 < 100 and both under 50 %: total panic, by host counts.
        let p = priority_load(&[(1, 10), (2, 30)], 50);
        assert_eq!(p.panic, vec![true, true]);
        assert_eq!(p.load, vec![25, 75]);
        // One priority: 25 % healthy (35 % health) under 50 %.
        assert_eq!(priority_load(&[(1, 4)], 50).panic, vec![true]);
        // 75 % healthy: 105 % health, full availability, never panic (even under 80 %).
        assert_eq!(priority_load(&[(3, 4)], 80).panic, vec![false]);
    }

    #[test]
    fn nothing_healthy() {
        assert_eq!(
            priority_load(&[(0, 3), (0, 2)], 0),
            PriorityLoad {
                load: vec![100, 0],
                panic: vec![false, false]
            }
        );
        let p = priority_load(&[(0, 3), (0, 1)], 1);
        assert_eq!((p.load, p.panic), (vec![75, 25], vec![true, true]));
    }

    #[test]
    fn choosing_a_priority() {
        let load = [70, 30, 0];
        assert_eq!(choose_priority(&load, 0), 0); // point 1
        assert_eq!(choose_priority(&load, 69), 0); // point 70
        assert_eq!(choose_priority(&load, 70), 1);
        assert_eq!(choose_priority(&load, 199), 1);
        let shares = (0..10_000u64)
            .filter(|&d| choose_priority(&load, d) == 1)
            .count();
        assert_eq!(shares, 3000);
    }
}
