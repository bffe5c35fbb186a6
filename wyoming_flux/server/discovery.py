"""Zeroconf: advertise the server as _wyoming._tcp.local. so Home Assistant finds it by itself."""

from __future__ import annotations

import logging
import socket

from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
DEFAULT_NAME = "deepgram-flux"


def detect_host() -> str:
    """The address other machines reach us at: the one a multicast packet would leave from (none is sent).

    Inside a Docker bridge network this is the container's address, which Home Assistant cannot reach:
    pass --zeroconf-host with the host's LAN address there.
    """
    for target in ("224.0.0.251", "192.0.2.1"):  # mDNS group, then any routed address (TEST-NET, never reached)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((target, 5353))
                host = str(probe.getsockname()[0])
        except OSError:
            continue
        if host != "0.0.0.0":
            return host
    return "127.0.0.1"


def advertised_host(bound_host: str, explicit: str | None) -> str:
    """--zeroconf-host if given, else the address the server is bound to if it is a specific one, else detected."""
    if explicit:
        return explicit
    return bound_host if bound_host not in ("", "0.0.0.0", "::") else detect_host()


class Advertisement:
    """Registers the service on start(), withdraws it on stop() so Home Assistant does not keep a stale entry."""

    def __init__(self, name: str, port: int, host: str | None = None) -> None:
        self.name = name
        self.port = port
        self.host = host or detect_host()
        self._zeroconf: AsyncZeroconf | None = None
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{name}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(self.host)],
            port=port,
            server=f"{name}.local.",
        )

    async def start(self) -> None:
        self._zeroconf = AsyncZeroconf()
        await (await self._zeroconf.async_register_service(self._info))  # the call returns the announcing task
        _LOGGER.info("Advertising %s on %s:%d via zeroconf", self.name, self.host, self.port)

    async def stop(self) -> None:
        if self._zeroconf is not None:
            await (await self._zeroconf.async_unregister_service(self._info))  # goodbye packets go out first
            await self._zeroconf.async_close()
            self._zeroconf = None
