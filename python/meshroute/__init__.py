"""meshroute: Istio traffic management with a Rust core."""
