"""DestinationRule, Gateway, ServiceEntry, WorkloadEntry and Sidecar messages (semantics §3-§6)."""

from __future__ import annotations

from meshroute.config.validate.schema_types import (
    LABELS,
    STR,
    STRS,
    Enum,
    FieldType,
    ListOf,
    MapOf,
    Message,
)

_POLICY_BLOCKS: dict[str, FieldType] = {
    "loadBalancer": "LoadBalancerSettings",
    "connectionPool": "ConnectionPoolSettings",
    "outlierDetection": "OutlierDetection",
    "tls": "ClientTLSSettings",
}

DR_MESSAGES: dict[str, Message] = {
    "DestinationRule": Message(
        {
            "host": STR,
            "trafficPolicy": "TrafficPolicy",
            "subsets": ListOf("Subset"),
            "exportTo": STRS,
            "workloadSelector": "DRWorkloadSelector",
        },
        required=("host",),
    ),
    "DRWorkloadSelector": Message({"matchLabels": LABELS}),
    "TrafficPolicy": Message(
        {
            **_POLICY_BLOCKS,
            "portLevelSettings": ListOf("PortTrafficPolicy"),
            "tunnel": "TunnelSettings",
            "proxyProtocol": "ProxyProtocol",
            "retryBudget": "RetryBudget",
        }
    ),
    "PortTrafficPolicy": Message({"port": "PortSelector", **_POLICY_BLOCKS}),
    "Subset": Message({"name": STR, "labels": LABELS, "trafficPolicy": "TrafficPolicy"}, required=("name",)),
    "LoadBalancerSettings": Message(
        {
            "simple": Enum(
                ("UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST")
            ),
            "consistentHash": "ConsistentHashLB",
            "localityLbSetting": "LocalityLbSetting",
            "zoneAwareLbSetting": "ZoneAwareLbSetting",
            "warmupDurationSecs": "duration",
            "warmup": "WarmupConfiguration",
        },
        oneofs=(("simple", "consistentHash"), ("warmupDurationSecs", "warmup")),
    ),
    "ConsistentHashLB": Message(
        {
            "httpHeaderName": STR,
            "httpCookie": "HTTPCookie",
            "useSourceIp": "bool",
            "httpQueryParameterName": STR,
            "ringHash": "RingHash",
            "maglev": "MagLev",
            "minimumRingSize": "uint64",
        },
        oneofs=(
            ("httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"),
            ("ringHash", "maglev"),
        ),
    ),
    "RingHash": Message({"minimumRingSize": "uint64"}),
    "MagLev": Message({"tableSize": "uint64"}),
    "HTTPCookie": Message(
        {"name": STR, "path": STR, "ttl": "duration_any", "attributes": ListOf("CookieAttribute")},
        required=("name",),
    ),
    "CookieAttribute": Message({"name": STR, "value": STR}, required=("name",)),
    "LocalityLbSetting": Message(
        {
            "distribute": ListOf("LocalityDistribute"),
            "failover": ListOf("LocalityFailover"),
            "failoverPriority": STRS,
            "enabled": "bool",
        }
    ),
    "ZoneAwareLbSetting": Message(
        {
            "enabled": "bool",
            "failover": ListOf("LocalityFailover"),
            "failoverPriority": STRS,
            "minClusterSize": "uint64",
        }
    ),
    "LocalityDistribute": Message({"from": STR, "to": MapOf("uint32")}),
    "LocalityFailover": Message({"from": STR, "to": STR}),
    "WarmupConfiguration": Message(
        {"duration": "duration", "minimumPercent": "double", "aggression": "double"}, required=("duration",)
    ),
    "ConnectionPoolSettings": Message({"tcp": "TCPSettings", "http": "HTTPSettings"}),
    "TCPSettings": Message(
        {
            "maxConnections": "int32",
            "connectTimeout": "duration",
            "tcpKeepalive": "TcpKeepalive",
            "maxConnectionDuration": "duration",
            "idleTimeout": "duration_idle",
        }
    ),
    "TcpKeepalive": Message({"probes": "uint32", "time": "duration", "interval": "duration"}),
    "HTTPSettings": Message(
        {
            "http1MaxPendingRequests": "int32",
            "http2MaxRequests": "int32",
            "maxRequestsPerConnection": "int32",
            "maxRetries": "int32",
            "idleTimeout": "duration",
            "h2UpgradePolicy": Enum(("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE")),
            "useClientProtocol": "bool",
            "maxConcurrentStreams": "int32",
            "http2KeepAlive": "Http2KeepAlive",
        }
    ),
    "Http2KeepAlive": Message(
        {"interval": "duration", "timeout": "duration"}, required=("interval", "timeout")
    ),
    "OutlierDetection": Message(
        {
            "consecutiveErrors": "int32",
            "splitExternalLocalOriginErrors": "bool",
            "consecutiveLocalOriginFailures": "uint32",
            "consecutiveGatewayErrors": "uint32",
            "consecutive5xxErrors": "uint32",
            "interval": "duration",
            "baseEjectionTime": "duration",
            "maxEjectionPercent": "int32",
            "minHealthPercent": "int32",
            "outlierDetectionHttpErrorCodes": ListOf("uint32"),
        }
    ),
    "ClientTLSSettings": Message(
        {
            "mode": Enum(("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")),
            "clientCertificate": STR,
            "privateKey": STR,
            "caCertificates": STR,
            "credentialName": STR,
            "subjectAltNames": STRS,
            "sni": STR,
            "insecureSkipVerify": "bool",
            "caCrl": STR,
        }
    ),
    "TunnelSettings": Message(
        {"protocol": STR, "targetHost": STR, "targetPort": "uint32"}, required=("targetHost", "targetPort")
    ),
    "ProxyProtocol": Message({"version": Enum(("V1", "V2"))}),
    "RetryBudget": Message(
        {"percent": "double", "minRetryConcurrency": "uint32", "budgetInterval": "duration_any"}
    ),
}

_TLS_VERSION = Enum(("TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"))
_PORT_FIELDS: dict[str, FieldType] = {
    "number": "uint32",
    "protocol": STR,
    "name": STR,
    "targetPort": "uint32",
}

GW_MESSAGES: dict[str, Message] = {
    "Gateway": Message({"servers": ListOf("Server"), "selector": LABELS}),
    "Server": Message(
        {
            "port": "Port",
            "bind": STR,
            "hosts": STRS,
            "tls": "ServerTLSSettings",
            "defaultEndpoint": STR,
            "name": STR,
        },
        required=("port", "hosts"),
    ),
    "Port": Message(_PORT_FIELDS, required=("number", "protocol", "name")),
    "ServerTLSSettings": Message(
        {
            "httpsRedirect": "bool",
            "mode": Enum(
                ("PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL")
            ),
            "serverCertificate": STR,
            "privateKey": STR,
            "caCertificates": STR,
            "caCrl": STR,
            "credentialName": STR,
            "credentialNames": STRS,
            "tlsCertificates": ListOf("TLSCertificate"),
            "caCertCredentialName": STR,
            "subjectAltNames": STRS,
            "verifyCertificateSpki": STRS,
            "verifyCertificateHash": STRS,
            "minProtocolVersion": _TLS_VERSION,
            "maxProtocolVersion": _TLS_VERSION,
            "cipherSuites": STRS,
            "insecureSkipVerify": "bool",
        }
    ),
    "TLSCertificate": Message({"serverCertificate": STR, "privateKey": STR, "caCertificates": STR}),
}

SE_MESSAGES: dict[str, Message] = {
    "ServiceEntry": Message(
        {
            "hosts": STRS,
            "addresses": STRS,
            "ports": ListOf("ServicePort"),
            "location": Enum(("MESH_EXTERNAL", "MESH_INTERNAL")),
            "resolution": Enum(("NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS")),
            "endpoints": ListOf("WorkloadEntry"),
            "workloadSelector": "WorkloadSelector",
            "exportTo": STRS,
            "subjectAltNames": STRS,
        },
        required=("hosts",),
    ),
    "ServicePort": Message(_PORT_FIELDS, required=("number", "name")),
    "WorkloadEntry": Message(
        {
            "address": STR,
            "ports": MapOf("uint32"),
            "labels": LABELS,
            "network": STR,
            "locality": STR,
            "weight": "uint32",
            "serviceAccount": STR,
        }
    ),
    "WorkloadSelector": Message({"labels": LABELS}),
}

SC_MESSAGES: dict[str, Message] = {
    "Sidecar": Message(
        {
            "workloadSelector": "WorkloadSelector",
            "ingress": ListOf("IstioIngressListener"),
            "egress": ListOf("IstioEgressListener"),
            "inboundConnectionPool": "ConnectionPoolSettings",
            "outboundTrafficPolicy": "OutboundTrafficPolicy",
        }
    ),
    "IstioIngressListener": Message(
        {
            "port": "SidecarPort",
            "bind": STR,
            "captureMode": Enum(("DEFAULT", "IPTABLES", "NONE")),
            "defaultEndpoint": STR,
            "tls": "ServerTLSSettings",
            "connectionPool": "ConnectionPoolSettings",
        },
        required=("port",),
    ),
    "IstioEgressListener": Message(
        {
            "port": "SidecarPort",
            "bind": STR,
            "captureMode": Enum(("DEFAULT", "IPTABLES", "NONE")),
            "hosts": STRS,
        },
        required=("hosts",),
    ),
    "SidecarPort": Message(_PORT_FIELDS),
    "OutboundTrafficPolicy": Message(
        {"mode": Enum(("REGISTRY_ONLY", "ALLOW_ANY", "ALLOW_ANY_DYNAMIC_DNS")), "egressProxy": "EgressProxy"}
    ),
    # egressProxy is a Destination whose port is required (§8.7)
    "EgressProxy": Message({"host": STR, "subset": STR, "port": "PortSelector"}, required=("host", "port")),
}
