"""Envoy bootstrap generation (``meshroute envoy-config``); ``docs/envoy.md`` is the contract.

>>> import meshroute
>>> config = build_bootstrap(meshroute.analyze([meshroute.bookinfo_path()]))
>>> [listener["name"] for listener in config["static_resources"]["listeners"]]
['mesh_outbound', 'gateway_8080']
"""

from meshroute.envoy.bootstrap import Generated, build, build_bootstrap
from meshroute.envoy.options import Options

__all__ = ["Generated", "Options", "build", "build_bootstrap"]
