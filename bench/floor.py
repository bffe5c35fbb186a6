"""The floor under the CPU figures: what a do-nothing asyncio server costs to receive the same traffic
(N clients x 100 Wyoming audio chunks a second, written by the wyoming library as Home Assistant does).

    .venv/bin/python bench/floor.py [--streams 25] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

from common import cpu_model, cpu_seconds, free_port, save, wait_port
from wyoming.audio import AudioChunk
from wyoming.event import async_write_event

SERVER = """
import asyncio, sys
async def main(kind, port):
    if kind == "streamreader":
        async def handle(reader, writer):
            while await reader.read(65536):
                pass
        server = await asyncio.start_server(handle, "127.0.0.1", port)
    else:
        class Discard(asyncio.Protocol):
            def data_received(self, data):
                pass
        server = await asyncio.get_running_loop().create_server(Discard, "127.0.0.1", port)
    await server.serve_forever()
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def clients(port: int, streams: int, seconds: float) -> None:
    async def one() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        event = AudioChunk(rate=16000, width=2, channels=1, audio=bytes(320)).event()
        start = time.monotonic()
        for i in range(int(seconds * 100)):
            await async_write_event(event, writer)
            await asyncio.sleep(max(0.0, start + (i + 1) / 100 - time.monotonic()))
        writer.close()
    await asyncio.gather(*(one() for _ in range(streams)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    results: dict[str, object] = {"cpu": cpu_model()}
    for kind in ("streamreader", "protocol"):
        port = free_port()
        server = subprocess.Popen([sys.executable, "-c", SERVER, kind, str(port)])
        try:
            wait_port(port)
            before = cpu_seconds(server.pid)
            asyncio.run(clients(port, args.streams, args.seconds))
            ms = (cpu_seconds(server.pid) - before) / (args.streams * args.seconds) * 1000
        finally:
            server.terminate()
            server.wait(10)
        results[kind] = ms
        print(f"do-nothing {kind} server: {ms:.2f} ms CPU per second of audio", flush=True)
    print(f"results: {save('floor', results)}")


if __name__ == "__main__":
    main()
