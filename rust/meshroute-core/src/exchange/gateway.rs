//! Gateway server selection for a gateway listener: the first Gateway, in config order, with a
//! server on the listener's port whose hosts match the request host (IR `gateway_servers`).

use ahash::AHashMap;

/// The Gateway servers of the IR, grouped by port (config order kept within a port).
#[derive(Debug, Default)]
pub(crate) struct GatewayServers {
    by_port: AHashMap<u16, Vec<Server>>,
}

#[derive(Debug)]
struct Server {
    /// Host patterns, lower-case, `ns/` part removed.
    hosts: Vec<Box<str>>,
    /// The Gateway as `ns/name`.
    gateway: Box<str>,
}

impl GatewayServers {
    /// `servers`: `(port, host patterns, "ns/name")` in config order.
    pub(crate) fn build<'a>(
        servers: impl IntoIterator<Item = (u16, &'a [String], &'a str)>,
    ) -> Self {
        let mut by_port: AHashMap<u16, Vec<Server>> = AHashMap::new();
        for (port, hosts, gateway) in servers {
            by_port.entry(port).or_default().push(Server {
                hosts: hosts.iter().map(|h| h.to_lowercase().into()).collect(),
                gateway: gateway.into(),
            });
        }
        Self { by_port }
    }

    /// The Gateway (`ns/name`) serving `host` (lower-case, port stripped) on `port`.
    pub(crate) fn select(&self, port: u16, host: &str) -> Option<&str> {
        self.by_port
            .get(&port)?
            .iter()
            .find(|s| s.hosts.iter().any(|p| matches(p, host)))
            .map(|s| &*s.gateway)
    }
}

/// Istio's one-directional host match (`meshroute.config.hosts.matches`): `host` lies within
/// `pattern`. A wildcard is a suffix match on the text after `*` and covers at least one
/// character; a wildcard `host` matches when its own suffix lies within the pattern's.
pub(crate) fn matches(pattern: &str, host: &str) -> bool {
    if pattern == host || pattern == "*" {
        return true;
    }
    let Some(suffix) = pattern.strip_prefix('*') else {
        return false;
    };
    match host.strip_prefix('*') {
        Some(rest) => rest.ends_with(suffix),
        None => host.len() > suffix.len() && host.ends_with(suffix),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        assert!(matches("*.foo.com", "a.b.foo.com"));
        assert!(!matches("*.foo.com", "foo.com"));
        assert!(matches("*", "*.x"));
        assert!(matches("*.foo.com", "*.a.foo.com"));
        assert!(!matches("*.a.foo.com", "*.foo.com"));
        assert!(matches("*foo.com", "xfoo.com"));
        assert!(matches("a.com", "a.com") && !matches("a.com", "b.a.com"));
        assert!(!matches("*.com", ".com"));
    }

    #[test]
    fn first_server_in_config_order_on_the_port() {
        let hosts_a = vec!["*.gw.test".to_owned()];
        let hosts_b = vec!["App.gw.test".to_owned(), "other.test".to_owned()];
        let hosts_c = vec!["*".to_owned()];
        let s = GatewayServers::build([
            (8080, hosts_a.as_slice(), "default/a"),
            (8080, hosts_b.as_slice(), "default/b"),
            (9090, hosts_c.as_slice(), "default/c"),
        ]);
        assert_eq!(s.select(8080, "app.gw.test"), Some("default/a"));
        assert_eq!(s.select(8080, "other.test"), Some("default/b"));
        assert_eq!(s.select(8080, "nope"), None);
        assert_eq!(s.select(9090, "nope"), Some("default/c"));
        assert_eq!(s.select(1, "app.gw.test"), None);
    }
}
