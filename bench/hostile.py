"""The Wyoming port under the attacks of the reliability tests, measured: Describe round trips (from this
process, every 10 ms) while

- idle (the reference);
- 40 clients scrape /metrics as fast as they can (another process);
- 1000 connections to the metrics port send half a request and wait (slowloris);
- one connection pipelines `GET /metrics` as fast as it can and never reads the answers (or reads them), while
  another client asks /healthz every 250 ms and the server's memory is sampled;
- 16 keep-alive connections hold the metrics port (each asks `HEAD /healthz` now and then) and 20 scrapes come;
- the server reads the names of a 100,000-entity Home Assistant (tests/hostile_hass.py), from its start;
- a Nova-3 command whose Deepgram settles without end (tests/fake_nova.py): 1,000 one-word segments per audio
  second (tiny_finals), or a 1 MiB segment every 0.2 s (huge_finals); also the text's length and the server's
  RSS growth (peak, sampled every 50 ms).

    .venv/bin/python bench/hostile.py [--seconds 5] [--only nova]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import threading
import time

from common import ROOT, chunks, free_port, percentiles, processes, rss_kb, save, wait_port
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import async_read_event
from wyoming.info import Describe

from wyoming_flux.server.protocol.wire import encode_event

SCRAPER = """
import asyncio, sys
async def scrape(port):
    request = b"GET /metrics HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n"
    while True:  # those over the port's bounds are answered 503 and closed: they come again
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        try:
            while True:
                writer.write(request)
                head = await reader.readuntil(b"\\r\\n\\r\\n")
                length = int(next(l for l in head.split(b"\\r\\n") if l.lower().startswith(b"content-length")).split(b":")[1])
                await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError):
            writer.close()
            await asyncio.sleep(0.01)
async def main(port, clients):
    await asyncio.gather(*(scrape(port) for _ in range(clients)))
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""

PIPELINER = """
import socket, sys, threading
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
if sys.argv[2] == "read":
    threading.Thread(target=lambda: [None for _ in iter(lambda: sock.recv(1 << 16), b"")], daemon=True).start()
requests = b"GET /metrics HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n" * 4096
while True:
    sock.sendall(requests)
"""


def http_get(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """One request on its own connection; the answer's status line (b"" if it failed or timed out)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout) as sock:
            sock.sendall(request)
            answer = b""
            while b"\r\n" not in answer and (data := sock.recv(4096)):
                answer += data
            return answer.split(b"\r\n", 1)[0]
    except OSError:
        return b""


def under_pipeline(server_pid: int, port: int, metrics_port: int, mode: str, seconds: float) -> dict[str, object]:
    """Describe round trips, /healthz from another client and the server's RSS while one connection pipelines."""
    before = rss_kb(server_pid)
    peak = [before]
    health: list[tuple[float, bool]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.25):
            peak[0] = max(peak[0], rss_kb(server_pid))
            started = time.perf_counter()
            ok = http_get(metrics_port, b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            health.append((time.perf_counter() - started, ok.startswith(b"HTTP/1.1 200")))

    attacker = subprocess.Popen([sys.executable, "-c", PIPELINER, str(metrics_port), mode])
    watcher = threading.Thread(target=watch)
    try:
        time.sleep(1.0)
        watcher.start()
        figures: dict[str, object] = dict(measure(port, seconds))
    finally:
        stop.set()
        attacker.kill()
        attacker.wait()
        if watcher.is_alive():
            watcher.join()
    figures["healthz"] = {"n": len(health), "failed": sum(1 for _, ok in health if not ok),
                          "max_ms": round(max((t for t, _ in health), default=0.0) * 1000, 1)}
    time.sleep(1.0)
    figures["rss_mb"] = {"before": round(before / 1024, 1), "peak": round(peak[0] / 1024, 1),
                         "after": round(rss_kb(server_pid) / 1024, 1)}
    return figures


def keep_alive_lockout(metrics_port: int) -> dict[str, int]:
    """16 keep-alive connections that each asked HEAD /healthz, then 20 scrapes on new connections."""
    held = []
    for _ in range(16):
        sock = socket.create_connection(("127.0.0.1", metrics_port), 2)
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
        sock.recv(4096)
        held.append(sock)
    statuses = [http_get(metrics_port, b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                for _ in range(20)]
    for sock in held:
        sock.close()
    return {"scrapes": len(statuses), "answered_200": sum(1 for s in statuses if s.startswith(b"HTTP/1.1 200"))}


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


async def nova_runaway(port: int, pid: int, seconds: float) -> dict[str, float]:
    """A Polish command (Nova-3) streamed in real time for `seconds`, then AudioStop; Describe meanwhile on
    another connection; the Transcript's length and the server's peak RSS growth."""
    async def command() -> int:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Transcribe(language="pl").event())
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            for chunk in chunks(bytes(int(32000 * seconds)), 3200):
                await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=chunk).event())
                await asyncio.sleep(0.1)
            await client.write_event(AudioStop().event())
            while (event := await client.read_event()) is not None and not Transcript.is_type(event.type):
                pass
            return len(Transcript.from_event(event).text) if event is not None else -1

    async def peak_rss(done: asyncio.Future[object]) -> int:
        peak = 0
        while not done.done():
            peak = max(peak, rss_kb(pid))
            await asyncio.sleep(0.05)
        return peak

    before = rss_kb(pid)
    answer = asyncio.ensure_future(command())
    latencies, peak, text_chars = await asyncio.gather(describes(port, seconds), peak_rss(answer), answer)
    figures = {key: value if key == "n" else round(value * 1000, 2) for key, value in percentiles(latencies).items()}
    return {**figures, "text_chars": text_chars, "rss_growth_mb": round((peak - before) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--only", choices=("nova",), help="only the Nova-3 runaway peers")
    args = parser.parse_args()
    results: dict[str, object] = {}
    for mode in ("tiny_finals", "huge_finals"):
        with processes(fake_args=("--nova-mode", mode)) as (server, port):
            try:
                results[f"nova_{mode}"] = asyncio.run(nova_runaway(port, server.pid, args.seconds))
            except (OSError, TimeoutError) as err:  # an overwhelmed server drops its clients
                results[f"nova_{mode}"] = {"failed": repr(err)}
        print(f"nova_{mode:19} {results[f'nova_{mode}']}", flush=True)
    if args.only:
        report(results, "hostile_nova")
        return
    metrics_port = free_port()
    with processes("--metrics-port", str(metrics_port)) as (server, port):
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
        time.sleep(1.0)
        for mode in ("unread", "read"):
            results[f"metrics_pipeline_{mode}"] = under_pipeline(server.pid, port, metrics_port, mode, args.seconds)
        results["metrics_keep_alive_16"] = keep_alive_lockout(metrics_port)
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
    report(results, "hostile")


def report(results: dict[str, object], name: str) -> None:
    for scenario, figures in results.items():
        print(f"{scenario:24} Describe ms: {figures}")
    print(save(name, results))


if __name__ == "__main__":
    main()
