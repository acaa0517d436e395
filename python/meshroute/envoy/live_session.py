"""``meshroute run``'s compile process: the config kept loaded between edits, so that an edit
compiled alone (docs/incremental.md) reaches Envoy as a route-table patch.

:func:`generate_live` is :func:`meshroute.envoy.live.generate` with a
:class:`~meshroute.config.session.ConfigSession` behind it, one per (paths, options) for the life
of the process. After a patch the listeners are the previous ones (a VirtualService's HTTP routes
are in the table, not in the listeners) and the clusters too, but for an edited
DestinationRule's host, whose clusters are built again. Anything else — a full compile, or a
VirtualService whose TCP or TLS routes changed (those are Envoy listeners) — builds everything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from meshroute.config.diagnostics import Diagnostic
from meshroute.config.session import ConfigSession, Update
from meshroute.envoy.bootstrap import Generated, build
from meshroute.envoy.clusters import service_clusters
from meshroute.envoy.live import Compiled, checked_ir_json, compiled, rejected
from meshroute.envoy.options import EMBEDDED, Options
from meshroute.errors import ConfigError

Tag = tuple[str, int]


@dataclass
class _Live:
    session: ConfigSession
    options: Options
    generated: Generated | None = None  # the bootstrap of the session's config (None: none good)
    compiled: Compiled | None = None  # the last answer (for files touched but not changed)


_SESSIONS: dict[tuple[tuple[str, ...], str], _Live] = {}  # by (paths, repr(options))


def generate_live(paths: Sequence[str], options: Options, serve_copy: bool, base: Tag | None) -> Compiled:
    """:func:`meshroute.envoy.live.generate`, incrementally: ``base`` is the table the caller's
    files serve now (``LiveFiles.ir_tag``); an edit of it comes back as ``config.ir_patch``."""
    key = (tuple(paths), repr(options))  # Options holds dicts: not hashable
    live = _SESSIONS.get(key)
    if live is None:
        live = _SESSIONS[key] = _Live(ConfigSession(paths, domain=options.domain), options)
    update = live.session.refresh_for(base)
    analysis = update.analysis
    last = live.compiled
    if update.kind == "unchanged" and last is not None and last.config is not None:
        return replace(last, config=replace(last.config, ir_json=None, ir_patch=None, ir_base=None))
    patchable = update.kind == "patch" and live.generated is not None
    text = None
    try:
        if not analysis.ok:
            raise ConfigError(analysis.diagnostics)
        generated = _patched(live, update) if patchable else None
        if generated is None:
            generated = build(analysis, options, model=live.session.model)
        if not patchable:
            text = checked_ir_json(analysis)
    except ConfigError as exc:
        live.generated = live.compiled = None
        return rejected(analysis, exc)
    live.generated = generated
    embedded = options.engine == EMBEDDED
    answer = compiled(analysis, generated, options, serve_copy, text if embedded else None)
    if embedded and answer.config is not None:
        tag = live.session.tag
        if patchable:
            config = replace(answer.config, ir_patch=json.dumps(update.patch), ir_base=base, ir_tag=tag)
        else:
            config = replace(answer.config, ir_tag=tag)
        answer = replace(answer, config=config)
    live.compiled = answer
    return answer


def _patched(live: _Live, update: Update) -> Generated | None:
    """The previous bootstrap updated for a patch, or None when listeners may change."""
    previous = live.generated
    assert previous is not None and update.edited is not None
    old, new = update.edited
    if new.kind == "VirtualService":
        return previous if _stream_routes(old) == _stream_routes(new) else None
    if update.host is None:
        return previous
    return _with_host_clusters(previous, live.session.model, update.host, live.options)


def _stream_routes(res: Any) -> tuple[Any, Any]:
    spec = res.spec if isinstance(res.spec, dict) else {}
    return (spec.get("tcp"), spec.get("tls"))


def _with_host_clusters(previous: Generated, model: Any, host: str, options: Options) -> Generated:
    """``previous`` with the clusters of ``host`` (and their warnings) built again."""
    built = service_clusters(model, options, hosts={host})
    suffix = f"|{host}"
    static = previous.config["static_resources"]
    clusters = static["clusters"]
    positions = [i for i, c in enumerate(clusters) if c["name"].endswith(suffix)]
    at = positions[0] if positions else len(clusters)
    kept = [c for c in clusters if not c["name"].endswith(suffix)]
    renewed = kept[:at] + built.clusters + kept[at:]
    # the host's cluster warnings where they were (the report lists them in build order)
    ours = [d.code == "envoy-cluster" and f"{suffix}: " in d.message for d in previous.warnings]
    first = ours.index(True) if True in ours else len(ours)
    others = [d for d, mine in zip(previous.warnings, ours, strict=True) if not mine]
    warnings: list[Diagnostic] = others[:first] + built.diagnostics + others[first:]
    config = {**previous.config, "static_resources": {**static, "clusters": renewed}}
    return replace(previous, config=config, warnings=warnings)
