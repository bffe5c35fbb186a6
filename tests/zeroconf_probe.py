"""Run inside a private network namespace (see test_discovery.py): start the server with --zeroconf, find it
with a real zeroconf browser, Describe it at the discovered address, stop it and see the service withdrawn.
Prints one JSON line with what it saw."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys

from zeroconf import ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from wyoming_flux.cli.client import check

PORT = 10555


async def main() -> None:
    env = {**os.environ}
    server = subprocess.Popen([sys.executable, "-m", "wyoming_flux", "--uri", f"tcp://0.0.0.0:{PORT}",
                               "--api-key", "k", "--zeroconf", "probe-flux"], env=env)
    seen: dict[str, object] = {"added": [], "removed": []}
    found = asyncio.Event()
    gone = asyncio.Event()
    aiozc = AsyncZeroconf()

    def on_change(zeroconf, service_type, name, state_change):  # type: ignore[no-untyped-def]
        if state_change is ServiceStateChange.Added:
            seen["added"].append(name)  # type: ignore[union-attr]
            found.set()
        elif state_change is ServiceStateChange.Removed:
            seen["removed"].append(name)  # type: ignore[union-attr]
            gone.set()

    browser = AsyncServiceBrowser(aiozc.zeroconf, "_wyoming._tcp.local.", handlers=[on_change])
    try:
        await asyncio.wait_for(found.wait(), 15)
        info = AsyncServiceInfo("_wyoming._tcp.local.", "probe-flux._wyoming._tcp.local.")
        assert await info.async_request(aiozc.zeroconf, 3000)
        address = socket.inet_ntoa(info.addresses[0])
        seen.update(port=info.port, address=address)
        seen["check"] = await check(f"tcp://{address}:{info.port}", 5.0)
        server.terminate()
        server.wait(10)
        await asyncio.wait_for(gone.wait(), 10)
    finally:
        if server.poll() is None:
            server.kill()
        await browser.async_cancel()
        await aiozc.async_close()
    print(json.dumps(seen))


asyncio.run(main())
