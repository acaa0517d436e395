"""Envoy bootstrap generation (``meshroute envoy-config``); ``docs/envoy.md`` is the contract."""
