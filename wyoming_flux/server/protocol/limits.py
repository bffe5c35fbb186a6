"""Per-connection limits: what any one Wyoming client can make the server hold, and for how long.

Every limit is a flag with an environment variable (cli/server_flags.py); the defaults are far above what a home
needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .wire import WireLimits


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 500  # beyond it a client gets an Error and a close
    idle_timeout: float = 30.0  # seconds with no event while no command is open
    audio_timeout: float = 10.0  # seconds between events while a command is open
    event_timeout: float = 10.0  # seconds to finish sending an event once its first byte arrived
    send_timeout: float = 10.0  # seconds a client may leave max_queued_bytes unread
    max_queued_bytes: int = 1024 * 1024  # answers waiting for a client that does not read
    read_window: float = 0.08  # seconds of streamed audio the kernel may gather before we read it (reads.py)
    wire: WireLimits = field(default_factory=WireLimits)
