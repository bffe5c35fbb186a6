"""The metrics endpoint's flags: off unless --metrics-port is given; its host defaults to the --uri host."""

from __future__ import annotations

import argparse
import os

from ..common.bounds import Number, env_default
from .uri import tcp_address


class MetricsListenError(Exception):
    """The metrics endpoint could not listen: one line for the user."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("metrics")
    port = Number.option("metrics_port", int)
    group.add_argument("--metrics-port", type=port, default=env_default("WYOMING_FLUX_METRICS_PORT", port),
                       help="serve Prometheus /metrics and /healthz on this port (default off; "
                            "env WYOMING_FLUX_METRICS_PORT)")
    group.add_argument("--metrics-host", default=os.environ.get("WYOMING_FLUX_METRICS_HOST"),
                       help="address for the metrics port (default the --uri host, or 127.0.0.1 for unix://; "
                            "env WYOMING_FLUX_METRICS_HOST)")


def from_args(args: argparse.Namespace) -> tuple[str, int | None]:
    """(host, port or None); ValueError with the flag's name for a bad value."""
    port: int | None = args.metrics_port
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("--metrics-port must be between 1 and 65535")
    host = args.metrics_host
    if host is not None and not host.strip():
        raise ValueError("--metrics-host must not be empty")
    listen = tcp_address(args.uri) if args.uri.startswith("tcp://") else None
    if host is None:
        host = listen[0] if listen else "127.0.0.1"
    if port is not None and listen == (host, port):
        raise ValueError("--metrics-port must differ from the --uri port")
    return host, port
