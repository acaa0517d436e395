"""meshroute: Istio traffic management — VirtualService, DestinationRule, Gateway, ServiceEntry,
Sidecar — evaluated by a Rust core.

>>> import meshroute
>>> mesh = meshroute.load(meshroute.bookinfo_path())
>>> mesh.route("ratings", "/ratings/0").cluster
'outbound|9080|v1|ratings.default.svc.cluster.local'
"""

from meshroute._core import Decision, RouteTable
from meshroute._core import __version__ as __version__
from meshroute.config import Analysis, analyze
from meshroute.config.diagnostics import Diagnostic, Severity
from meshroute.errors import ConfigError
from meshroute.mesh import Mesh, bookinfo_path, load

__all__ = [
    "Analysis",
    "ConfigError",
    "Decision",
    "Diagnostic",
    "Mesh",
    "RouteTable",
    "Severity",
    "__version__",
    "analyze",
    "bookinfo_path",
    "load",
]
