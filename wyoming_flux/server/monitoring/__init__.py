"""The metrics port: Prometheus metrics and the health check, on a small bounded HTTP server of its own."""
