"""DestinationRule load balancer rules (semantics §8.3, D8-D12)."""

from __future__ import annotations

from typing import Any

from meshroute.config.diagnostics import Path
from meshroute.config.validate.context import Ctx, items, mapping, strings

MAX_MAGLEV_TABLE = 5_000_011
_TOPOLOGY_KEYS = frozenset(
    {"topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone"}
)


def check_load_balancer(ctx: Ctx, lb: Any, path: Path, *, has_outlier: bool) -> None:
    """D8-D12 for one ``loadBalancer`` block."""
    if not isinstance(lb, dict):
        return
    _check_consistent_hash(ctx, lb.get("consistentHash"), (*path, "consistentHash"))
    if "localityLbSetting" in lb and "zoneAwareLbSetting" in lb:
        ctx.error(
            "dr-locality-conflict",
            (*path, "zoneAwareLbSetting"),
            "localityLbSetting and zoneAwareLbSetting cannot both be set",
        )
    if "localityLbSetting" in lb:
        _check_locality(ctx, lb["localityLbSetting"], (*path, "localityLbSetting"), has_outlier)
    if "zoneAwareLbSetting" in lb:
        _check_zone_aware(ctx, lb["zoneAwareLbSetting"], (*path, "zoneAwareLbSetting"))
    warmup = mapping(lb.get("warmup"))
    percent = warmup.get("minimumPercent")
    if percent is not None and not 0 <= percent <= 100:
        ctx.error(
            "dr-warmup-invalid",
            (*path, "warmup", "minimumPercent"),
            f"minimumPercent {percent} must be between 0 and 100",
        )
    aggression = warmup.get("aggression")
    if aggression is not None and aggression <= 0:
        ctx.error(
            "dr-warmup-invalid",
            (*path, "warmup", "aggression"),
            f"aggression {aggression} must be greater than 0 (1.0 = linear ramp)",
        )


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    factor = 3
    while factor * factor <= n:
        if n % factor == 0:
            return False
        factor += 2
    return True


def _check_consistent_hash(ctx: Ctx, hashing: Any, path: Path) -> None:
    """D8: cookie attributes, deprecated minimumRingSize, maglev table size."""
    if not isinstance(hashing, dict):
        return
    names: set[str] = set()
    cookie_path = (*path, "httpCookie", "attributes")
    for i, attribute in items(mapping(hashing.get("httpCookie")).get("attributes")):
        name = attribute.get("name")
        if name == "" or name in names:
            ctx.error(
                "dr-cookie-attribute-invalid",
                (*cookie_path, i, "name"),
                "cookie attribute names must be non-empty and unique",
            )
        if isinstance(name, str):
            names.add(name)
    if "minimumRingSize" in hashing:
        ctx.warning(
            "dr-min-ring-size-deprecated",
            (*path, "minimumRingSize"),
            "consistentHash.minimumRingSize is deprecated; use `ringHash: {minimumRingSize: N}`",
        )
        for algorithm in ("ringHash", "maglev"):
            if algorithm in hashing:
                ctx.error(
                    "dr-hash-algorithm-conflict",
                    (*path, algorithm),
                    f"the deprecated minimumRingSize cannot be combined with `{algorithm}`",
                )
    if "maglev" in hashing:
        size = mapping(hashing["maglev"]).get("tableSize")
        if size is None or size >= MAX_MAGLEV_TABLE or not is_prime(size):
            ctx.error(
                "dr-maglev-table-size-invalid",
                (*path, "maglev", "tableSize"),
                f"maglev tableSize must be set to a prime number below {MAX_MAGLEV_TABLE} (e.g. 65537)",
            )


def _locality_problem(locality: str) -> str | None:
    """D10: at most one ``*``, only at the end; no empty segments."""
    if locality.count("*") > 1 or ("*" in locality and not locality.endswith("*")):
        return f"locality {locality!r} may contain one `*`, only at the end"
    if any(part == "" for part in locality.split("/")) or len(locality.split("/")) > 3:
        return f"locality {locality!r} must be region[/zone[/subzone]] without empty segments"
    return None


def _localities_overlap(a: str, b: str) -> bool:
    if a == b:
        return True
    return (a.endswith("*") and b.startswith(a[:-1])) or (b.endswith("*") and a.startswith(b[:-1]))


def _check_locality(ctx: Ctx, setting: Any, path: Path, has_outlier: bool) -> None:
    """D10: distribute xor failover; distribute weights sum to 100; failover regions."""
    setting = mapping(setting)
    distribute, failover = setting.get("distribute"), setting.get("failover")
    if distribute and failover:
        ctx.error("dr-locality-invalid", (*path, "failover"), "distribute and failover cannot both be set")
    priorities = [p for _, p in strings(setting.get("failoverPriority"))]
    if failover and any(p.split("=", 1)[0] in _TOPOLOGY_KEYS for p in priorities):
        ctx.error(
            "dr-locality-invalid",
            (*path, "failoverPriority"),
            "failoverPriority cannot use region/zone/subzone labels together with failover",
        )
    froms: list[str] = []
    for i, rule in items(distribute):
        _check_distribute(ctx, rule, (*path, "distribute", i), froms)
    _check_failover(ctx, failover, (*path, "failover"))
    if (failover or priorities) and not has_outlier:
        ctx.warning(
            "dr-locality-no-outlier",
            path,
            "locality failover only takes effect with outlierDetection; add an outlierDetection block",
        )


def _check_distribute(ctx: Ctx, rule: dict[str, Any], path: Path, froms: list[str]) -> None:
    source = rule.get("from")
    if isinstance(source, str):
        problem = _locality_problem(source)
        if problem:
            ctx.error("dr-locality-invalid", (*path, "from"), problem)
        for other in froms:
            if _localities_overlap(source, other):
                ctx.error("dr-locality-invalid", (*path, "from"), f"locality {source!r} overlaps {other!r}")
                break
        froms.append(source)
    total = 0
    for locality, weight in mapping(rule.get("to")).items():
        problem = _locality_problem(locality)
        if problem:
            ctx.error("dr-locality-invalid", (*path, "to", locality), problem)
        if not 1 <= weight <= 100:
            ctx.error(
                "dr-locality-invalid", (*path, "to", locality), f"weight {weight} must be between 1 and 100"
            )
        total += weight
    if total != 100:
        ctx.error("dr-locality-invalid", (*path, "to"), f"distribute weights must sum to 100, got {total}")


def _check_failover(ctx: Ctx, failover: Any, path: Path) -> None:
    for i, rule in items(failover):
        source, target = rule.get("from"), rule.get("to")
        if source is not None and source == target:
            ctx.error("dr-locality-invalid", (*path, i), "failover `from` and `to` must differ")
        for key in ("from", "to"):
            value = rule.get(key)
            if isinstance(value, str) and ("/" in value or "*" in value or not value):
                ctx.error(
                    "dr-locality-invalid",
                    (*path, i, key),
                    f"failover {key} {value!r} must be a region name (no `/` or `*`)",
                )


def _check_zone_aware(ctx: Ctx, setting: Any, path: Path) -> None:
    """D11: no region/zone/subzone failoverPriority; failover as D10; minClusterSize >= 1."""
    setting = mapping(setting)
    for i, priority in strings(setting.get("failoverPriority")):
        if priority.split("=", 1)[0] in _TOPOLOGY_KEYS:
            ctx.error(
                "dr-locality-invalid",
                (*path, "failoverPriority", i),
                "zone-aware failoverPriority cannot use region/zone/subzone labels",
            )
    _check_failover(ctx, setting.get("failover"), (*path, "failover"))
    size = setting.get("minClusterSize")
    if size is not None and size < 1:
        ctx.error("dr-locality-invalid", (*path, "minClusterSize"), "minClusterSize must be at least 1")
