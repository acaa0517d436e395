//! `vhost_ports`: a vhost with `ports` serves only those listener ports (docs/ir.md "VHost"); the
//! first vhost claiming the host and serving the port wins.

use std::sync::Arc;

use meshroute_core::{Request, RouteTable, SplitMix64};

/// `known` (ports 80, 8080) routes by default; a VS host `alias` that is no service claims
/// `alias` on port 80 only, and `known`'s later vhost keeps `alias` on 8080. `wild` (port 80)
/// and the catch-all wildcard `*.example.com` (every port) test the wildcard levels.
fn table(unknown: &str) -> Arc<RouteTable> {
    let ir = format!(
        r#"{{"version": 1, "gateways": ["mesh"],
      "targets": [{{"host": "known.default.svc.cluster.local", "subset": null, "port": null}},
                  {{"host": "other.default.svc.cluster.local", "subset": null, "port": null}}],
      "policies": ["{{}}"], "scopes": [{{"clusters": [[0, 80, 0], [0, 8080, 0], [1, 80, 0], [1, 9090, 0]]}}],
      "views": [{{"gateway": 0, "namespace": "default", "scope": 0, "unknown_host": "{unknown}", "vhosts": [
        {{"domains": ["known", "*.example.com"], "routes": [], "default_target": 0, "default_port": null,
          "ports": [8080, 80]}},
        {{"domains": ["alias", "a.example.com"], "routes": [], "default_target": 1, "default_port": null,
          "ports": [80]}},
        {{"domains": ["alias", "*.b.example.com"], "routes": [], "default_target": 0, "default_port": null,
          "ports": [8080]}},
        {{"domains": ["*"], "routes": [], "default_target": 1, "default_port": null, "ports": [9090]}},
        {{"domains": ["any"], "routes": [], "default_target": 1, "default_port": null}}]}}],
      "mesh": {{"namespaces": {{}}, "other_view": 0}}}}"#
    );
    Arc::new(RouteTable::from_json(&ir).unwrap())
}

fn decide(
    t: &Arc<RouteTable>,
    authority: &str,
    port: Option<u16>,
) -> (Option<String>, Option<u16>) {
    let req = Request {
        authority,
        path: "/",
        port,
        ..Request::default()
    };
    let d = t.route(&req, &mut SplitMix64::new(1));
    (d.cluster(), d.status())
}

fn cluster(host: &str, port: u16) -> Option<String> {
    Some(format!("outbound|{port}||{host}.default.svc.cluster.local"))
}

#[test]
fn a_vhost_serves_its_ports_only() {
    let t = table("blackhole");
    assert_eq!(decide(&t, "known", Some(80)).0, cluster("known", 80));
    assert_eq!(decide(&t, "known:8080", None).0, cluster("known", 8080));
    // Port 9090 has only the `*` vhost: `known` is no host of that route table.
    assert_eq!(decide(&t, "known", Some(9090)).0, cluster("other", 9090));
    assert_eq!(
        decide(&t, "known", Some(1234)),
        (Some("BlackHoleCluster".to_owned()), Some(502))
    );
    // No port named: every vhost counts, as before.
    assert_eq!(decide(&t, "known", None).0, cluster("known", 80));
    // A vhost without `ports` serves every port.
    assert_eq!(decide(&t, "any:1234", None).0, cluster("other", 1234));
}

#[test]
fn the_first_claimant_serving_the_port_wins() {
    let t = table("passthrough");
    assert_eq!(decide(&t, "alias", Some(80)).0, cluster("other", 80));
    assert_eq!(decide(&t, "ALIAS:8080", None).0, cluster("known", 8080));
    assert_eq!(decide(&t, "alias", Some(9090)).0, cluster("other", 9090));
    assert_eq!(
        decide(&t, "alias", Some(1)).0.as_deref(),
        Some("PassthroughCluster")
    );
}

#[test]
fn wildcards_keep_their_precedence_among_the_vhosts_of_a_port() {
    let t = table("blackhole");
    // 80: the exact a.example.com (vhost 1) beats *.example.com.
    assert_eq!(
        decide(&t, "a.example.com", Some(80)).0,
        cluster("other", 80)
    );
    // 8080: vhost 1 does not serve it; *.example.com (vhost 0) does.
    assert_eq!(
        decide(&t, "a.example.com", Some(8080)).0,
        cluster("known", 8080)
    );
    // 8080: the longer *.b.example.com (vhost 2) beats *.example.com; on 80 only the latter serves.
    assert_eq!(
        decide(&t, "x.b.example.com", Some(8080)).0,
        cluster("known", 8080)
    );
    assert_eq!(
        decide(&t, "x.b.example.com", Some(80)).0,
        cluster("known", 80)
    );
    // 9090: only `*`.
    assert_eq!(
        decide(&t, "x.b.example.com", Some(9090)).0,
        cluster("other", 9090)
    );
}
