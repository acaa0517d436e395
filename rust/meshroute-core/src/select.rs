//! Weighted destination choice: cumulative weights built once, one injected draw per request.

use crate::error::{CompileError, ErrorKind, Result};
use crate::headers::HeaderOps;
use crate::rng::Rng;
use crate::spec::DestinationSpec;

/// One `route[]` entry of an HTTP route.
#[derive(Debug)]
pub(crate) struct Destination {
    pub(crate) target: u32,
    pub(crate) request_headers: HeaderOps,
    pub(crate) response_headers: HeaderOps,
    /// Authority rewrite from a `host`/`:authority` header op.
    pub(crate) authority: Option<Box<str>>,
}

/// The destinations of a route and their cumulative weights.
///
/// Istio treats weights as relative: "`validateHTTPRouteDestinations` rejects negative weights,
/// and a total of 0 when there is more than one destination; it does not require a sum of 100."
/// One destination collapses to a direct pick with no draw.
#[derive(Debug)]
pub(crate) struct Destinations {
    pub(crate) list: Vec<Destination>,
    /// `cumulative[i]` = sum of weights `0..=i`.
    cumulative: Vec<u64>,
}

// === impl Destinations ===

impl Destinations {
    /// `at` is the IR path of the destination list; `targets` the number of targets.
    pub(crate) fn compile(specs: &[DestinationSpec], at: &str, targets: usize) -> Result<Self> {
        if specs.is_empty() {
            return Err(CompileError::new(
                ErrorKind::Weight,
                at,
                "a route needs at least one destination",
            ));
        }
        let mut cumulative = Vec::with_capacity(specs.len());
        let mut total = 0u64;
        let mut list = Vec::with_capacity(specs.len());
        for (i, d) in specs.iter().enumerate() {
            if d.target as usize >= targets {
                let msg = format!("target {} does not exist ({targets} targets)", d.target);
                return Err(CompileError::new(
                    ErrorKind::Reference,
                    format!("{at}[{i}].target"),
                    msg,
                ));
            }
            // u32 weights summed in u64 cannot overflow.
            total += u64::from(d.weight);
            cumulative.push(total);
            list.push(Destination {
                target: d.target,
                request_headers: HeaderOps::new(d.request_headers.clone()),
                response_headers: HeaderOps::new(d.response_headers.clone()),
                authority: d.authority.as_deref().map(Into::into),
            });
        }
        if list.len() > 1 && total == 0 {
            let msg = "weights sum to 0 with more than one destination";
            return Err(CompileError::new(ErrorKind::Weight, at, msg));
        }
        Ok(Self { list, cumulative })
    }

    /// Picks a destination: `next_u64() % total`, only when there is more than one.
    #[inline]
    pub(crate) fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        if self.list.len() == 1 {
            return 0;
        }
        let total = self.cumulative[self.cumulative.len() - 1];
        let draw = rng.next_u64() % total;
        // First destination whose cumulative weight exceeds the draw; zero weights never win.
        self.cumulative.partition_point(|&c| c <= draw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn dests(weights: &[u32]) -> Result<Destinations> {
        let specs: Vec<DestinationSpec> = weights
            .iter()
            .map(|&w| DestinationSpec {
                target: 0,
                weight: w,
                request_headers: Default::default(),
                response_headers: Default::default(),
                authority: None,
            })
            .collect();
        Destinations::compile(&specs, "routes[0].action.route.destinations", 1)
    }

    /// Returns a fixed value, to check the draw → destination mapping exactly.
    struct Fixed(u64);
    impl Rng for Fixed {
        fn next_u64(&mut self) -> u64 {
            self.0
        }
    }

    #[test]
    fn exact_picks() {
        let d = dests(&[80, 20]).unwrap();
        assert_eq!(d.pick(&mut Fixed(0)), 0);
        assert_eq!(d.pick(&mut Fixed(79)), 0);
        assert_eq!(d.pick(&mut Fixed(80)), 1);
        assert_eq!(d.pick(&mut Fixed(99)), 1);
        assert_eq!(d.pick(&mut Fixed(100)), 0);
        let z = dests(&[0, 5, 0, 5]).unwrap();
        assert_eq!(z.pick(&mut Fixed(0)), 1);
        assert_eq!(z.pick(&mut Fixed(5)), 3);
    }

    #[test]
    fn single_destination_draws_nothing() {
        struct Panics;
        impl Rng for Panics {
            fn next_u64(&mut self) -> u64 {
                panic!("no draw expected")
            }
        }
        assert_eq!(dests(&[0]).unwrap().pick(&mut Panics), 0);
    }

    #[test]
    fn weight_errors() {
        let e = dests(&[0, 0]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Weight);
        assert_eq!(e.path(), "routes[0].action.route.destinations");
        assert_eq!(dests(&[]).unwrap_err().kind(), ErrorKind::Weight);
    }

    #[test]
    fn statistical_split_within_half_a_percent() {
        // 200k draws; the binomial standard deviation of a 25% share is ~0.1%, so 0.5% is ~5σ.
        let d = dests(&[50, 25, 25]).unwrap();
        let mut rng = SplitMix64::new(7);
        let mut counts = [0u32; 3];
        let n = 200_000;
        for _ in 0..n {
            counts[d.pick(&mut rng)] += 1;
        }
        for (c, expected) in counts.iter().zip([0.50, 0.25, 0.25]) {
            let share = f64::from(*c) / f64::from(n);
            assert!(
                (share - expected).abs() < 0.005,
                "share {share} vs {expected}"
            );
        }
    }
}
