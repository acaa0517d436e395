"""Envoy with and without meshroute's ext_proc, side by side, under real load (``make bench-envoy``).

One run starts, on 127.0.0.1 only:

- an upstream Envoy answering ``direct_response`` 200 (shared by every scenario);
- ``envoy-alone``: a front Envoy with a plain ``prefix: /`` route to the upstream, no ext_proc;
- ``meshroute-wN``: the front Envoy written by ``meshroute envoy-config`` for a small Istio config
  (ServiceEntries whose STATIC endpoint is the upstream, a VirtualService with a header match, a
  prefix match and a default route) with ``meshroute serve --workers N`` behind it.

Each scenario is loaded with ``wrk -t1 -cN -dDs --latency`` (a bounded Python load generator when
wrk is missing, for the CI smoke test only), rounds alternate the scenario order, and the CPU of
every process comes from ``/proc/<pid>/stat``. ``python -m bench.envoy --help`` lists the options.
"""
