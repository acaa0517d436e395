//! Fault injection: a fixed delay and/or an abort, each with its own percentage.

use crate::error::{CompileError, ErrorKind, Result};
use crate::rng::Rng;
use crate::spec::FaultSpec;

const MILLION: u32 = 1_000_000;

/// gRPC status names Istio accepts for `abort.grpcStatus` (upper case; numbers rejected), in
/// code order: the index of a name is its numeric gRPC code. The one list for validation (Python
/// reads it as `meshroute._core.GRPC_STATUSES`), routing and the exchange.
pub const GRPC_STATUSES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A compiled HTTPFaultInjection.
///
/// Istio: "Delay and abort are decided independently, each with its own percentage. If both
/// fire, the request is first delayed, then aborted." Percentages are `per_million`
/// (percent × 10 000); 0 never fires, 10^6 always fires, and only values strictly between take a
/// draw (`next_u64() % 1_000_000 < per_million`), delay first, then abort.
#[derive(Debug)]
pub(crate) struct Fault {
    delay: Option<(u64, u32)>,
    abort: Option<(Abort, u32)>,
}

/// What an abort answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Abort {
    Http(u16),
    /// A gRPC status name; answered as HTTP 200 with `grpc-status`.
    Grpc(Box<str>),
}

/// What fired for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fired {
    pub(crate) delay_ms: Option<u64>,
    pub(crate) abort: bool,
}

// === impl Fault ===

impl Fault {
    pub(crate) fn compile(spec: &FaultSpec, at: &str) -> Result<Self> {
        let check = |pm: u32, field: &str| {
            if pm > MILLION {
                let msg = format!("per_million {pm} exceeds 1000000");
                return Err(CompileError::new(
                    ErrorKind::Value,
                    format!("{at}.{field}.per_million"),
                    msg,
                ));
            }
            Ok(pm)
        };
        let delay = match &spec.delay {
            Some(d) => Some((d.fixed_delay_ms, check(d.per_million, "delay")?)),
            None => None,
        };
        let abort = match &spec.abort {
            Some(a) => {
                let kind = match (a.http_status, a.grpc_status.as_deref()) {
                    (Some(s), None) => Abort::Http(s),
                    (None, Some(g)) if GRPC_STATUSES.contains(&g) => Abort::Grpc(g.into()),
                    (None, Some(g)) => {
                        let msg = format!("unknown gRPC status {g:?} (use an upper-case name)");
                        return Err(CompileError::new(
                            ErrorKind::Value,
                            format!("{at}.abort.grpc_status"),
                            msg,
                        ));
                    }
                    _ => {
                        let msg = "exactly one of http_status and grpc_status is required";
                        return Err(CompileError::new(
                            ErrorKind::Value,
                            format!("{at}.abort"),
                            msg,
                        ));
                    }
                };
                Some((kind, check(a.per_million, "abort")?))
            }
            None => None,
        };
        Ok(Self { delay, abort })
    }

    /// Draws the delay, then the abort.
    #[inline]
    pub(crate) fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> Fired {
        let delay_ms = self.delay.and_then(|(ms, pm)| fires(pm, rng).then_some(ms));
        let abort = self.abort.as_ref().is_some_and(|(_, pm)| fires(*pm, rng));
        Fired { delay_ms, abort }
    }

    pub(crate) fn abort(&self) -> Option<&Abort> {
        self.abort.as_ref().map(|(a, _)| a)
    }
}

impl Abort {
    /// The HTTP status the client sees: the abort's, or 200 for a gRPC abort.
    pub(crate) fn http_status(&self) -> u16 {
        match self {
            Self::Http(s) => *s,
            Self::Grpc(_) => 200,
        }
    }
}

#[inline]
fn fires<R: Rng + ?Sized>(per_million: u32, rng: &mut R) -> bool {
    match per_million {
        0 => false,
        MILLION.. => true,
        pm => rng.next_u64() % u64::from(MILLION) < u64::from(pm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use crate::spec::{AbortSpec, DelaySpec};

    fn fault(delay: Option<u32>, abort: Option<u32>) -> Fault {
        let spec = FaultSpec {
            delay: delay.map(|pm| DelaySpec {
                fixed_delay_ms: 7000,
                per_million: pm,
            }),
            abort: abort.map(|pm| AbortSpec {
                http_status: Some(500),
                grpc_status: None,
                per_million: pm,
            }),
        };
        Fault::compile(&spec, "routes[0].fault").unwrap()
    }

    /// Replays fixed values and counts draws.
    struct Seq(Vec<u64>, usize);
    impl Rng for Seq {
        fn next_u64(&mut self) -> u64 {
            self.1 += 1;
            self.0[self.1 - 1]
        }
    }

    #[test]
    fn always_and_never_take_no_draw() {
        let mut rng = Seq(vec![], 0);
        assert_eq!(
            fault(Some(MILLION), Some(0)).draw(&mut rng),
            Fired {
                delay_ms: Some(7000),
                abort: false
            }
        );
        assert_eq!(
            fault(Some(0), Some(MILLION)).draw(&mut rng),
            Fired {
                delay_ms: None,
                abort: true
            }
        );
        assert_eq!(rng.1, 0);
    }

    #[test]
    fn delay_is_drawn_before_abort() {
        // delay 10%: 99_999 < 100_000 fires; abort 50%: 500_000 does not.
        let mut rng = Seq(vec![99_999, 500_000], 0);
        let f = fault(Some(100_000), Some(500_000)).draw(&mut rng);
        assert_eq!(
            f,
            Fired {
                delay_ms: Some(7000),
                abort: false
            }
        );
        let mut rng = Seq(vec![100_000, 1_499_999], 0);
        let f = fault(Some(100_000), Some(500_000)).draw(&mut rng);
        assert_eq!(
            f,
            Fired {
                delay_ms: None,
                abort: true
            }
        );
        assert_eq!(rng.1, 2);
    }

    #[test]
    fn statistical_rate() {
        let f = fault(None, Some(100_000));
        let mut rng = SplitMix64::new(3);
        let hits = (0..100_000).filter(|_| f.draw(&mut rng).abort).count();
        // 10% of 100k: σ ≈ 95; allow ±1%.
        assert!((9_000..11_000).contains(&hits), "{hits}");
    }

    #[test]
    fn errors() {
        let bad = FaultSpec {
            delay: Some(DelaySpec {
                fixed_delay_ms: 1,
                per_million: MILLION + 1,
            }),
            abort: None,
        };
        assert_eq!(
            Fault::compile(&bad, "r").unwrap_err().path(),
            "r.delay.per_million"
        );
        let grpc = FaultSpec {
            delay: None,
            abort: Some(AbortSpec {
                http_status: None,
                grpc_status: Some("14".into()),
                per_million: 1,
            }),
        };
        assert_eq!(
            Fault::compile(&grpc, "r").unwrap_err().path(),
            "r.abort.grpc_status"
        );
    }
}
