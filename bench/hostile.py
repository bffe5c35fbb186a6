"""The Wyoming port under the attacks of the reliability tests, measured: Describe round trips (from this
process, every 10 ms) while

- idle (the reference);
- 40 clients scrape /metrics as fast as they can (another process);
- 1000 connections to the metrics port send half a request and wait (slowloris);
- the server reads the names of a 100,000-entity Home Assistant (tests/hostile_hass.py), from its start.

    .venv/bin/python bench/hostile.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time

from common import ROOT, free_port, percentiles, processes, save, wait_port
from wyoming.event import async_read_event
from wyoming.info import Describe

from wyoming_flux.server.wire import encode_event

SCRAPER = """
import asyncio, sys
async def scrape(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /metrics HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n"
    while True:
        writer.write(request)
        head = await reader.readuntil(b"\\r\\n\\r\\n")
        length = int(next(l for l in head.split(b"\\r\\n") if l.lower().startswith(b"content-length")).split(b":")[1])
        await reader.readexactly(length)
async def main(port, clients):
    await asyncio.gather(*(scrape(port) for _ in range(clients)))
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


async def describes(port: int, seconds: float) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies = []
    deadline = time.monotonic() + seconds
    describe = encode_event(Describe().event())
    while time.monotonic() < deadline:
        started = time.perf_counter()
        writer.write(describe)
        while (event := await async_read_event(reader)) is not None and event.type != "info":
            pass
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)
    writer.close()
    return latencies


def measure(port: int, seconds: float) -> dict[str, float]:
    figures = percentiles(asyncio.run(describes(port, seconds)))
    return {key: value if key == "n" else round(value * 1000, 2) for key, value in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    results: dict[str, object] = {}
    metrics_port = free_port()
    with processes("--metrics-port", str(metrics_port)) as (_server, port):
        wait_port(metrics_port)
        results["idle"] = measure(port, args.seconds)
        scrapers = subprocess.Popen([sys.executable, "-c", SCRAPER, str(metrics_port), "40"])
        try:
            time.sleep(1.0)
            results["scrape_flood_40"] = measure(port, args.seconds)
        finally:
            scrapers.kill()
            scrapers.wait()
        held = []
        for _ in range(1000):
            try:
                sock = socket.create_connection(("127.0.0.1", metrics_port), 2)
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n")
                held.append(sock)
            except OSError:
                pass
        results["slowloris_1000"] = measure(port, args.seconds)
        for sock in held:
            sock.close()
    hass = subprocess.Popen([sys.executable, "-m", "tests.hostile_hass", "--entities", "100000"], cwd=ROOT,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert hass.stdout is not None
        hass_port = hass.stdout.readline().split()[1].decode()
        os.environ["HASS_TOKEN"] = "bench"
        with processes("--hass-url", f"http://127.0.0.1:{hass_port}") as (_server, port):
            results["names_100k_from_start"] = measure(port, args.seconds)
    finally:
        hass.kill()
        hass.wait()
    for name, figures in results.items():
        print(f"{name:24} Describe ms: {figures}")
    print(save("hostile", results))


if __name__ == "__main__":
    main()
