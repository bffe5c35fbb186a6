"""The connection layer, measured in one run against a do-nothing asyncio Protocol server (the floor):

- CPU per second of audio for the same real-time streams of 10 ms chunks (16 kHz mono, as Home Assistant
  sends them, and 48 kHz stereo), server and floor taking turns, reported as the ratio server / floor with
  its spread over the repeats; the same for the server with `--read-window 0` (every chunk read as it comes);
- what batched reads cost: AudioStop → Transcript for commands that end on the client's AudioStop, with and
  without `--read-window`;
- fairness: another client's Describe round trip while one client floods Describe, or audio, as fast as it can.

    .venv/bin/python bench/connection.py [--streams 25] [--seconds 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

from common import cpu_model, cpu_seconds, free_port, percentiles, processes, save, wait_port
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import async_read_event
from wyoming.info import Describe

from wyoming_flux.server.protocol.wire import encode_event

FLOOR = """
import asyncio, sys
class Discard(asyncio.Protocol):
    def data_received(self, data):
        pass
async def main(port):
    server = await asyncio.get_running_loop().create_server(Discard, "127.0.0.1", port)
    await server.serve_forever()
asyncio.run(main(int(sys.argv[1])))
"""

FORMATS = {"16k_mono": (16000, 1), "48k_stereo": (48000, 2)}


async def stream(port: int, rate: int, channels: int, seconds: float, answer: bool) -> None:
    """One command at real-time pace: AudioStart, 10 ms chunks, AudioStop (and the answer from the server)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(encode_event(AudioStart(rate=rate, width=2, channels=channels).event()))
    chunk = encode_event(AudioChunk(rate=rate, width=2, channels=channels, audio=bytes(rate // 100 * 2 * channels)).event())
    start = time.monotonic()
    for i in range(int(seconds * 100)):
        writer.write(chunk)
        await writer.drain()
        await asyncio.sleep(max(0.0, start + (i + 1) / 100 - time.monotonic()))
    writer.write(encode_event(AudioStop().event()))
    if answer:
        async with asyncio.timeout(30):
            while (event := await async_read_event(reader)) is not None and event.type not in ("transcript", "error"):
                pass
    writer.close()


async def load(port: int, pid: int, streams: int, seconds: float, fmt: str, answer: bool) -> float:
    """ms of the server's CPU per second of audio."""
    rate, channels = FORMATS[fmt]
    await asyncio.sleep(0.5)  # let the previous run's closes settle
    before = cpu_seconds(pid)
    await asyncio.gather(*(stream(port, rate, channels, seconds, answer) for _ in range(streams)))
    return (cpu_seconds(pid) - before) / (streams * seconds) * 1000


async def close_times(port: int, count: int = 24) -> list[float]:
    """ms from AudioStop to the Transcript, for commands ending on the client's AudioStop (the fake Flux never
    ends a turn itself) at every position within an 80 ms batch."""
    chunk = encode_event(AudioChunk(rate=16000, width=2, channels=1, audio=bytes(320)).event())
    times = []
    for i in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(encode_event(AudioStart(rate=16000, width=2, channels=1).event()))
        start = time.monotonic()
        for n in range(40 + i % 8):  # AudioStop after 0..7 chunks of the last batch
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(max(0.0, start + (n + 1) / 100 - time.monotonic()))
        stopped = time.perf_counter()
        writer.write(encode_event(AudioStop().event()))
        async with asyncio.timeout(30):
            while (event := await async_read_event(reader)) is not None and event.type not in ("transcript", "error"):
                pass
        times.append((time.perf_counter() - stopped) * 1000)
        writer.close()
    return times


async def fairness(port: int, flood: str, seconds: float = 5.0) -> dict[str, float]:
    """Describe round trips (ms) of a well-behaved client while another floods the server."""
    stop = asyncio.Event()

    async def flooder() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if flood == "describe":
            batch = encode_event(Describe().event()) * 100
        else:
            writer.write(encode_event(AudioStart(rate=16000, width=2, channels=1).event()))
            batch = encode_event(AudioChunk(rate=16000, width=2, channels=1, audio=bytes(320)).event()) * 100

        async def drain_answers() -> None:  # read all the time, so only the server limits the flood
            while await reader.read(1 << 20):
                pass
        draining = asyncio.create_task(drain_answers())
        while not stop.is_set():
            writer.write(batch)
            await writer.drain()
        writer.close()
        await asyncio.gather(draining, return_exceptions=True)

    async def prober() -> list[float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        times = []
        deadline = time.monotonic() + seconds
        describe = encode_event(Describe().event())
        while time.monotonic() < deadline:
            started = time.perf_counter()
            writer.write(describe)
            event = await async_read_event(reader)
            assert event is not None and event.type == "info"
            times.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.01)
        writer.close()
        return times

    task = asyncio.create_task(flooder())
    await asyncio.sleep(0.5)
    times = await prober()
    stop.set()
    await task
    return percentiles(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, object] = {"cpu": cpu_model(), "streams": args.streams, "seconds": args.seconds}
    floor_port = free_port()
    floor = subprocess.Popen([sys.executable, "-c", FLOOR, str(floor_port)])
    try:
        wait_port(floor_port)
        with (processes("--warm-connections", "0", fake_args=("--no-eot",)) as (server, port),
              processes("--warm-connections", "0", "--read-window", "0", fake_args=("--no-eot",)) as (plain, plain_port)):
            for fmt in FORMATS:
                ratios, ours, floors, plains, plain_ratios = [], [], [], [], []
                for _ in range(args.repeat):  # alternate, so all see the same machine load
                    floors.append(asyncio.run(load(floor_port, floor.pid, args.streams, args.seconds, fmt, False)))
                    ours.append(asyncio.run(load(port, server.pid, args.streams, args.seconds, fmt, True)))
                    plains.append(asyncio.run(load(plain_port, plain.pid, args.streams, args.seconds, fmt, True)))
                    ratios.append(ours[-1] / floors[-1])
                    plain_ratios.append(plains[-1] / floors[-1])
                results[fmt] = {"server_ms": ours, "floor_ms": floors, "ratio": ratios,
                                "ratio_median": statistics.median(ratios), "unbatched_ms": plains,
                                "unbatched_ratio": plain_ratios}
                print(f"CPU {fmt}: server / floor = {statistics.median(ratios):.2f} (runs "
                      f"{', '.join(f'{r:.2f}' for r in ratios)}); server {statistics.median(ours):.2f} ms, floor "
                      f"{statistics.median(floors):.2f} ms per second of audio; --read-window 0: "
                      f"{statistics.median(plain_ratios):.2f} ({', '.join(f'{r:.2f}' for r in plain_ratios)})",
                      flush=True)
            for name, target in (("close_batched", port), ("close_unbatched", plain_port)):
                stats = percentiles(asyncio.run(close_times(target)))
                results[name] = stats
                print(f"AudioStop -> Transcript, {name.removeprefix('close_')}: p50 {stats['p50']:.1f} ms, "
                      f"p99 {stats['p99']:.1f} ms, max {stats['max']:.1f} ms (n={stats['n']})", flush=True)
            for flood in ("describe", "audio"):
                stats = asyncio.run(fairness(port, flood))
                results[f"describe_during_{flood}_flood"] = stats
                print(f"Describe round trip during a {flood} flood: p50 {stats['p50']:.2f} ms, p99 "
                      f"{stats['p99']:.2f} ms, max {stats['max']:.2f} ms (n={stats['n']})", flush=True)
    finally:
        floor.terminate()
        floor.wait(10)
    print(f"results: {save('connection', results)}")


if __name__ == "__main__":
    main()
