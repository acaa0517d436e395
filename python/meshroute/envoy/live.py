"""Envoy config as files Envoy watches, replaced in an order that never breaks a request.

Envoy reads its listeners (LDS), clusters (CDS) and the embedded engine's filter configs (ECDS)
from files when the bootstrap names them in ``path_config_source``, and re-reads a file when a new
one is renamed over it (inotify ``IN_MOVED_TO`` on its directory). Layout of the directory::

    lds.yaml             DiscoveryResponse, every Listener        (live mode: envoy-config --live-dir, run)
    cds.yaml             DiscoveryResponse, every Cluster         (live mode)
    ecds-<name>.yaml     one TypedExtensionConfig: the module filter of one listener context
                         (embedded engine; Envoy rejects a file holding several)
    ir-<generation>.json the route table the module loads (embedded engine; a new name per
                         generation, so no cache can serve a stale table; the newest few are kept)
    patch-<g>-<k>.json   the k-th IR patch to ir-<g>.json (an edit compiled alone,
                         docs/incremental.md); the filter configs name the table and its patches
    serve-config.yaml    the validated config ``meshroute serve`` reads (extproc engine under
                         ``meshroute run``: serve reloads it like any config file)

Every file is written to a temporary file in the same directory, fsynced and ``os.replace``d, and
only when its content changed. :meth:`LiveFiles.apply` orders the writes make-before-break:

1. ``ir-<N>.json`` (new table, under a new name);
2. ``cds.yaml`` with the new clusters *and* the old ones (new and changed clusters exist before
   anything routes to them);
3. ``ecds-<name>.yaml`` of listener contexts that are new (no listener reads them yet);
4. the routes of the running listeners: their ``ecds-<name>.yaml`` (pointing at ``ir-<N>.json``),
   or ``serve-config.yaml``;
5. ``lds.yaml`` (a new listener finds its filter config and clusters; a TCP listener's routes);
6. ``cds.yaml`` with the new clusters only (nothing routes to a removed cluster any more);
7. delete ``ecds-*`` files no listener names and all but the newest IR files.

Between steps an :class:`Acks` waits until Envoy (or serve) has taken the file (``meshroute run``
asks Envoy's admin stats, :mod:`meshroute.runner`); without one (``envoy-config``) the writes just
follow each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from meshroute.config import Analysis, analyze
from meshroute.config.diagnostics import Diagnostic
from meshroute.envoy import module
from meshroute.envoy.bootstrap import Generated, build
from meshroute.envoy.common import Json, envoy_yaml, typed
from meshroute.envoy.options import EMBEDDED, EXTPROC, Options
from meshroute.errors import ConfigError
from meshroute.render import render_diagnostics

LDS_FILE = "lds.yaml"
CDS_FILE = "cds.yaml"
SERVE_FILE = "serve-config.yaml"
IR_PATTERN = re.compile(r"^ir-(\d+)\.json$")
LISTENER_TYPE = "envoy.config.listener.v3.Listener"
CLUSTER_TYPE = "envoy.config.cluster.v3.Cluster"
KEEP_IR = 3  # IR files kept: the current one and two before it (a slow reader may still open one)

try:  # the C emitter/parser are ~10x faster than pure Python
    _Dumper: Any = yaml.CSafeDumper
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Dumper, _Loader = yaml.SafeDumper, yaml.SafeLoader


class LiveError(RuntimeError):
    """Envoy (or serve) rejected a file, or did not take it in time; the last good config serves."""


@dataclass(frozen=True)
class LiveConfig:
    """One generation's content, built from the config files (picklable: it is built in another
    process by ``meshroute run``)."""

    base: Json  # node and admin: the bootstrap around the listeners and clusters
    listeners: list[Json]
    clusters: list[Json]
    filters: dict[str, Json] = field(default_factory=dict)  # embedded: ECDS name -> listener context
    ir_json: str | None = None  # embedded: the table the module loads
    serve_yaml: str | None = None  # extproc under run: the validated config for serve
    inline_keys: bool = False  # a listener holds a private key (Secret): lds.yaml is kept 0600
    # Embedded, after an edit compiled alone (docs/incremental.md): the IR patch to the table
    # tagged ``ir_base`` (instead of ``ir_json``). ``ir_tag`` names this config's table.
    ir_patch: str | None = None
    ir_base: tuple[str, int] | None = None
    ir_tag: tuple[str, int] | None = None


@dataclass(frozen=True)
class Compiled:
    """:func:`generate`'s answer: the config (None when invalid) and the diagnostics as text."""

    config: LiveConfig | None
    report: str  # rendered diagnostics, errors and warnings; "" when there are none
    # the warnings (validation's and the bootstrap's) of a config that compiled, for their codes
    warnings: tuple[Diagnostic, ...] = ()


def generate(paths: Sequence[str], options: Options, serve_copy: bool = False) -> Compiled:
    """Load, validate and compile ``paths`` into a :class:`LiveConfig`; never raises on bad input.

    The IR is also built into a Rust table here, so a config the core rejects is reported now
    instead of by the module or serve. ``serve_copy``: include the config for serve (every
    resource but Secrets, which only Envoy's listeners use, already inlined by then).
    """
    analysis = analyze(paths, domain=options.domain)
    try:
        generated = build(analysis, options)  # raises ConfigError when the config has errors
        ir_json = checked_ir_json(analysis)
    except ConfigError as exc:
        return rejected(analysis, exc)
    return compiled(analysis, generated, options, serve_copy, ir_json if options.engine == EMBEDDED else None)


def checked_ir_json(analysis: Analysis) -> str:
    """The analysis' IR as text (deterministic: unchanged config, same text), built into a Rust
    table once so that an IR the core rejects raises ConfigError now, not in the module."""
    from meshroute.compile import ir_json
    from meshroute.mesh import table_from_ir_json

    if analysis.ir is None:
        raise ConfigError(analysis.diagnostics)
    text = ir_json(analysis.ir)
    table_from_ir_json(text, analysis.diagnostics)
    return text


def rejected(analysis: Analysis, exc: ConfigError) -> Compiled:
    """The answer for a config with errors: no config, the diagnostics as text."""
    return Compiled(None, render_diagnostics(exc.diagnostics, len(analysis.resources)))


def compiled(
    analysis: Analysis, generated: Generated, options: Options, serve_copy: bool, ir_json: str | None
) -> Compiled:
    """The answer for a built bootstrap: its :class:`LiveConfig` and the warnings (validation's
    and the bootstrap's), rendered and as diagnostics."""
    warnings = [*analysis.diagnostics, *generated.warnings]
    report = render_diagnostics(warnings, len(analysis.resources)) if warnings else ""
    return Compiled(live_config(analysis, generated, options, serve_copy, ir_json), report, tuple(warnings))


def live_config(
    analysis: Analysis, generated: Generated, options: Options, serve_copy: bool, ir_json: str | None
) -> LiveConfig:
    """The :class:`LiveConfig` of a built bootstrap (``serve_copy``: with the config for serve)."""
    static = generated.config["static_resources"]
    serve_yaml = None
    if serve_copy:
        documents = [dict(r.document) for r in analysis.resources if r.kind != "Secret"]
        serve_yaml = "# written by meshroute run from the validated config\n" + yaml.dump_all(
            documents, Dumper=_Dumper, sort_keys=False
        )
    return LiveConfig(
        base={k: v for k, v in generated.config.items() if k != "static_resources"},
        listeners=static["listeners"],
        clusters=static["clusters"],
        filters=generated.filters,
        ir_json=ir_json,
        serve_yaml=serve_yaml,
        inline_keys=generated.inline_keys,
    )


class Acks:
    """What :meth:`LiveFiles.apply` waits for around each write. This base class waits for
    nothing (no running Envoy to ask); ``meshroute run`` asks Envoy's admin stats and serve's
    status file."""

    @contextlib.contextmanager
    def step(self, kind: str, names: Sequence[str] = ()) -> Iterator[None]:
        """Around one write: ``kind`` is ``cds``, ``lds``, ``ecds`` (``names``: the filter
        configs rewritten) or ``serve``. Raise :class:`LiveError` when it was rejected."""
        yield

    def drain(self) -> None:
        """Before removing clusters that the previous routes could still name."""


@dataclass
class Applied:
    """What one :meth:`LiveFiles.apply` changed."""

    generation: int
    listeners: tuple[list[str], list[str], list[str]] = field(default_factory=lambda: ([], [], []))
    clusters: tuple[list[str], list[str], list[str]] = field(default_factory=lambda: ([], [], []))  # +, -, ~
    routes: bool = False

    @property
    def changed(self) -> bool:
        return self.routes or any(self.listeners) or any(self.clusters)

    def summary(self) -> str:
        parts = ["routes changed"] if self.routes else []
        for what, (added, removed, changed) in (("clusters", self.clusters), ("listeners", self.listeners)):
            items = [f"+{n}" for n in added] + [f"-{n}" for n in removed] + [f"~{n}" for n in changed]
            if items:
                shown = items if len(items) <= 6 else [*items[:6], f"... ({len(items)} in all)"]
                parts.append(f"{what} {' '.join(shown)}")
        return "; ".join(parts) or "no change"


class LiveFiles:
    """The files of one directory, and the state Envoy was last given through them.

    ``dynamic``: listeners and clusters are files too (``lds.yaml`` / ``cds.yaml``); otherwise only
    the filter configs and the IR are (a static bootstrap with the embedded engine). ``module``
    is the dynamic module's path (embedded engine); ``seed`` goes into its config (tests:
    reproducible weighted picks). An existing directory's files are read back, so running
    ``envoy-config`` again updates a running Envoy with only the files whose content changed.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        engine: str = EXTPROC,
        dynamic: bool = True,
        module_file: str | os.PathLike[str] | None = None,
        seed: int | None = None,
        keep_ir: int = KEEP_IR,
    ) -> None:
        self.dir = Path(directory).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.engine = engine
        self.dynamic = dynamic
        if engine == EMBEDDED and module_file is None:
            raise ValueError("the embedded engine needs the module's path")
        self.module = os.fspath(module_file) if module_file is not None else None
        self.seed = seed
        self.keep_ir = max(1, keep_ir)
        self.listeners = self._read_resources(LDS_FILE)
        self.clusters = self._read_resources(CDS_FILE)
        self.ecds = {
            p.name[len("ecds-") : -len(".yaml")]: p.read_text() for p in sorted(self.dir.glob("ecds-*.yaml"))
        }
        irs = self.ir_files()
        self.generation = irs[-1][0] if irs else 0
        self.table: str | None = str(irs[-1][1]) if irs else None
        self.ir_json = irs[-1][1].read_text() if irs else None
        # The patches the module applies to ``table`` (files, in order), and the compile
        # session's tag of the result: what a new patch must apply to.
        self.patches: list[str] = []
        self.ir_tag: tuple[str, int] | None = None
        serve = self.dir / SERVE_FILE
        self.serve_yaml = serve.read_text() if serve.is_file() else None

    # === paths ===

    @property
    def lds(self) -> Path:
        return self.dir / LDS_FILE

    @property
    def cds(self) -> Path:
        return self.dir / CDS_FILE

    @property
    def serve_config(self) -> Path:
        return self.dir / SERVE_FILE

    def ir_files(self) -> list[tuple[int, Path]]:
        """The IR files present, oldest generation first."""
        found = [(int(m.group(1)), p) for p in self.dir.iterdir() if (m := IR_PATTERN.match(p.name))]
        return sorted(found)

    def bootstrap(self, config: LiveConfig) -> Json:
        """The bootstrap naming these files: in live mode (``dynamic``) node and admin, listeners
        and clusters from the files; otherwise the listeners and clusters inline (static), their
        module filters reading ``ecds-<name>.yaml`` here. A static bootstrap holds the private
        keys of ``config.inline_keys``: write it 0600."""
        if not self.dynamic:
            static = {"listeners": config.listeners, "clusters": config.clusters}
            return {**config.base, "static_resources": static}
        sources = {
            key: {"path_config_source": {"path": str(path)}, "resource_api_version": "V3"}
            for key, path in (("lds_config", self.lds), ("cds_config", self.cds))
        }
        return {**config.base, "dynamic_resources": sources}

    # === applying a generation ===

    def apply(self, config: LiveConfig, acks: Acks | None = None) -> Applied:
        """Write what changed since the last generation, in the order of the module docstring."""
        acks = acks or Acks()
        new_listeners = {item["name"]: typed(LISTENER_TYPE, **item) for item in config.listeners}
        new_clusters = {item["name"]: typed(CLUSTER_TYPE, **item) for item in config.clusters}
        embedded = self.engine == EMBEDDED
        patching = embedded and config.ir_patch is not None
        if patching and (config.ir_base != self.ir_tag or self.table is None):
            raise LiveError("a route-table patch for another table than the one Envoy has")
        ir_changed = embedded and config.ir_json is not None and config.ir_json != self.ir_json
        serve_changed = (
            not embedded and config.serve_yaml is not None and config.serve_yaml != self.serve_yaml
        )
        table = str(self.dir / f"ir-{self.generation + 1}.json") if ir_changed else self.table
        patches = [] if ir_changed else list(self.patches)
        if patching:
            base = IR_PATTERN.match(Path(self.table or "").name)
            patches.append(str(self.dir / f"patch-{base.group(1) if base else 0}-{len(patches) + 1}.json"))
        ecds = {
            name: self._ecds_text(name, table, context, patches) for name, context in config.filters.items()
        }
        applied = Applied(self.generation + 1)
        if self.dynamic:
            applied.listeners = _diff(self.listeners, new_listeners)
            applied.clusters = _diff(self.clusters, new_clusters)
        applied.routes = ir_changed or serve_changed or any(self.ecds.get(n) != t for n, t in ecds.items())
        stale = set(self.ecds) - set(ecds)
        if not applied.changed and not stale:
            applied.generation = self.generation
            return applied
        self.generation += 1
        # the names Envoy watches now: their files change the routes of running listeners
        subscribed = set(module.filter_names(self.listeners.values())) if self.dynamic else set(self.ecds)

        # 1. the table, under a new name (or the patch to it)
        if ir_changed and table is not None and config.ir_json is not None:
            write_atomic(Path(table), config.ir_json)
            self.ir_json, self.table = config.ir_json, table
        if patching and config.ir_patch is not None:
            write_atomic(Path(patches[-1]), config.ir_patch)
        if ir_changed or patching:
            self.patches, self.ir_tag = patches, config.ir_tag
        elif embedded and config.ir_tag is not None:  # the same table, now known by this tag
            self.ir_tag = config.ir_tag
        if self.dynamic:
            # 2. every cluster the old or the new routes may name
            self._write_clusters({**self.clusters, **new_clusters}, acks)
        # 3. filter configs no listener reads yet (a new Gateway port's)
        for name, text in ecds.items():
            if name not in subscribed and self.ecds.get(name) != text:
                self._write_ecds(name, text)
        # 4. the routes of the running listeners
        changed = [n for n, text in ecds.items() if n in subscribed and self.ecds.get(n) != text]
        if changed:
            with acks.step("ecds", changed):
                for name in changed:
                    self._write_ecds(name, ecds[name])
        if serve_changed and config.serve_yaml is not None:
            with acks.step("serve"):
                write_atomic(self.serve_config, config.serve_yaml)
                self.serve_yaml = config.serve_yaml
        if self.dynamic:
            # 5. the listeners: everything they name exists
            self._write_listeners(new_listeners, config.inline_keys, acks)
            # 6. drop the clusters nothing routes to any more
            if self.clusters != new_clusters:
                acks.drain()
                self._write_clusters(new_clusters, acks)
        # 7. files nothing reads any more
        for name in stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(module.ecds_file(self.dir, name))
            del self.ecds[name]
        for _, path in self.ir_files()[: -self.keep_ir]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        kept = {str(n) for n, _ in self.ir_files()}
        for path in self.dir.glob("patch-*-*.json"):  # those of the IR files removed
            if path.name.split("-")[1] not in kept:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return applied

    def _subscribed(self) -> set[str]:
        """The filter configs the listeners Envoy has name (so Envoy watches their files)."""
        return set(module.filter_names(self.listeners.values()))

    def _ecds_text(self, name: str, table: str | None, context: Json, patches: Sequence[str] = ()) -> str:
        assert self.module is not None and table is not None
        config_json = module.filter_config_json(table, context, self.seed, patches)
        return _discovery_text([module.extension_config(name, self.module, config_json)])

    def _write_ecds(self, name: str, text: str) -> None:
        write_atomic(Path(module.ecds_file(self.dir, name)), text)
        self.ecds[name] = text

    def _write_clusters(self, clusters: dict[str, Json], acks: Acks) -> None:
        if clusters == self.clusters and self.cds.is_file():
            return
        with acks.step("cds"):
            write_atomic(self.cds, _discovery_text(list(clusters.values())))
            self.clusters = clusters

    def _write_listeners(self, listeners: dict[str, Json], private: bool, acks: Acks) -> None:
        if listeners == self.listeners and self.lds.is_file():
            return
        with acks.step("lds"):
            write_atomic(self.lds, _discovery_text(list(listeners.values())), private=private)
            self.listeners = listeners

    def _read_resources(self, name: str) -> dict[str, Json]:
        path = self.dir / name
        if not self.dynamic or not path.is_file():
            return {}
        try:
            data = yaml.load(path.read_text(), Loader=_Loader)
        except (OSError, yaml.YAMLError):
            return {}
        items = data.get("resources") if isinstance(data, dict) else None
        return {r["name"]: r for r in items or [] if isinstance(r, dict) and isinstance(r.get("name"), str)}


def _diff(old: Mapping[str, Json], new: Mapping[str, Json]) -> tuple[list[str], list[str], list[str]]:
    added = [n for n in new if n not in old]
    removed = [n for n in old if n not in new]
    changed = [n for n in new if n in old and old[n] != new[n]]
    return added, removed, changed


def _discovery_text(resources: list[Json]) -> str:
    """A DiscoveryResponse file; ``version_info`` is a hash of the content (equal content, equal
    bytes: unchanged files are never rewritten)."""
    body = json.dumps(resources, sort_keys=True).encode()
    version = hashlib.sha256(body).hexdigest()[:16]
    text = envoy_yaml({"version_info": version, "resources": resources})
    return text


def write_files(
    config: LiveConfig,
    directory: str | os.PathLike[str],
    *,
    engine: str,
    live: bool,
    module_file: str | os.PathLike[str] | None = None,
    seed: int | None = None,
) -> Json:
    """What ``envoy-config`` writes for ``config`` into ``directory``: the embedded engine's filter
    configs and table and, ``live``, the listeners and clusters; returns the bootstrap naming them
    (static unless ``live``: then it holds ``config``'s private keys, if any)."""
    files = LiveFiles(directory, engine=engine, dynamic=live, module_file=module_file, seed=seed)
    files.apply(config)
    return files.bootstrap(config)


def write_atomic(path: Path, text: str, *, private: bool = False) -> None:
    """Replace ``path`` with ``text``: a temporary file in the same directory (Envoy watches the
    directory for a rename onto the name), fsynced, then ``os.replace``d. ``private``: mode 0600."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600 if private else 0o644)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def files_options(options: Options, directory: str | os.PathLike[str]) -> Options:
    """``options`` with the filter configs read from ``directory`` (absolute)."""
    return replace(options, files_dir=str(Path(directory).resolve()))
