"""meshroute: Istio traffic management — VirtualService, DestinationRule, Gateway, ServiceEntry,
Sidecar — evaluated by a Rust core.

>>> import meshroute
>>> mesh = meshroute.load(meshroute.bookinfo_path())
>>> mesh.route("ratings", "/ratings/0").cluster
'outbound|9080|v1|ratings.default.svc.cluster.local'
"""

from pathlib import Path

from meshroute._core import Decision, RouteTable
from meshroute._core import __version__ as __version__
from meshroute.config import Analysis, analyze
from meshroute.config.diagnostics import Diagnostic, Severity
from meshroute.errors import ConfigError
from meshroute.mesh import Mesh, MeshSession, bookinfo_path, load


def envoy_module_path() -> Path:
    """The Envoy dynamic module (``libmeshroute_envoy.so``) shipped in the package, for
    ``--engine embedded``; ``FileNotFoundError`` naming how to build it when it is missing.
    Imported on call: ``import meshroute`` stays free of the Envoy tooling."""
    from meshroute.envoy.module import module_path

    return module_path()


__all__ = [
    "Analysis",
    "ConfigError",
    "Decision",
    "Diagnostic",
    "Mesh",
    "MeshSession",
    "RouteTable",
    "Severity",
    "__version__",
    "analyze",
    "bookinfo_path",
    "envoy_module_path",
    "load",
]
