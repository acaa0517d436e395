//! VirtualService mirrors: read once per route from `extra.mirrors` (at most [`MAX_MIRRORS`],
//! those with a percentage above 0), drawn per request after the route's own draws.

use serde_json::Value;

use super::value::{get, get_truthy, py_float, py_str, truthy};
use crate::rng::Rng;

/// Envoy's catch-all route has this many `request_mirror_policies`, policy `i` reading its
/// cluster from `x-meshroute-mirror-<i>`; a route's later mirrors are not sent.
pub const MAX_MIRRORS: usize = 4;

const MILLION: u64 = 1_000_000;

/// One mirror of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mirror {
    /// `None`: the mirror names no port and its host has several, so the listener port is used.
    cluster: Option<Box<str>>,
    host: Box<str>,
    subset: Option<Box<str>>,
    /// Istio percentage × 10 000, in 1..=1 000 000.
    per_million: u64,
}

impl Mirror {
    /// The route's mirrors from its `extra` (docs/ir.md: `[{cluster, destination, percent}]`).
    pub(crate) fn list(extra: &Value) -> Vec<Mirror> {
        let Some(items) = get_truthy(extra, "mirrors").and_then(Value::as_array) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(Mirror::parse)
            .take(MAX_MIRRORS)
            .collect()
    }

    fn parse(m: &Value) -> Option<Mirror> {
        let dest = get(m, "destination").filter(|d| truthy(d));
        let percent = match get(m, "percent") {
            None | Some(Value::Null) => 100.0,
            Some(p) => py_float(p)?,
        };
        let per_million = per_million(percent)?;
        let host = dest.and_then(|d| get_truthy(d, "host"))?;
        if per_million == 0 {
            return None;
        }
        Some(Mirror {
            cluster: get_truthy(m, "cluster").map(|c| py_str(c).into()),
            host: py_str(host).into(),
            subset: dest
                .and_then(|d| get_truthy(d, "subset"))
                .map(|s| py_str(s).into()),
            per_million,
        })
    }

    /// Draws only for a percentage strictly between 0 and 100 (`next_u64() % 10^6 <
    /// per_million`, the core's rule for faults).
    pub(crate) fn fires<R: Rng + ?Sized>(&self, rng: &mut R) -> bool {
        self.per_million >= MILLION || rng.next_u64() % MILLION < self.per_million
    }

    /// The Envoy cluster to shadow to; `port` stands in for a mirror without a port of its own.
    pub(crate) fn cluster_for(&self, port: u16) -> String {
        match &self.cluster {
            Some(c) => c.to_string(),
            None => format!(
                "outbound|{port}|{}|{}",
                self.subset.as_deref().unwrap_or(""),
                self.host
            ),
        }
    }
}

/// Percent → parts per million as Python's `round()` (half to even), clamped to 0..=10^6.
fn per_million(percent: f64) -> Option<u64> {
    let scaled = (percent * 10_000.0).round_ties_even();
    if scaled.is_nan() {
        return None;
    }
    // Clamped first, so the conversion is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some(scaled.clamp(0.0, 1_000_000.0) as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use serde_json::json;

    #[test]
    fn list_drops_zero_and_hostless_and_caps() {
        let extra = json!({"mirrors": [
            {"cluster": "outbound|80|v2|e", "destination": {"host": "e", "subset": "v2", "port": 80}, "percent": 12.5},
            {"cluster": null, "destination": {"host": "m", "subset": null, "port": null}, "percent": 0.0},
            {"cluster": null, "destination": {}, "percent": 100},
            {"cluster": null, "destination": {"host": "m", "subset": "", "port": null}},
            {"cluster": "c3", "destination": {"host": "x"}, "percent": 100},
            {"cluster": "c4", "destination": {"host": "x"}, "percent": 100},
            {"cluster": "c5", "destination": {"host": "x"}, "percent": 100},
        ]});
        let list = Mirror::list(&extra);
        assert_eq!(list.len(), MAX_MIRRORS);
        assert_eq!(list[0].per_million, 125_000);
        assert_eq!(list[0].cluster_for(9), "outbound|80|v2|e");
        assert_eq!(list[1].cluster_for(8080), "outbound|8080||m");
        assert_eq!(list[3].cluster_for(1), "c4");
        assert!(Mirror::list(&json!({"mirrors": null})).is_empty());
        assert!(Mirror::list(&json!({})).is_empty());
    }

    #[test]
    fn rounds_half_to_even_like_python() {
        assert_eq!(per_million(0.00005), Some(0)); // 0.5 → 0, as Python
        assert_eq!(per_million(0.00025), Some(2)); // 2.5 → 2
        assert_eq!(per_million(0.000_187_5), Some(2)); // 1.875 → 2
        assert_eq!(per_million(250.0), Some(1_000_000));
        assert_eq!(per_million(-3.0), Some(0));
        assert_eq!(per_million(f64::NAN), None);
    }

    #[test]
    fn draws_only_between_0_and_100() {
        let always = Mirror {
            cluster: Some("c".into()),
            host: "h".into(),
            subset: None,
            per_million: MILLION,
        };
        let mut rng = SplitMix64::new(3);
        let before = rng.clone();
        assert!(always.fires(&mut rng));
        assert_eq!(rng, before, "100 % takes no draw");
        let half = Mirror {
            per_million: 500_000,
            ..always
        };
        let fired = (0..10_000).filter(|_| half.fires(&mut rng)).count();
        assert!((4_700..5_300).contains(&fired), "{fired}");
    }
}
