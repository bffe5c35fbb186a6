"""Describe round trips against a Wyoming server from a separate process, so a stall of the server's event loop
shows whatever the test's own loop is doing. Run as `python -m tests.describe_probe PORT`; prints `ready`, then
asks Describe every 10 ms until a line arrives on stdin, then prints the round trips (seconds) as JSON."""

from __future__ import annotations

import asyncio
import json
import sys

from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), stop.set)
    latencies: list[float] = []
    async with AsyncTcpClient("127.0.0.1", port) as client:
        print("ready", flush=True)
        while not stop.is_set():
            started = loop.time()
            await client.write_event(Describe().event())
            while (event := await client.read_event()) is not None and not Info.is_type(event.type):
                pass
            latencies.append(loop.time() - started)
            await asyncio.sleep(0.01)
    print(json.dumps(latencies), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
