"""The server's own flags: each connection limit and the metrics endpoint, with their environment variables
and bounds. Flags and variables are the command line's business: the server takes the values they make."""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import fields

from ..common.bounds import Number, env_default
from ..server.protocol.limits import ConnectionLimits
from ..server.uri import tcp_address
from ..server.protocol.wire import WireLimits

# flag, attribute, type, lower bound, upper bound, help. The upper bounds are far past any use; they keep a
# value such as 1e308 from overflowing the arithmetic that uses it.
_FLAGS: tuple[tuple[str, str, type, float, float, str], ...] = (
    ("--max-connections", "max_connections", int, 1, 100_000, "most client connections at once; more are refused"),
    ("--idle-timeout", "idle_timeout", float, 0.01, 86_400, "seconds a connection may stay silent with no command "
     "open"),
    ("--audio-timeout", "audio_timeout", float, 0.01, 3600, "seconds allowed between events of an open command"),
    ("--event-timeout", "event_timeout", float, 0.01, 3600, "seconds to finish sending one event once started"),
    ("--send-timeout", "send_timeout", float, 0.01, 3600, "seconds a client may leave --max-queued-bytes unread"),
    ("--max-queued-bytes", "max_queued_bytes", int, 1024, 1 << 30, "bytes of answers queued for a client that does "
     "not read"),
    ("--read-window", "read_window", float, 0.0, 1.0, "seconds of streamed audio gathered before it is read (fewer "
     "wakeups; a batch never goes past one 80 ms Flux frame, so more acts as 0.08); what is not whole chunks is "
     "read within 20 ms, a stalled batch after this plus 30 ms; 0 reads every chunk at once; not used with "
     "--end-of-speech client"),
    ("--max-header-bytes", "wire.header_bytes", int, 256, 16 << 20, "longest event header line"),
    ("--max-data-bytes", "wire.data_bytes", int, 256, 64 << 20, "largest event data block"),
    ("--max-payload-bytes", "wire.payload_bytes", int, 1024, 256 << 20, "largest event payload (one audio chunk)"),
)


def _default(attribute: str) -> object:
    holder: object = ConnectionLimits()
    for part in attribute.split("."):
        holder = getattr(holder, part)
    return holder


def env_name(flag: str) -> str:
    return "WYOMING_FLUX_" + flag.removeprefix("--").replace("-", "_").upper()


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection limits")
    for flag, attribute, kind, low, high, text in _FLAGS:
        default = _default(attribute)
        parse = Number(kind, low, high)
        group.add_argument(flag, type=parse, default=env_default(env_name(flag), parse, default),
                           help=f"{text} (default {default}; env {env_name(flag)})")


def limits_from_args(args: argparse.Namespace) -> ConnectionLimits:
    """The limits from parsed flags; ValueError with the flag's name for a value outside its bounds."""
    values: dict[str, object] = {}
    for flag, attribute, _, low, high, _ in _FLAGS:
        value = getattr(args, flag.removeprefix("--").replace("-", "_"))
        if not math.isfinite(value):  # nan passes any comparison
            raise ValueError(f"{flag} must be a finite number, not {value}")
        if not low <= value <= high:
            raise ValueError(f"{flag} must be between {_number(low)} and {_number(high)}, not {_number(value)}")
        values[attribute] = value
    wire = WireLimits(**{f.name: values.pop(f"wire.{f.name}") for f in fields(WireLimits)})  # type: ignore[arg-type]
    return ConnectionLimits(wire=wire, **values)  # type: ignore[arg-type]


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("metrics")
    port = Number.option("metrics_port", int)
    group.add_argument("--metrics-port", type=port, default=env_default("WYOMING_FLUX_METRICS_PORT", port),
                       help="serve Prometheus /metrics and /healthz on this port (default off; "
                            "env WYOMING_FLUX_METRICS_PORT)")
    group.add_argument("--metrics-host", default=os.environ.get("WYOMING_FLUX_METRICS_HOST"),
                       help="address for the metrics port (default the --uri host, or 127.0.0.1 for unix://; "
                            "env WYOMING_FLUX_METRICS_HOST)")


def metrics_from_args(args: argparse.Namespace) -> tuple[str, int | None]:
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
