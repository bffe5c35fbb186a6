"""Soak: thousands of commands against a real server process backed by the fake Flux; RSS and fds must stay flat.

    .venv/bin/python bench/soak.py [--commands 2000] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from common import command, open_fds, processes, rss_kb

from tests.helpers import fixture_text, load_wav, silence

KITCHEN = "turn_on_the_kitchen_light"


async def run(port: int, pid: int, total: int, concurrency: int) -> list[tuple[int, int, int]]:
    pcm = load_wav(KITCHEN) + silence(0.5)
    expected = fixture_text(KITCHEN)
    samples: list[tuple[int, int, int]] = []
    done = 0
    step = max(1, total // 10)
    next_sample = 0

    async def worker(count: int) -> None:
        nonlocal done, next_sample
        for _ in range(count):
            outcome = await command(port, pcm)
            assert outcome.text == expected, outcome.text
            done += 1
            if done >= next_sample:
                samples.append((done, rss_kb(pid), open_fds(pid)))
                next_sample += step

    per_worker = total // concurrency
    await asyncio.gather(*(worker(per_worker) for _ in range(concurrency)))
    samples.append((done, rss_kb(pid), open_fds(pid)))
    return samples


def report(title: str, samples: list[tuple[int, int, int]], seconds: float) -> None:
    print(f"\n{title}: {samples[-1][0]} commands in {seconds:.1f} s ({samples[-1][0] / seconds:.0f}/s)")
    print(f"{'commands':>9} {'RSS MB':>8} {'fds':>5}")
    for done, rss, fds in samples:
        print(f"{done:>9} {rss / 1024:>8.1f} {fds:>5}")
    warm = samples[1] if len(samples) > 2 else samples[0]
    print(f"RSS after warm-up {warm[1] / 1024:.1f} MB -> end {samples[-1][1] / 1024:.1f} MB "
          f"({(samples[-1][1] - warm[1]) / 1024:+.1f} MB); fds {warm[2]} -> {samples[-1][2]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    with processes() as (server, port):
        for title, concurrency in (("sequential", 1), (f"concurrent ({args.concurrency} clients)", args.concurrency)):
            started = time.monotonic()
            samples = asyncio.run(run(port, server.pid, args.commands, concurrency))
            report(title, samples, time.monotonic() - started)


if __name__ == "__main__":
    main()
