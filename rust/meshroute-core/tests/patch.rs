//! `RouteTable::patched`: a table patched from IR 1 decides exactly as one built from IR 2, a bad
//! patch is refused with its path and changes nothing, and no input makes it panic.

use std::sync::Arc;

use meshroute_core::{ErrorKind, ListenerContext, Request, RouteTable, SplitMix64};
use proptest::prelude::*;
use serde_json::{json, Value};

const REVIEWS: &str = "reviews.default.svc.cluster.local";
const RATINGS: &str = "ratings.default.svc.cluster.local";
const DETAILS: &str = "details.default.svc.cluster.local";
const HASH_BY_USER: &str = r#"{"loadBalancer":{"consistentHash":{"httpHeaderName":"x-user"}}}"#;
const HASH_BY_COOKIE: &str = r#"{"loadBalancer":{"consistentHash":{"httpCookie":{"name":"s"}}}}"#;

fn target(host: &str, subset: Option<&str>, port: Option<u16>) -> Value {
    json!({"host": host, "subset": subset, "port": port})
}

fn forward(vs: u32, index: u32, matches: Value, dests: Value, extra: Value) -> Value {
    json!({"vs": vs, "index": index, "matches": matches,
           "action": {"route": {"destinations": dests}}, "extra": extra})
}

fn jason(gateways: Value) -> Value {
    json!([{"headers": [{"name": "end-user", "match": {"exact": "jason"}}], "gateways": gateways}])
}

/// The redirect every reviews vhost has, on the gateway only.
fn gateway_redirect(index: u32) -> Value {
    json!({"vs": 0, "index": index, "matches": [{"uri": {"prefix": "/gw"}, "gateways": [1]}],
           "action": {"redirect": {"uri": "/moved", "code": 302}}})
}

fn ratings_prefix(ratings_v1: u32, ratings: u32) -> Value {
    let mut r = forward(
        1,
        0,
        json!([{"uri": {"prefix": "/r"}, "gateways": [0]}]),
        json!([{"target": ratings_v1, "weight": 50}, {"target": ratings, "weight": 50}]),
        json!({"retries": {"attempts": 3, "retry_on": "5xx"}}),
    );
    r["fault"] = json!({"delay": {"fixed_delay_ms": 7, "per_million": 500_000}});
    r
}

fn vhost(domains: &[&str], routes: &[u32], default_target: Option<u32>) -> Value {
    json!({"domains": domains, "routes": routes, "default_target": default_target,
           "default_port": default_target.map(|_| 9080)})
}

const REVIEWS_OWN: [&str; 4] = ["reviews", "reviews.default", "reviews.default.svc", REVIEWS];
const REVIEWS_FOREIGN: [&str; 3] = ["reviews.default", "reviews.default.svc", REVIEWS];
const RATINGS_FOREIGN: [&str; 3] = ["ratings.default", "ratings.default.svc", RATINGS];
const DETAILS_OWN: [&str; 4] = ["details", "details.default", "details.default.svc", DETAILS];

/// The fixed parts every IR here shares: gateways, view selection, Gateway servers, defaults.
fn skeleton(targets: Value, policies: Value, scopes: Value, routes: Value, views: Value) -> Value {
    json!({
        "version": 1,
        "virtual_services": [{"namespace": "default", "name": "reviews"},
                             {"namespace": "default", "name": "ratings"}],
        "gateways": ["mesh", "default/gw"],
        "targets": targets, "policies": policies, "scopes": scopes, "routes": routes,
        "views": views,
        "mesh": {"namespaces": {"default": {"default_view": 0, "sidecars": []},
                                "prod": {"default_view": 1, "sidecars": []}},
                 "other_view": 1},
        "gateway_views": {"default/gw": {"80": 2}},
        "gateway_servers": [[80, ["*"], "default/gw"]],
        "default_extra": {"timeout_ms": null, "retries": {"attempts": 2, "retry_on": "connect-failure"}},
    })
}

fn views(scope_prod: u32, vhosts: [Value; 3]) -> Value {
    let [default, prod, gw] = vhosts;
    json!([
        {"gateway": 0, "namespace": "default", "scope": 0, "unknown_host": "passthrough", "vhosts": default},
        {"gateway": 0, "namespace": "prod", "scope": scope_prod, "unknown_host": "blackhole", "vhosts": prod},
        {"gateway": 1, "namespace": "default", "scope": 0, "ports": [80], "vhosts": gw},
    ])
}

/// IR 1: reviews (jason → v2, gateway redirect, rest → v1) and ratings (half the `/r` requests
/// delayed, split v1 / all), seen from `default`, `prod` and a gateway; `prod` has a smaller
/// scope. Reviews' and ratings' foreign vhosts are pooled.
fn ir1() -> Value {
    // Targets: 0 reviews v1, 1 reviews v2, 2 reviews, 3 ratings, 4 ratings v1.
    let mut ir = skeleton(
        json!([
            target(REVIEWS, Some("v1"), Some(9080)),
            target(REVIEWS, Some("v2"), Some(9080)),
            target(REVIEWS, None, None),
            target(RATINGS, None, None),
            target(RATINGS, Some("v1"), Some(9080)),
        ]),
        json!(["{}", HASH_BY_USER]),
        json!([
            {"clusters": [[0, 9080, 0], [1, 9080, 0], [2, 9080, 0], [3, 9080, 1], [4, 9080, 1]]},
            {"clusters": [[2, 9080, 0], [3, 9080, 0], [0, 9080, 0]]},
        ]),
        json!([
            forward(
                0,
                0,
                jason(json!([0, 1])),
                json!([{"target": 1, "weight": 100}]),
                json!({"timeout_ms": 1000})
            ),
            forward(
                0,
                2,
                json!([]),
                json!([{"target": 0, "weight": 100}]),
                json!({})
            ),
            ratings_prefix(4, 3),
            forward(
                1,
                1,
                json!([]),
                json!([{"target": 3, "weight": 100}]),
                json!({})
            ),
            gateway_redirect(1),
        ]),
        views(
            1,
            [
                json!([vhost(&REVIEWS_OWN, &[0, 4, 1], Some(2)), 1]),
                json!([0, 1]),
                json!([0, vhost(&["reviews.example.com"], &[0, 4, 1], None)]),
            ],
        ),
    );
    ir["vhost_pool"] = json!([
        vhost(&REVIEWS_FOREIGN, &[0, 4, 1], Some(2)),
        vhost(&RATINGS_FOREIGN, &[2, 3], Some(3)),
    ]);
    ir
}

/// IR 2, written from scratch as the compiler would after the edit: jason now splits between v2
/// and a new v3 (setting a header), ratings hash on a cookie, a new service `details` (no VS),
/// and `prod` sees details but not reviews v3. Ids differ from IR 1's throughout.
fn ir2() -> Value {
    // Targets: 0 details, 1 reviews v3, 2 reviews v1, 3 reviews v2, 4 reviews, 5 ratings,
    // 6 ratings v1.
    let jason_route = {
        let mut r = forward(
            0,
            0,
            jason(json!([0, 1])),
            json!([{"target": 3, "weight": 50},
                   {"target": 1, "weight": 50, "request_headers": {"set": [["x-v", "3"]]}}]),
            json!({"timeout_ms": 1000}),
        );
        r["name"] = json!("jason");
        r
    };
    let reviews = [2, 3, 4];
    let details_mesh = vhost(&DETAILS_OWN, &[], Some(0));
    skeleton(
        json!([
            target(DETAILS, None, None),
            target(REVIEWS, Some("v3"), Some(9080)),
            target(REVIEWS, Some("v1"), Some(9080)),
            target(REVIEWS, Some("v2"), Some(9080)),
            target(REVIEWS, None, None),
            target(RATINGS, None, None),
            target(RATINGS, Some("v1"), Some(9080)),
        ]),
        json!([HASH_BY_COOKIE, "{}"]),
        json!([
            {"clusters": [[2, 9080, 1], [3, 9080, 1], [4, 9080, 1], [5, 9080, 0], [6, 9080, 0],
                          [1, 9080, 1], [0, 9080, 1]]},
            {"clusters": [[4, 9080, 1], [5, 9080, 1], [2, 9080, 1], [0, 9080, 1]]},
        ]),
        json!([
            ratings_prefix(6, 5),
            forward(
                1,
                1,
                json!([]),
                json!([{"target": 5, "weight": 100}]),
                json!({})
            ),
            jason_route,
            gateway_redirect(1),
            forward(
                0,
                2,
                json!([]),
                json!([{"target": 2, "weight": 100}]),
                json!({})
            ),
        ]),
        views(
            1,
            [
                json!([
                    vhost(&REVIEWS_OWN, &reviews, Some(4)),
                    vhost(&RATINGS_FOREIGN, &[0, 1], Some(5)),
                    details_mesh
                ]),
                json!([
                    vhost(&REVIEWS_FOREIGN, &reviews, Some(4)),
                    vhost(&RATINGS_FOREIGN, &[0, 1], Some(5)),
                    details_mesh
                ]),
                json!([
                    vhost(&REVIEWS_FOREIGN, &reviews, Some(4)),
                    vhost(&["reviews.example.com"], &reviews, None),
                    vhost(&["details.example.com"], &[], Some(0))
                ]),
            ],
        ),
    )
}

/// The patch from IR 1 to IR 2, as the Python side computes it: one new route (the rest is
/// reused by id), new targets and policy, scope 0 replaced, a new scope for `prod`, the reviews
/// vhosts replaced in place (same domains) and a details vhost appended everywhere.
fn patch_1_to_2() -> Value {
    let mut jason_route = forward(
        0,
        0,
        jason(json!([0, 1])),
        json!([{"target": 1, "weight": 50},
               {"target": 5, "weight": 50, "request_headers": {"set": [["x-v", "3"]]}}]),
        json!({"timeout_ms": 1000}),
    );
    jason_route["name"] = json!("jason");
    json!({
        "patch": 1,
        "base": {"routes": 5, "targets": 5, "policies": 2, "scopes": 2, "views": 3},
        "routes": [jason_route],
        "targets": [target(REVIEWS, Some("v3"), Some(9080)), target(DETAILS, None, None)],
        "policies": [HASH_BY_COOKIE],
        "scopes": [
            [0, {"clusters": [[0, 9080, 0], [1, 9080, 0], [2, 9080, 0], [3, 9080, 2], [4, 9080, 2],
                              [5, 9080, 0], [6, 9080, 0]]}],
            [2, {"clusters": [[2, 9080, 0], [3, 9080, 0], [0, 9080, 0], [6, 9080, 0]]}],
        ],
        "vhosts": [
            vhost(&REVIEWS_OWN, &[5, 4, 1], Some(2)),
            vhost(&REVIEWS_FOREIGN, &[5, 4, 1], Some(2)),
            vhost(&["reviews.example.com"], &[5, 4, 1], None),
            vhost(&DETAILS_OWN, &[], Some(6)),
            vhost(&["details.example.com"], &[], Some(6)),
        ],
        "placements": [[0, 0, 0], [1, 0, 1], [2, 0, 1], [2, 1, 2], [0, 2, 3], [1, 2, 3], [2, 2, 4]],
        "view_scopes": [[1, 2]],
    })
}

fn build(ir: &Value) -> Arc<RouteTable> {
    Arc::new(RouteTable::from_json(&ir.to_string()).expect("valid IR"))
}

fn patched(table: &RouteTable, patch: &Value) -> Arc<RouteTable> {
    Arc::new(table.patched(&patch.to_string()).expect("valid patch"))
}

/// Every decision (route() as JSON, exchange()) for a grid of clients, hosts, paths, headers and
/// seeds.
fn decisions(table: &Arc<RouteTable>) -> Vec<String> {
    let clients: [(&str, Option<u16>, Option<&str>); 5] = [
        ("mesh", None, Some("default")),
        ("mesh", None, Some("prod")),
        ("mesh", None, Some("elsewhere")),
        ("default/gw", Some(80), None),
        ("default/gw", Some(81), None),
    ];
    let hosts = [
        "reviews",
        "reviews:9080",
        REVIEWS,
        "ratings.default",
        RATINGS,
        "details",
        DETAILS,
        "details.example.com",
        "reviews.example.com",
        "unknown.test",
        "x.test",
        "a.b.test",
    ];
    let header_sets: [&[(&str, &str)]; 4] = [
        &[],
        &[("end-user", "jason")],
        &[("x-user", "u1")],
        &[("cookie", "s=abc"), ("end-user", "jason")],
    ];
    let mut out = Vec::new();
    for (gateway, port, ns) in clients {
        let ctx = ListenerContext {
            gateway_port: port,
            source_namespace: ns.map(str::to_owned),
            source_labels: Vec::new(),
        };
        for host in hosts {
            for path in ["/", "/r/1", "/gw/x"] {
                for headers in header_sets {
                    for seed in 0..6 {
                        let req = Request {
                            authority: host,
                            path,
                            headers,
                            gateway,
                            port,
                            source_namespace: ns,
                            ..Request::default()
                        };
                        let d = table.route(&req, &mut SplitMix64::new(seed));
                        let mut raw: Vec<(&[u8], &[u8])> = vec![
                            (b":authority", host.as_bytes()),
                            (b":path", path.as_bytes()),
                            (b":method", b"GET"),
                            (b":scheme", b"http"),
                        ];
                        raw.extend(headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
                        let x = table.exchange(&ctx, &raw, &mut SplitMix64::new(seed));
                        out.push(format!(
                            "{gateway} {ns:?} {host} {path} {headers:?} {seed}: {} {x:?}",
                            d.to_json()
                        ));
                    }
                }
            }
        }
    }
    out
}

fn assert_same(got: &[String], want: &[String]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w);
    }
}

#[test]
fn patched_table_decides_as_the_full_build() {
    let a = build(&ir1());
    let before = decisions(&a);
    let b = patched(&a, &patch_1_to_2());
    let want = decisions(&build(&ir2()));
    assert_same(&decisions(&b), &want);
    // The patch changed something, and the old table still answers as it did.
    assert_ne!(before, want);
    assert!(want.iter().any(|d| d.contains("outbound|9080|v3|reviews")));
    assert!(want.iter().any(|d| d.contains("outbound|9080||details")));
    assert_same(&decisions(&a), &before);
    assert_eq!(b.route_count(), 6);
}

#[test]
fn patches_chain() {
    // IR 1 → IR 2 in two steps: the targets, policy and routes first, then the rest.
    let a = build(&ir1());
    let mut full = patch_1_to_2();
    let mut first = json!({"patch": 1, "base": full["base"].clone()});
    for key in ["routes", "targets", "policies"] {
        first[key] = full.as_object_mut().and_then(|m| m.remove(key)).expect(key);
    }
    let mid = patched(&a, &first);
    full["base"] = json!({"routes": 6, "targets": 7, "policies": 3, "scopes": 2, "views": 3});
    let b = patched(&mid, &full);
    assert_same(&decisions(&b), &decisions(&build(&ir2())));
    // An empty patch is the same table.
    let same = patched(
        &b,
        &json!({"patch": 1, "base": {"routes": 6, "targets": 7, "policies": 3,
                                                       "scopes": 3, "views": 3}}),
    );
    assert_same(&decisions(&same), &decisions(&b));
}

/// Every way a patch can be wrong, with the kind and path of its error.
#[test]
fn bad_patches_are_refused_with_their_path() {
    let a = build(&ir1());
    let before = decisions(&a);
    let cases: Vec<(&str, Value, ErrorKind, &str)> = vec![
        (
            "/base/routes",
            json!(4),
            ErrorKind::Value,
            "patch.base.routes",
        ),
        (
            "/base/targets",
            json!(6),
            ErrorKind::Value,
            "patch.base.targets",
        ),
        (
            "/base/policies",
            json!(1),
            ErrorKind::Value,
            "patch.base.policies",
        ),
        (
            "/base/scopes",
            json!(3),
            ErrorKind::Value,
            "patch.base.scopes",
        ),
        (
            "/base/views",
            json!(2),
            ErrorKind::Value,
            "patch.base.views",
        ),
        ("/patch", json!(2), ErrorKind::Version, "patch.patch"),
        (
            "/policies/0",
            json!("{not json"),
            ErrorKind::Value,
            "patch.policies[0]",
        ),
        (
            "/routes/0/action/route/destinations/1/target",
            json!(7),
            ErrorKind::Reference,
            "patch.routes[0].action.route.destinations[1].target",
        ),
        (
            "/routes/0/vs",
            json!(2),
            ErrorKind::Reference,
            "patch.routes[0].vs",
        ),
        (
            "/routes/0/matches/0/gateways/1",
            json!(2),
            ErrorKind::Reference,
            "patch.routes[0].matches[0].gateways[1]",
        ),
        (
            "/routes/0/matches/0/headers/0/match",
            json!({"regex": "(unclosed"}),
            ErrorKind::Regex,
            "patch.routes[0].matches[0].headers[0].match.regex",
        ),
        (
            "/routes/0/matches/0/uri",
            json!({"regex": "a)"}),
            ErrorKind::Regex,
            "patch.routes[0].matches[0].uri.regex",
        ),
        (
            "/vhosts/0/routes/2",
            json!(6),
            ErrorKind::Reference,
            "patch.vhosts[0].routes[2]",
        ),
        (
            "/vhosts/3/default_target",
            json!(7),
            ErrorKind::Reference,
            "patch.vhosts[3].default_target",
        ),
        (
            "/scopes/0/1/clusters/1/0",
            json!(7),
            ErrorKind::Reference,
            "patch.scopes[0][1].clusters[1][0]",
        ),
        (
            "/scopes/0/1/clusters/3/2",
            json!(3),
            ErrorKind::Reference,
            "patch.scopes[0][1].clusters[3][2]",
        ),
        (
            "/scopes/1/0",
            json!(3),
            ErrorKind::Reference,
            "patch.scopes[1][0]",
        ),
        (
            "/placements/0/0",
            json!(3),
            ErrorKind::Reference,
            "patch.placements[0][0]",
        ),
        (
            "/placements/4/1",
            json!(4),
            ErrorKind::Reference,
            "patch.placements[4][1]",
        ),
        (
            "/placements/2/2",
            json!(5),
            ErrorKind::Reference,
            "patch.placements[2][2]",
        ),
        (
            "/view_scopes/0/0",
            json!(3),
            ErrorKind::Reference,
            "patch.view_scopes[0][0]",
        ),
        (
            "/view_scopes/0/1",
            json!(3),
            ErrorKind::Reference,
            "patch.view_scopes[0][1]",
        ),
        (
            "/vhosts/1/domain",
            json!(["x"]),
            ErrorKind::Schema,
            "patch.vhosts[1].domain",
        ),
        (
            "/placements/1",
            json!([1, 0]),
            ErrorKind::Schema,
            "patch.placements[1]",
        ),
        (
            "/routes/0/index",
            json!("zero"),
            ErrorKind::Schema,
            "patch.routes[0].index",
        ),
        ("/views", json!([]), ErrorKind::Schema, "patch.views"),
    ];
    for (pointer, value, kind, path) in cases {
        let mut patch = patch_1_to_2();
        let (parent, key) = pointer.rsplit_once('/').expect("pointer");
        let slot = if parent.is_empty() {
            &mut patch
        } else {
            patch.pointer_mut(parent).expect(pointer)
        };
        match slot {
            Value::Array(list) => list[key.parse::<usize>().expect("index")] = value,
            Value::Object(map) => {
                map.insert(key.to_owned(), value);
            }
            _ => panic!("{pointer}"),
        }
        let err = a
            .patched(&patch.to_string())
            .err()
            .unwrap_or_else(|| panic!("{pointer}: accepted"));
        assert_eq!(err.kind(), kind, "{pointer}: {err}");
        assert_eq!(err.path(), path, "{pointer}: {err}");
    }
    // A missing base, and text that is not a patch at all.
    for text in [r#"{"patch": 1}"#, "", "[]", "{\"patch\": 1, \"base\": "] {
        let err = a.patched(text).err().expect("refused");
        assert_eq!(err.kind(), ErrorKind::Schema, "{text}: {err}");
        assert!(err.path().starts_with("patch"), "{text}: {err}");
    }
    assert_same(&decisions(&a), &before);
}

/// A small PRNG-driven generator of valid patches for IR 1 (ids tracked as the patch grows), and
/// the patch applied to IR 1's JSON the plain way: the reference `patched` must agree with.
struct Gen(SplitMix64);

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        use meshroute_core::Rng;
        (self.0.next_u64() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A patch for the table built from `ir`.
    fn patch(&mut self, ir: &Value) -> Value {
        let len = |key: &str| ir[key].as_array().map_or(0, Vec::len);
        let base = json!({"routes": len("routes"), "targets": len("targets"),
                          "policies": len("policies"), "scopes": len("scopes"), "views": 3});
        let (mut routes, mut targets, mut policies, mut scopes) = (
            len("routes"),
            len("targets"),
            len("policies"),
            len("scopes"),
        );
        let hosts = [REVIEWS, RATINGS, DETAILS, "x.test"];
        let subsets = [None, Some("v1"), Some("v9")];
        let new_targets: Vec<Value> = (0..self.below(3))
            .map(|_| {
                let port = *self.pick(&[None, Some(9080)]);
                let host = *self.pick::<&str>(&hosts);
                target(host, *self.pick(&subsets), port)
            })
            .collect();
        targets += new_targets.len();
        let new_policies: Vec<Value> = (0..self.below(3))
            .map(|_| json!(self.pick(&["{}", HASH_BY_USER, HASH_BY_COOKIE])))
            .collect();
        policies += new_policies.len();
        let new_routes: Vec<Value> = (0..self.below(5))
            .map(|i| {
                let gateways = self.pick(&[json!([0]), json!([1]), json!([0, 1])]).clone();
                let matches = match self.below(4) {
                    0 => json!([]),
                    1 => jason(gateways),
                    2 => json!([{"uri": {"prefix": "/r"}, "gateways": gateways}]),
                    _ => json!([{"uri": {"regex": "/gw/.*"}, "gateways": gateways},
                                {"headers": [{"name": "x-user", "match": {"present": true}}],
                                 "gateways": [0, 1]}]),
                };
                let dests: Vec<Value> = (0..=self.below(3))
                    .map(|_| json!({"target": self.below(targets), "weight": 1 + self.below(99)}))
                    .collect();
                let extra = self.pick(&[json!({}), json!({"timeout_ms": 250})]).clone();
                forward(
                    self.below(2) as u32,
                    10 + i as u32,
                    matches,
                    json!(dests),
                    extra,
                )
            })
            .collect();
        routes += new_routes.len();
        let mut new_scopes = Vec::new();
        for _ in 0..self.below(3) {
            let id = self.below(scopes + 1);
            let clusters: Vec<Value> = (0..self.below(8))
                .map(|_| {
                    json!([
                        self.below(targets),
                        self.pick(&[9080, 80]),
                        self.below(policies)
                    ])
                })
                .collect();
            new_scopes.push(json!([id, {"clusters": clusters}]));
            scopes = scopes.max(id + 1);
        }
        let domain_sets: [&[&str]; 6] = [
            &REVIEWS_OWN,
            &REVIEWS_FOREIGN,
            &RATINGS_FOREIGN,
            &DETAILS_OWN,
            &["*.test", "details.example.com"],
            &["*"],
        ];
        let new_vhosts: Vec<Value> = (0..self.below(4))
            .map(|_| {
                let ids: Vec<u32> = (0..self.below(4))
                    .map(|_| self.below(routes) as u32)
                    .collect();
                let t = self.below(targets) as u32;
                let default = *self.pick(&[None, Some(t)]);
                let domains = *self.pick::<&[&str]>(&domain_sets);
                vhost(domains, &ids, default)
            })
            .collect();
        let mut lens = [0, 1, 2].map(|v| ir["views"][v]["vhosts"].as_array().map_or(0, Vec::len));
        let mut placements = Vec::new();
        if !new_vhosts.is_empty() {
            for _ in 0..self.below(7) {
                let view = self.below(3);
                let position = self.below(lens[view] + 1);
                lens[view] = lens[view].max(position + 1);
                placements.push(json!([view, position, self.below(new_vhosts.len())]));
            }
        }
        let view_scopes: Vec<Value> = (0..self.below(3))
            .map(|_| json!([self.below(3), self.below(scopes)]))
            .collect();
        json!({
            "patch": 1,
            "base": base,
            "routes": new_routes, "targets": new_targets, "policies": new_policies,
            "scopes": new_scopes, "vhosts": new_vhosts, "placements": placements,
            "view_scopes": view_scopes,
        })
    }
}

/// IR 1 with `patch` applied to its JSON: lists appended, scopes replaced, every view's vhosts
/// written out and then placed, view scopes set.
fn apply_to_json(ir: &Value, patch: &Value) -> Value {
    let mut ir = ir.clone();
    for key in ["routes", "targets", "policies"] {
        let list = ir[key].as_array_mut().expect("list");
        list.extend(patch[key].as_array().expect("list").iter().cloned());
    }
    for entry in patch["scopes"].as_array().expect("scopes") {
        let id = entry[0].as_u64().expect("id") as usize;
        let scopes = ir["scopes"].as_array_mut().expect("scopes");
        if id < scopes.len() {
            scopes[id] = entry[1].clone();
        } else {
            scopes.push(entry[1].clone());
        }
    }
    let pool = ir["vhost_pool"].clone();
    for view in ir["views"].as_array_mut().expect("views") {
        for v in view["vhosts"].as_array_mut().expect("vhosts") {
            if let Some(id) = v.as_u64() {
                *v = pool[id as usize].clone();
            }
        }
    }
    for p in patch["placements"].as_array().expect("placements") {
        let (view, pos, k) = (
            p[0].as_u64().unwrap(),
            p[1].as_u64().unwrap(),
            p[2].as_u64().unwrap(),
        );
        let vhost = patch["vhosts"][k as usize].clone();
        let list = ir["views"][view as usize]["vhosts"]
            .as_array_mut()
            .expect("vhosts");
        if (pos as usize) < list.len() {
            list[pos as usize] = vhost;
        } else {
            list.push(vhost);
        }
    }
    for vs in patch["view_scopes"].as_array().expect("view_scopes") {
        ir["views"][vs[0].as_u64().unwrap() as usize]["scope"] = vs[1].clone();
    }
    ir
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Two random patches in a row (the second on the first's table, as successive edits are
    /// applied) decide as the full build of IR 1 with both applied to its JSON.
    #[test]
    fn random_patches_decide_as_the_full_build(seed in any::<u64>()) {
        let mut gen = Gen(SplitMix64::new(seed));
        let first = gen.patch(&ir1());
        let mid_ir = apply_to_json(&ir1(), &first);
        let second = gen.patch(&mid_ir);
        let fail = |e: meshroute_core::CompileError, p: &Value| TestCaseError::fail(format!("{e}: {p}"));
        let mid = Arc::new(table1().patched(&first.to_string()).map_err(|e| fail(e, &first))?);
        prop_assert_eq!(decisions(&mid), decisions(&build(&mid_ir)), "{}", first);
        let end = Arc::new(mid.patched(&second.to_string()).map_err(|e| fail(e, &second))?);
        let want = decisions(&build(&apply_to_json(&mid_ir, &second)));
        prop_assert_eq!(decisions(&end), want, "{} then {}", first, second);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary text, and a valid patch with a slice replaced by arbitrary text: an error or a
    /// table, never a panic.
    #[test]
    fn patched_never_panics(noise in ".{0,40}", at in 0usize..2000, len in 0usize..12) {
        let a = table1();
        let _ = a.patched(&noise);
        let text = patch_1_to_2().to_string();
        let start = text.char_indices().map(|(i, _)| i).find(|&i| i >= at.min(text.len())).unwrap_or(text.len());
        let end = text[start..].char_indices().nth(len).map_or(text.len(), |(i, _)| start + i);
        let mangled = format!("{}{noise}{}", &text[..start], &text[end..]);
        if let Ok(t) = a.patched(&mangled) {
            let _ = Arc::new(t).route(&Request { authority: "reviews", ..Request::default() }, &mut SplitMix64::new(1));
        }
    }
}

fn table1() -> Arc<RouteTable> {
    static TABLE: std::sync::OnceLock<Arc<RouteTable>> = std::sync::OnceLock::new();
    Arc::clone(TABLE.get_or_init(|| build(&ir1())))
}
