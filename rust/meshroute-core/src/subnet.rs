//! `Subnet`: an IP network (`10.0.0.0/24`, `2001:db8::/32`) and whether an address lies in it.
//! A ServiceEntry's `addresses` may be CIDRs; Istio gives such a TCP service a listener on the
//! whole network, and a connection to an address inside several takes the longest prefix.

use std::net::IpAddr;

use crate::error::{CompileError, ErrorKind, Result};

/// One network: its address with the host bits cleared, and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subnet {
    network: IpAddr,
    prefix: u8,
}

// === impl Subnet ===

impl Subnet {
    /// `ADDRESS/PREFIX` (host bits may be set: they are ignored, as Istio ignores them).
    pub(crate) fn parse(text: &str, at: &str) -> Result<Subnet> {
        let invalid =
            || CompileError::new(ErrorKind::Value, at, format!("{text:?} is no IP network"));
        let (addr, prefix) = text.split_once('/').ok_or_else(invalid)?;
        let network: IpAddr = addr.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(invalid());
        }
        let network = mask(network, prefix);
        Ok(Subnet { network, prefix })
    }

    pub(crate) fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `addr` lies in this network (an IPv4 address never lies in an IPv6 network).
    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.network.is_ipv4() && mask(addr, self.prefix) == self.network
    }
}

/// A request host as an IP address: `1.2.3.4`, `[2001:db8::1]`, or `2001:db8::1`.
pub(crate) fn host_address(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let kept = if prefix == 0 {
                0
            } else {
                bits & (u32::MAX << (32 - u32::from(prefix)))
            };
            IpAddr::V4(kept.into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let kept = if prefix == 0 {
                0
            } else {
                bits & (u128::MAX << (128 - u32::from(prefix)))
            };
            IpAddr::V6(kept.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Subnet {
        Subnet::parse(text, "test").unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        host_address(text).unwrap()
    }

    #[test]
    fn host_bits_are_ignored_and_families_kept_apart() {
        assert_eq!(net("10.1.2.3/8"), net("10.0.0.0/8"));
        assert_eq!(
            net("1234:1f1:123:123:f816:3eff:feb8:2287/32"),
            net("1234:1f1:123:123:f816:3eff:febf:57ce/32")
        );
        assert!(net("10.0.0.0/8").contains(ip("10.200.0.1")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(!net("0.0.0.0/0").contains(ip("::1")));
        assert!(net("1234:1f1::/16").contains(ip("[1234::1]")));
        assert!(net("1234::/16").contains(ip("1234::1")));
        assert!(net("1.2.3.4/32").contains(ip("1.2.3.4")));
    }

    #[test]
    fn bad_networks_are_errors() {
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "::/129",
            "x/8",
            "10.0.0.0/-1",
            "10.0.0.0/",
        ] {
            let err = Subnet::parse(bad, "tcp[0].subnets[0]").unwrap_err();
            assert!(err.to_string().contains("tcp[0].subnets[0]"), "{err}");
        }
        assert_eq!(host_address("db.example.com"), None);
    }
}
