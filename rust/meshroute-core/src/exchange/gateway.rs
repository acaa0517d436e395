//! Gateway server selection for a gateway listener: the first Gateway, in config order, with a
//! server on the listener's port whose hosts match the request host (IR `gateway_servers`). A
//! listener that belongs to one gateway proxy (its context names the proxy's namespace and
//! labels) only looks at that proxy's servers.

use ahash::AHashMap;

/// The Gateway servers of the IR, grouped by port (config order kept within a port).
#[derive(Debug, Default)]
pub(crate) struct GatewayServers {
    by_port: AHashMap<u16, Vec<Server>>,
}

/// A gateway workload's namespace and labels.
type Workload = (Box<str>, Vec<(Box<str>, Box<str>)>);

#[derive(Debug)]
struct Server {
    /// Host patterns, lower-case, `ns/` part removed.
    hosts: Vec<Box<str>>,
    /// The Gateway as `ns/name`, or the gateway workload as `workload:<ns>/<k=v,...>`.
    gateway: Box<str>,
    /// A workload name's namespace and labels (sorted by key, as the name lists them).
    workload: Option<Workload>,
}

impl Server {
    /// Whether this server belongs to the gateway proxy in `namespace` with exactly `labels`.
    fn of_proxy(&self, namespace: &str, labels: &[(String, String)]) -> bool {
        let Some((ns, own)) = &self.workload else {
            return false;
        };
        let same =
            |(ok, ov): &(Box<str>, Box<str>), (k, v): &(String, String)| **ok == **k && **ov == **v;
        // Equal as sets (a context may repeat a pair).
        &**ns == namespace
            && labels.iter().all(|l| own.iter().any(|o| same(o, l)))
            && own.iter().all(|o| labels.iter().any(|l| same(o, l)))
    }
}

/// `workload:<ns>/<k=v,...>` as (namespace, labels); `None` for another name.
fn parse_workload(name: &str) -> Option<Workload> {
    let rest = name.strip_prefix("workload:")?;
    let (namespace, labels) = rest.split_once('/')?;
    let labels = labels
        .split(',')
        .filter_map(|item| item.split_once('='))
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    Some((namespace.into(), labels))
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
                workload: parse_workload(gateway),
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

    /// [`select`](Self::select) among the servers of one gateway proxy: the workload in
    /// `namespace` with exactly `labels` (any order). A host none of its servers on `port`
    /// claims is not this proxy's (another proxy's Gateway host): `None`.
    pub(crate) fn select_for_proxy(
        &self,
        port: u16,
        host: &str,
        namespace: &str,
        labels: &[(String, String)],
    ) -> Option<&str> {
        self.by_port
            .get(&port)?
            .iter()
            .filter(|s| s.of_proxy(namespace, labels))
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
