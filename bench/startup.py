"""Start-up: from AudioStart to the first audio frame at Flux, with the fake adding a realistic 150 ms
handshake; cold (a handshake per command) and warm (--warm-connections 1). Also checks that no audio is lost
while a cold handshake is under way, and counts what warm connections cost while idle.

    .venv/bin/python bench/startup.py [--commands 20] [--idle 30]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from common import command, count_events, cpu_model, percentiles, processes, read_timing_log, save

from tests.helpers import load_wav


async def run(port: int, commands: int, prefix: str) -> list[tuple[str, float, int]]:
    outcomes = []
    pcm = load_wav("turn_on_the_kitchen_light")[: 32000]  # 1 s with speech from 0.5 s: ends by AudioStop
    for i in range(commands):
        tag = f"bench-{prefix}-{i}"
        outcome = await command(port, pcm, pace=None, tag=tag)  # all at once: the handshake is still going on
        outcomes.append((tag, outcome.started, outcome.bytes_sent))
        await asyncio.sleep(0.5)  # users do not speak back to back; lets the pool refill
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=20)
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()
    results: dict[str, object] = {"cpu": cpu_model(), "handshake_ms": 150}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, warm in (("cold", "0"), ("warm", "1")):
            log = Path(tmp) / f"{mode}.jsonl"
            with processes("--warm-connections", warm, fake_args=("--handshake-delay", "0.15", "--timing-log", str(log))) as (_, port):
                time.sleep(0.5)
                outcomes = asyncio.run(run(port, args.commands, mode))
                entries = read_timing_log(log)
                startup = [(float(entries[(tag, "first_audio")]["t"]) - started) * 1000 for tag, started, _ in outcomes]
                lost = [sent - int(entries[(tag, "closed")]["audio_bytes"]) for tag, _, sent in outcomes]  # type: ignore[call-overload]
                stats = percentiles(startup)
                results[mode] = {"startup_ms": startup, **stats, "bytes_lost": sum(lost)}
                print(f"{mode}: AudioStart -> first frame at Flux p50 {stats['p50']:.1f} ms, p95 {stats['p95']:.1f} ms, "
                      f"max {stats['max']:.1f} ms; audio lost: {sum(lost)} bytes over {args.commands} commands", flush=True)
                if warm == "1":
                    before = count_events(log, "connected")
                    time.sleep(args.idle)
                    per_hour = (count_events(log, "connected") - before) / args.idle * 3600
                    results["warm_idle_handshakes_per_hour"] = per_hour
                    print(f"warm connections idle: {per_hour:.0f} handshakes an hour, one extra open stream", flush=True)
    print(f"results: {save('startup', results)}")


if __name__ == "__main__":
    main()
