//! `RouteTable::cluster_policy`: the effective DestinationRule traffic policy of one cluster, as
//! the client behind one listener sees it — what `Decision::traffic_policy` reports for a request
//! routed to that cluster. A proxyless client (`meshroute.client`) asks it once per cluster named
//! by an `exchange` answer's `x-meshroute-cluster`, to build that cluster's load balancer.

use crate::exchange::ListenerContext;
use crate::request::{split_authority, Prepared, Request};
use crate::table::RouteTable;

impl RouteTable {
    /// The policy JSON text (Istio field names, `"{}"` for none) of `cluster`
    /// (`outbound|PORT|SUBSET|HOST`) for a client of listener `ctx`; `None` when that client has
    /// no such cluster (the decision would be `no_cluster`), or for a name of another form
    /// (`PassthroughCluster`, `BlackHoleCluster`).
    ///
    /// A gateway listener serves several Gateways (or one gateway proxy's, when its context names
    /// the proxy): `host` (the request's, port stripped) selects the Gateway as `exchange` does;
    /// the mesh listener ignores it.
    #[must_use]
    pub fn cluster_policy(&self, ctx: &ListenerContext, host: &str, cluster: &str) -> Option<&str> {
        let mut parts = cluster.splitn(4, '|');
        let (Some("outbound"), Some(port), Some(subset), Some(target_host)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let port: u16 = port.parse().ok()?;
        let subset = (!subset.is_empty()).then_some(subset);
        let labels: Vec<(&str, &str)> = ctx
            .source_labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let lowered = split_authority(host).0.to_ascii_lowercase();
        let req = match ctx.gateway_port {
            None => Request {
                source_labels: &labels,
                source_namespace: ctx.source_namespace.as_deref(),
                ..Request::default()
            },
            Some(listener) => Request {
                gateway: self.gateway_of(ctx, listener, &lowered)?,
                port: Some(listener),
                ..Request::default()
            },
        };
        let selected = self.selector.select(&Prepared::new(&req))?;
        let view = self.views.get(selected.view as usize)?;
        let scope = self.scopes.get(view.scope as usize)?;
        self.targets
            .iter()
            .enumerate()
            .filter(|(_, t)| &*t.host == target_host && t.subset.as_deref() == subset)
            .find_map(|(i, _)| scope.clusters.get(&(u32::try_from(i).ok()?, port)))
            .and_then(|&p| self.policies.get(p as usize))
            .map(|p| &**p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IR: &str = r#"{"version": 1, "gateways": ["mesh"],
      "targets": [{"host": "r.default.svc.cluster.local", "subset": null, "port": null},
                  {"host": "r.default.svc.cluster.local", "subset": "v2", "port": null}],
      "policies": ["{}", "{\"loadBalancer\":{\"simple\":\"ROUND_ROBIN\"}}"],
      "scopes": [{"clusters": [[0, 9080, 0], [1, 9080, 1]]}, {"clusters": [[0, 9080, 0]]}],
      "views": [{"gateway": 0, "namespace": "default", "scope": 0, "vhosts": []},
                {"gateway": 0, "namespace": "other", "scope": 1, "vhosts": []}],
      "mesh": {"namespaces": {"default": {"default_view": 0, "sidecars": []}}, "other_view": 1}}"#;

    #[test]
    fn policy_per_client_scope() {
        let table = RouteTable::from_json(IR).unwrap();
        let mesh = ListenerContext::default();
        let other = ListenerContext {
            source_namespace: Some("other".into()),
            ..ListenerContext::default()
        };
        let v2 = "outbound|9080|v2|r.default.svc.cluster.local";
        let plain = "outbound|9080||r.default.svc.cluster.local";
        assert_eq!(
            table.cluster_policy(&mesh, "", v2),
            Some(r#"{"loadBalancer":{"simple":"ROUND_ROBIN"}}"#)
        );
        assert_eq!(table.cluster_policy(&mesh, "", plain), Some("{}"));
        assert_eq!(table.cluster_policy(&other, "", v2), None, "no v2 there");
        assert_eq!(table.cluster_policy(&other, "", plain), Some("{}"));
        assert_eq!(
            table.cluster_policy(&mesh, "", "outbound|80||r.default.svc.cluster.local"),
            None
        );
        assert_eq!(table.cluster_policy(&mesh, "", "PassthroughCluster"), None);
        assert_eq!(table.cluster_policy(&mesh, "", "outbound|x||r"), None);
        let gw = ListenerContext {
            gateway_port: Some(8080),
            ..ListenerContext::default()
        };
        assert_eq!(table.cluster_policy(&gw, "r", plain), None, "no gateway");
    }

    #[test]
    fn a_gateway_listener_naming_its_proxy_reads_that_proxys_scope() {
        // Two gateway proxies on port 8080 whose views have different scopes: a listener that
        // names its proxy takes the policy of that proxy's view whatever server the host hits.
        let ir = r#"{"version": 1,
          "gateways": ["mesh", "workload:default/app=a", "workload:default/app=b"],
          "targets": [{"host": "r.default.svc.cluster.local", "subset": null, "port": null}],
          "policies": ["{\"a\":1}", "{\"b\":1}"],
          "scopes": [{"clusters": [[0, 80, 0]]}, {"clusters": [[0, 80, 1]]}],
          "views": [{"gateway": 0, "namespace": "default", "scope": 0, "vhosts": []},
                    {"gateway": 1, "namespace": "default", "scope": 0, "ports": [8080], "vhosts": []},
                    {"gateway": 2, "namespace": "default", "scope": 1, "ports": [8080], "vhosts": []}],
          "mesh": {"namespaces": {}, "other_view": 0},
          "gateway_views": {"workload:default/app=a": {"8080": 1}, "workload:default/app=b": {"8080": 2}},
          "gateway_servers": [[8080, ["a.test"], "workload:default/app=a"],
                              [8080, ["*"], "workload:default/app=b"]]}"#;
        let table = RouteTable::from_json(ir).unwrap();
        let cluster = "outbound|80||r.default.svc.cluster.local";
        let every = ListenerContext {
            gateway_port: Some(8080),
            ..ListenerContext::default()
        };
        let b = ListenerContext {
            source_labels: vec![("app".to_owned(), "b".to_owned())],
            ..every.clone()
        };
        assert_eq!(
            table.cluster_policy(&every, "a.test", cluster),
            Some(r#"{"a":1}"#)
        );
        assert_eq!(
            table.cluster_policy(&b, "a.test", cluster),
            Some(r#"{"b":1}"#)
        );
        let c = ListenerContext {
            source_labels: vec![("app".to_owned(), "c".to_owned())],
            ..every
        };
        assert_eq!(
            table.cluster_policy(&c, "a.test", cluster),
            None,
            "no such proxy"
        );
    }
}
