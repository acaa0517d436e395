"""Clusters: names, DestinationRule policy translation, ext_proc cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import meshroute
from meshroute.envoy import Options, build_bootstrap
from meshroute.envoy.clusters import UNLIMITED
from tests.conftest import SAMPLES
from tests.envoy.helpers import clusters, generate

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: default}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000, targetPort: 80}, {name: grpc, port: 9000}]
"""
HOST = "httpbin.default.svc.cluster.local"
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def test_bookinfo_cluster_names() -> None:
    config = build_bootstrap(meshroute.analyze([meshroute.bookinfo_path()]))
    names = set(clusters(config))
    assert "meshroute_extproc" in names
    assert "outbound|9080||reviews.default.svc.cluster.local" in names
    assert {f"outbound|9080|{v}|reviews.default.svc.cluster.local" for v in ("v1", "v2", "v3")} <= names
    assert {"PassthroughCluster", "BlackHoleCluster"} <= names
    reviews = clusters(config)["outbound|9080||reviews.default.svc.cluster.local"]
    # Istio defaults: LEAST_REQUEST, 10s connect timeout, "unlimited" circuit breakers.
    assert reviews["lb_policy"] == "LEAST_REQUEST"
    assert reviews["connect_timeout"] == "10s"
    (threshold,) = reviews["circuit_breakers"]["thresholds"]
    assert threshold["max_connections"] == threshold["max_retries"] == UNLIMITED
    assert "outlier_detection" not in reviews


def test_circuit_breaker_sample(tmp_path: Path) -> None:
    dr = (SAMPLES / "istio-io-task-snippets/circuit-breaking/httpbin-destination-rule.yaml").read_text()
    generated = generate(tmp_path, SERVICE + "---\n" + dr)
    cluster = clusters(generated.config)[f"outbound|8000||{HOST}"]
    (threshold,) = cluster["circuit_breakers"]["thresholds"]
    assert threshold["max_connections"] == 1
    assert threshold["max_pending_requests"] == 1
    assert threshold["max_requests"] == UNLIMITED
    options = cluster["typed_extension_protocol_options"][HTTP_OPTIONS]
    assert options["common_http_protocol_options"] == {"max_requests_per_connection": 1}
    assert options["explicit_http_config"] == {"http_protocol_options": {}}
    assert cluster["outlier_detection"] == {
        "enforcing_success_rate": 0,
        "consecutive_5xx": 1,
        "enforcing_consecutive_5xx": 100,
        "interval": "1s",
        "base_ejection_time": "180s",
        "max_ejection_percent": 100,
    }
    # minHealthPercent unset: Istio disables panic mode (Envoy's default would be 50%).
    assert cluster["common_lb_config"] == {"healthy_panic_threshold": {"value": 0.0}}


POLICY_DR = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: default}
spec:
  host: httpbin
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {maxConnections: 7, connectTimeout: 250ms, idleTimeout: 30s}
      http: {http2MaxRequests: 9, maxRetries: 2, http1MaxPendingRequests: 5}
    outlierDetection: {consecutiveGatewayErrors: 3, consecutive5xxErrors: 0, minHealthPercent: 40}
    portLevelSettings:
    - port: {number: 9000}
      loadBalancer:
        consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 2048}}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
      connectionPool: {http: {maxRetries: 4}}
  - name: maglev
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 1031}}}
"""


def test_policy_translation_and_merging(tmp_path: Path) -> None:
    config = generate(tmp_path, SERVICE + POLICY_DR).config
    by_name = clusters(config)
    top = by_name[f"outbound|8000||{HOST}"]
    assert top["lb_policy"] == "ROUND_ROBIN"
    assert top["connect_timeout"] == "0.250s"
    (threshold,) = top["circuit_breakers"]["thresholds"]
    assert (threshold["max_connections"], threshold["max_requests"], threshold["max_retries"]) == (7, 9, 2)
    assert threshold["max_pending_requests"] == 5
    http_options = top["typed_extension_protocol_options"][HTTP_OPTIONS]
    # tcp.idleTimeout doubles as the HTTP idle timeout when http.idleTimeout is unset.
    assert http_options["common_http_protocol_options"] == {"idle_timeout": "30s"}
    assert top["outlier_detection"]["consecutive_gateway_failure"] == 3
    assert top["outlier_detection"]["enforcing_consecutive_gateway_failure"] == 100
    assert top["outlier_detection"]["consecutive_5xx"] == 0
    assert top["outlier_detection"]["enforcing_consecutive_5xx"] == 0
    assert top["common_lb_config"]["healthy_panic_threshold"] == {"value": 40.0}

    # The port-level entry replaces the whole top-level policy on port 9000 (semantics §3.2).
    grpc = by_name[f"outbound|9000||{HOST}"]
    assert grpc["lb_policy"] == "RING_HASH"
    assert grpc["ring_hash_lb_config"] == {"minimum_ring_size": 2048}
    assert grpc["circuit_breakers"]["thresholds"][0]["max_connections"] == UNLIMITED
    assert "outlier_detection" not in grpc
    # A port named grpc is HTTP/2 upstream.
    grpc_options = grpc["typed_extension_protocol_options"][HTTP_OPTIONS]
    assert grpc_options["explicit_http_config"] == {"http2_protocol_options": {}}

    # Subsets replace whole blocks: v2's connectionPool drops the top-level tcp limits.
    v1, v2 = by_name[f"outbound|8000|v1|{HOST}"], by_name[f"outbound|8000|v2|{HOST}"]
    assert v1["lb_policy"] == "ROUND_ROBIN"
    assert v1["circuit_breakers"] == top["circuit_breakers"]
    assert v2["lb_policy"] == "RANDOM"
    (v2_threshold,) = v2["circuit_breakers"]["thresholds"]
    assert (v2_threshold["max_connections"], v2_threshold["max_retries"]) == (UNLIMITED, 4)
    assert v2["outlier_detection"] == top["outlier_detection"]
    maglev = by_name[f"outbound|8000|maglev|{HOST}"]
    assert maglev["lb_policy"] == "MAGLEV"
    assert maglev["maglev_lb_config"] == {"table_size": 1031}


def test_upstream_tls(tmp_path: Path) -> None:
    text = """
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: ext, namespace: default}
    spec:
      hosts: [api.example.com]
      ports: [{number: 443, name: https, protocol: HTTPS}, {number: 80, name: http, protocol: HTTP}]
      resolution: DNS
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: ext, namespace: default}
    spec:
      host: api.example.com
      trafficPolicy:
        tls: {mode: ISTIO_MUTUAL}
        portLevelSettings:
        - port: {number: 443}
          tls: {mode: SIMPLE, caCertificates: CA_FILE, subjectAltNames: [api.example.com]}
    """
    ca_file = tmp_path / "ca.pem"  # envoy-config leaves out a cluster whose files cannot be read
    ca_file.write_text("not read by envoy-config\n")
    generated = generate(tmp_path, text.replace("CA_FILE", str(ca_file)))
    by_name = clusters(generated.config)
    tls = by_name["outbound|443||api.example.com"]["transport_socket"]
    assert tls["name"] == "envoy.transport_sockets.tls"
    context = tls["typed_config"]
    assert context["@type"].endswith("UpstreamTlsContext")
    assert context["sni"] == "api.example.com"
    validation = context["common_tls_context"]["validation_context"]
    assert validation["trusted_ca"] == {"filename": str(ca_file)}
    assert validation["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "api.example.com"}}
    ]
    # ISTIO_MUTUAL cannot be honoured: plaintext plus a warning naming the cluster.
    assert "transport_socket" not in by_name["outbound|80||api.example.com"]
    messages = [w.message for w in generated.warnings]
    assert any("outbound|80||api.example.com" in m and "ISTIO_MUTUAL" in m for m in messages)


def test_passthrough_lb_makes_original_dst(tmp_path: Path) -> None:
    text = (
        SERVICE
        + """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: default}
spec:
  host: httpbin
  trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}
"""
    )
    cluster = clusters(generate(tmp_path, text).config)[f"outbound|8000||{HOST}"]
    assert cluster["type"] == "ORIGINAL_DST"
    assert cluster["lb_policy"] == "CLUSTER_PROVIDED"
    assert cluster["original_dst_lb_config"] == {"use_http_header": True}
    assert "load_assignment" not in cluster


def test_extproc_cluster_addresses() -> None:
    uds = Options(extproc=("unix:/tmp/m.sock.0", "unix:/tmp/m.sock.1"))
    cluster = clusters(build_bootstrap([], uds))["meshroute_extproc"]
    assert cluster["type"] == "STATIC"
    endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"] for e in endpoints] == [
        {"pipe": {"path": "/tmp/m.sock.0"}},
        {"pipe": {"path": "/tmp/m.sock.1"}},
    ]
    options = cluster["typed_extension_protocol_options"][HTTP_OPTIONS]
    assert options["explicit_http_config"] == {"http2_protocol_options": {}}
    assert cluster["circuit_breakers"]["thresholds"][0]["max_requests"] > 1024

    tcp = clusters(build_bootstrap([], Options(extproc=("127.0.0.1:9000",))))["meshroute_extproc"]
    assert tcp["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "socket_address": {"address": "127.0.0.1", "port_value": 9000}
    }


def test_extproc_cluster_health_checks_every_worker_over_grpc() -> None:
    from meshroute.envoy.common import duration
    from meshroute.extproc import HEALTH_INTERVAL_MS, HEALTH_UNHEALTHY_THRESHOLD

    uds = Options(extproc=("unix:/tmp/m.sock.0", "unix:/tmp/m.sock.1"))
    [check] = clusters(build_bootstrap([], uds))["meshroute_extproc"]["health_checks"]
    assert check["grpc_health_check"] == {}  # service "": the whole server, as serve reports it
    assert check["interval"] == check["no_traffic_interval"] == duration(f"{HEALTH_INTERVAL_MS}ms")
    assert (check["unhealthy_threshold"], check["healthy_threshold"]) == (HEALTH_UNHEALTHY_THRESHOLD, 1)
    assert check["timeout"] == "1s"


def lb_config(cluster: dict[str, Any]) -> dict[str, Any]:
    """The module's ``lb_policy_config`` of a ``--lb rust`` cluster."""
    (policy,) = cluster["load_balancing_policy"]["policies"]
    extension = policy["typed_extension_config"]
    assert extension["name"] == "envoy.load_balancing_policies.dynamic_modules"
    typed = extension["typed_config"]
    assert typed["@type"].endswith("DynamicModulesLoadBalancerConfig")
    assert typed["dynamic_module_config"] == {"module": {"local": {"filename": "/abs/libmeshroute_envoy.so"}}}
    assert typed["lb_policy_name"] == "meshroute"
    assert typed["lb_policy_config"]["@type"] == "type.googleapis.com/google.protobuf.StringValue"
    config: dict[str, Any] = json.loads(typed["lb_policy_config"]["value"])
    return config


def test_lb_rust_puts_the_effective_policy_in_the_module_config(tmp_path: Path) -> None:
    options = Options(lb="rust", lb_module="/abs/libmeshroute_envoy.so", lb_seed=5)
    generated = generate(tmp_path, SERVICE + POLICY_DR, options)
    by_name = clusters(generated.config)
    top = by_name[f"outbound|8000||{HOST}"]
    assert "lb_policy" not in top
    assert lb_config(top) == {"cluster": f"outbound|8000||{HOST}", "policy": "ROUND_ROBIN", "seed": 5}
    # The rest of the policy is Envoy's as before; panic mode cannot be (the module answers
    # healthy hosts only): no common_lb_config, and a warning for minHealthPercent 40.
    assert top["outlier_detection"]["consecutive_gateway_failure"] == 3
    assert top["circuit_breakers"]["thresholds"][0]["max_connections"] == 7
    assert "common_lb_config" not in top
    assert any("minHealthPercent" in d.message for d in generated.warnings), generated.warnings
    assert lb_config(by_name[f"outbound|9000||{HOST}"]) == {
        "cluster": f"outbound|9000||{HOST}", "policy": "RING_HASH", "minimum_ring_size": 2048,
        "hash": {"header": "x-user"}, "hash_header": "x-meshroute-hash", "seed": 5,
    }  # fmt: skip
    assert lb_config(by_name[f"outbound|8000|v2|{HOST}"])["policy"] == "RANDOM"
    maglev = lb_config(by_name[f"outbound|8000|maglev|{HOST}"])
    assert (maglev["policy"], maglev["table_size"], maglev["hash"]) == ("MAGLEV", 1031, {"source_ip": True})
    # Built-in clusters keep Envoy's own balancing.
    assert by_name["PassthroughCluster"]["lb_policy"] == "CLUSTER_PROVIDED"
    assert "load_balancing_policy" not in by_name["meshroute_extproc"]


def test_lb_rust_defaults_to_least_request_and_leaves_passthrough_alone(tmp_path: Path) -> None:
    text = (
        SERVICE
        + """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: default}
spec:
  host: httpbin
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST, warmupDurationSecs: 30s}}
  subsets: [{name: raw, labels: {version: v1}, trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}}]
"""
    )
    generated = generate(tmp_path, text, Options(lb="rust", lb_module="/abs/libmeshroute_envoy.so"))
    by_name = clusters(generated.config)
    assert lb_config(by_name[f"outbound|8000||{HOST}"]) == {
        "cluster": f"outbound|8000||{HOST}",
        "policy": "LEAST_REQUEST",
        "warmup": {"duration_ms": 30000},  # slow start in the module
    }
    raw = by_name[f"outbound|8000|raw|{HOST}"]
    assert raw["type"] == "ORIGINAL_DST" and raw["lb_policy"] == "CLUSTER_PROVIDED"
    assert "load_balancing_policy" not in raw
    assert not any("warmup" in d.message for d in generated.warnings), generated.warnings


def test_lb_rust_without_a_module_path_uses_the_packaged_module(tmp_path: Path) -> None:
    from meshroute.envoy.module import module_path

    generated = generate(tmp_path, SERVICE, Options(lb="rust"))
    (policy,) = clusters(generated.config)[f"outbound|8000||{HOST}"]["load_balancing_policy"]["policies"]
    module = policy["typed_extension_config"]["typed_config"]["dynamic_module_config"]["module"]
    assert module == {"local": {"filename": str(module_path())}}


def test_external_name_service_has_no_cluster(tmp_path: Path) -> None:
    # semantics §13: an alias is routed to the clusters of the service it names.
    text = (
        SERVICE
        + """
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: other}
spec: {type: ExternalName, externalName: httpbin.default.svc.cluster.local, ports: [{name: http, port: 8000}]}
"""
    )
    names = set(clusters(generate(tmp_path, text).config))
    assert f"outbound|8000||{HOST}" in names
    assert not any("alias.other" in name for name in names)


SELECTOR_DRS = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: everyone, namespace: default}
spec:
  host: httpbin
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 7}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: canary-clients, namespace: default}
spec:
  host: httpbin
  workloadSelector: {matchLabels: {app: canary}}
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 2}}}
  subsets: [{name: v2, labels: {version: v2}}]
"""


def _max_connections(cluster: dict[str, Any]) -> int:
    (threshold,) = cluster["circuit_breakers"]["thresholds"]
    return int(threshold["max_connections"])


def test_a_selector_destination_rule_applies_to_the_mesh_client_it_selects(tmp_path: Path) -> None:
    """DestinationRule workloadSelector (semantics §3.1): the mesh client whose --source-labels
    it selects gets its policy (and subsets); any other client the namespace-wide rule's."""
    selected = generate(
        tmp_path, SERVICE + SELECTOR_DRS, Options(source_namespace="default", source_labels={"app": "canary"})
    )
    built = clusters(selected.config)
    assert _max_connections(built[f"outbound|8000||{HOST}"]) == 2
    assert _max_connections(built[f"outbound|8000|v2|{HOST}"]) == 2
    other = clusters(generate(tmp_path, SERVICE + SELECTOR_DRS, Options(source_namespace="default")).config)
    assert _max_connections(other[f"outbound|8000||{HOST}"]) == 7
    assert f"outbound|8000|v2|{HOST}" not in other
