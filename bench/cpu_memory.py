"""Server CPU per second of audio (16 kHz mono as Home Assistant sends it, and 48 kHz stereo), and memory per
live session, measured on the server process while real-time streams run against the fake Flux.

    .venv/bin/python bench/cpu_memory.py [--streams 25] [--seconds 10] [--sessions 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
from common import command, cpu_model, cpu_seconds, processes, rss_kb, save
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient

from tests.helpers import load_wav, silence


def speech(seconds: float) -> bytes:
    clip = load_wav("turn_on_the_kitchen_light") + silence(0.3)
    return (clip * (int(seconds * 32000 / len(clip)) + 1))[: int(seconds * 32000) // 2 * 2]


def to_48k_stereo(pcm16: bytes) -> bytes:
    x = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    up = np.interp(np.arange(len(x) * 3) / 3, np.arange(len(x)), x).astype("<i2")
    return np.repeat(up, 2).tobytes()


async def cpu_run(port: int, pid: int, streams: int, seconds: float, stereo48: bool) -> float:
    pcm = speech(seconds)
    rate, channels = 16000, 1
    if stereo48:
        pcm, rate, channels = to_48k_stereo(pcm), 48000, 2
    before = cpu_seconds(pid)
    outcomes = await asyncio.gather(*(
        command(port, pcm, rate=rate, channels=channels, chunk_bytes=rate // 100 * 2 * channels, pace=1.0)
        for _ in range(streams)))
    used = cpu_seconds(pid) - before
    audio = sum(o.bytes_sent for o in outcomes) / (rate * 2 * channels)
    return used / audio * 1000  # ms of CPU per second of audio


async def memory_run(port: int, pid: int, sessions: int) -> tuple[float, float]:
    baseline = rss_kb(pid)
    clients = []
    for _ in range(sessions):
        client = AsyncTcpClient("127.0.0.1", port)
        await client.connect()
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        clients.append(client)
    pcm = speech(3)
    for offset in range(0, len(pcm), 3200):  # 3 s of audio in 100 ms steps, all sessions alive
        for client in clients:
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=pcm[offset:offset + 3200]).event())
        await asyncio.sleep(0.1)
    live = rss_kb(pid)
    for client in clients:
        await client.disconnect()
    return baseline / 1024, (live - baseline) / sessions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, object] = {"cpu": cpu_model()}
    with processes("--warm-connections", "0", fake_args=("--no-eot",)) as (server, port):
        asyncio.run(command(port, speech(2), pace=None))  # warm-up: imports, first allocations
        for label, stereo in (("16k_mono", False), ("48k_stereo", True)):
            runs = sorted(asyncio.run(cpu_run(port, server.pid, args.streams, args.seconds, stereo))
                          for _ in range(args.repeat))
            results[f"cpu_ms_per_audio_s_{label}"] = {"median": runs[len(runs) // 2], "runs": runs}
            print(f"CPU, {label.replace('_', ' ')}: median {runs[len(runs) // 2]:.2f} ms per second of audio, "
                  f"runs {', '.join(f'{r:.2f}' for r in runs)} ({args.streams} real-time streams x {args.seconds:.0f} s)",
                  flush=True)
        time.sleep(1)
        base_mb, per_session = asyncio.run(memory_run(port, server.pid, args.sessions))
        results["rss_idle_mb"], results["rss_per_session_kb"] = base_mb, per_session
        print(f"memory: idle server {base_mb:.1f} MB; {per_session:.0f} KB per live session "
              f"({args.sessions} sessions streaming)")
    print(f"results: {save('cpu_memory', results)}")


if __name__ == "__main__":
    main()
