//! `PassthroughCluster` (Istio's ALLOW_ANY): Envoy's ORIGINAL_DST cluster connects to the address
//! in `x-envoy-original-dst-host`, which only an IP-literal authority with a port can give.

use std::net::{Ipv4Addr, Ipv6Addr};

/// `x-envoy-original-dst-host` for a passthrough request to `host` (lower-case, as split from the
/// authority) and the authority's `port`; `None` for a DNS name or no port (Envoy then answers
/// 503, as there is no connection-level original destination to fall back to).
pub(crate) fn original_dst(host: &str, port: Option<u16>) -> Option<String> {
    let port = port.filter(|&p| p != 0)?;
    let bracketed = host.starts_with('[');
    let literal = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => inner,
        None => host,
    };
    if !is_ip(literal) {
        return None;
    }
    if literal.contains(':') {
        // IPv6: an authority can only carry it in brackets.
        return bracketed.then(|| format!("[{literal}]:{port}"));
    }
    Some(format!("{literal}:{port}"))
}

/// An IPv4 or IPv6 literal as Python's `ipaddress.ip_address` reads one (dotted quad without
/// leading zeros; IPv6 with an optional non-empty `%scope`).
fn is_ip(s: &str) -> bool {
    if s.parse::<Ipv4Addr>().is_ok() {
        return true;
    }
    let addr = match s.split_once('%') {
        Some((addr, scope)) if !scope.is_empty() && !scope.contains('%') => addr,
        Some(_) => return false,
        None => s,
    };
    addr.parse::<Ipv6Addr>().is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_with_a_port_only() {
        assert_eq!(
            original_dst("127.0.0.1", Some(18080)).as_deref(),
            Some("127.0.0.1:18080")
        );
        assert_eq!(original_dst("[::1]", Some(80)).as_deref(), Some("[::1]:80"));
        assert_eq!(
            original_dst("[1.2.3.4]", Some(80)).as_deref(),
            Some("1.2.3.4:80")
        );
        assert_eq!(
            original_dst("[fe80::1%eth0]", Some(80)).as_deref(),
            Some("[fe80::1%eth0]:80")
        );
        assert_eq!(original_dst("[::1]", None), None);
        assert_eq!(original_dst("127.0.0.1", Some(0)), None);
        assert_eq!(original_dst("::1", Some(80)), None);
        assert_eq!(original_dst("unknown.example", Some(80)), None);
        assert_eq!(original_dst("127.1", Some(80)), None);
        assert_eq!(original_dst("01.2.3.4", Some(80)), None);
        assert_eq!(original_dst("[a.b]", Some(80)), None);
        assert_eq!(original_dst("[fe80::1%]", Some(80)), None);
        assert_eq!(original_dst("[", Some(80)), None);
    }
}
