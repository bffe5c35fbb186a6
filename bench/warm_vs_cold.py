"""What a warm Flux connection buys where the user feels it, and what it costs while nobody speaks.

Buys: end of speech -> Transcript, warm vs cold. The fake Flux takes 150 ms per handshake (a realistic round
trip); each fixture is streamed in real time with 1 s of trailing silence, alternating cold and warm servers
so machine noise hits both alike. Costs: handshakes an idle server makes, per setting, counted at the fake.

    .venv/bin/python bench/warm_vs_cold.py [--rounds 3] [--idle 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from common import command, count_events, cpu_model, processes, save

from tests.helpers import english_commands, load_wav, silence
from wyoming_flux.cli.client import speech_end

NAMES = english_commands()


async def closing_ms(port: int, name: str) -> float:
    pcm = load_wav(name)
    end = speech_end(pcm, 16000, 2, 1)
    outcome = await command(port, pcm + silence(1.0), pace=1.0)
    return (outcome.answered - (outcome.started + end)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds each idle server is watched")
    args = parser.parse_args()
    figures: dict[str, list[float]] = {"cold": [], "warm": []}
    for _ in range(args.rounds):
        for mode, warm in (("cold", "0"), ("warm", "1")):
            with processes("--warm-connections", warm, fake_args=("--handshake-delay", "0.15")) as (_, port):
                time.sleep(0.5)
                for name in NAMES:
                    figures[mode].append(asyncio.run(closing_ms(port, name)))
                    time.sleep(0.3)
    cold, warm = statistics.median(figures["cold"]), statistics.median(figures["warm"])
    diffs = [c - w for c, w in zip(figures["cold"], figures["warm"])]
    print(f"end of speech -> Transcript, median over {len(diffs)} commands: cold {cold:.0f} ms, warm {warm:.0f} ms; "
          f"warm/cold {warm / cold:.2f}; warm saves {statistics.median(diffs):.0f} ms "
          f"(per-pair range {min(diffs):.0f} to {max(diffs):.0f} ms)")
    idle: dict[str, float] = {}
    settings = {"off (default)": ("0", "120"), "warm, 120 s window": ("1", "120"), "warm, always": ("1", "0")}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (warm, window) in settings.items():
            log = Path(tmp) / f"{warm}-{window}.jsonl"
            with processes("--warm-connections", warm, "--warm-window", window,
                           fake_args=("--timing-log", str(log))):
                time.sleep(args.idle)
                idle[label] = count_events(log, "connected") / args.idle * 3600
            print(f"idle server, {label}: {idle[label]:.0f} handshakes an hour")
    print(f"results: {save('warm_vs_cold', {'cpu': cpu_model(), 'handshake_ms': 150, **figures, 'idle_per_hour': idle})}")


if __name__ == "__main__":
    main()
