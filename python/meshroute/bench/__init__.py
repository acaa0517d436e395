"""``meshroute bench``: how fast meshroute decides, from Python and behind a real Envoy.

- ``decisions``: ``meshroute bench [CONFIG...]`` — load + validate + compile time, ``mesh.route()``
  per call (median, p99) and ``mesh.route_many()`` throughput over a request mix, in a few seconds.
- ``meshroute bench --envoy`` (``harness``, ``report``): one run starts, on 127.0.0.1 only,

  - an upstream Envoy answering ``direct_response`` 200 (shared by every scenario);
  - ``envoy-alone``: a front Envoy with a plain ``prefix: /`` route to the upstream, no ext_proc;
  - ``envoy+floor-extproc``: the front Envoy ``meshroute envoy-config`` writes, with ``floor`` (a
    constant-reply Python ext_proc) behind it;
  - ``envoy+meshroute-wN``: the same front Envoy for a small Istio config (``bootstrap``:
    ServiceEntries whose STATIC endpoint is the upstream, a VirtualService with a header match, a
    prefix match and a default route) with ``meshroute serve --workers N`` behind it;
  - ``envoy+meshroute-embedded``: the front Envoy ``meshroute envoy-config --engine embedded``
    writes for the same config: the dynamic module decides inside Envoy, no server;
  - with ``--routes N``, a generated table of about N routes (``routes``: √N VirtualServices of √N
    prefix/header routes), loaded by 64 requests late in each route list:
    ``envoy-native-Nroutes`` (Envoy's own route table, no filter), ``envoy+meshroute-embedded-Nroutes``
    and ``envoy+meshroute-w1-Nroutes``.

  Every front Envoy runs ``--concurrency 1`` without access log. Before measuring, each scenario
  must send each of its requests to the expected cluster.

  Each scenario is loaded with ``wrk -t1 -cN -dDs --latency`` (``load``; a bounded Python load
  generator when wrk is missing, for the CI smoke test only), rounds alternate the scenario order,
  and the CPU of every process comes from ``/proc/<pid>/stat`` (``cpu``). ``meshroute bench --help``
  lists the options; bench/README.md has the figures.
"""
