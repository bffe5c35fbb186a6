"""Added latency: from the moment the fake Flux sends EndOfTurn to the moment the Wyoming client reads the
Transcript, per command, at 1, 25, 50 and 100 concurrent real-time streams of HA-style 10 ms chunks.

    .venv/bin/python bench/latency.py [--rounds-1 20] [--rounds-25 4] [--rounds-50 3] [--rounds-100 2]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
from pathlib import Path

from common import command, cpu_model, percentiles, processes, read_timing_log, save

from tests.helpers import fixture_text, load_wav, silence

KITCHEN = "turn_on_the_kitchen_light"  # the fake's transcript; what is measured here does not depend on the words


async def round_(port: int, streams: int, round_no: int) -> list[tuple[str, float, str]]:
    async def one(i: int) -> tuple[str, float, str]:
        name = KITCHEN
        await asyncio.sleep(random.uniform(0, 1.0))  # spread the starts, like real users
        tag = f"bench-{streams}-{round_no}-{i}"
        outcome = await command(port, load_wav(name) + silence(3), pace=1.0, tag=tag)
        assert outcome.text == fixture_text(name), outcome.text
        return tag, outcome.answered, name
    return await asyncio.gather(*(one(i) for i in range(streams)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds-1", type=int, default=20)
    parser.add_argument("--rounds-25", type=int, default=4)
    parser.add_argument("--rounds-50", type=int, default=3)
    parser.add_argument("--rounds-100", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, object] = {"cpu": cpu_model()}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "timings.jsonl"
        with processes("--warm-connections", "0", fake_args=("--timing-log", str(log))) as (_, port):
            for streams, rounds in ((1, args.rounds_1), (25, args.rounds_25), (50, args.rounds_50), (100, args.rounds_100)):
                answers = []
                for r in range(rounds):
                    answers += asyncio.run(round_(port, streams, r))
                times = read_timing_log(log)
                added = [(answered - float(times[(tag, "end_of_turn")]["t"])) * 1000 for tag, answered, _ in answers]
                stats = percentiles(added)
                results[str(streams)] = {"ms": added, **stats}
                print(f"{streams:>3} streams: n={stats['n']:>3}  p50 {stats['p50']:.2f} ms  p95 {stats['p95']:.2f} ms  "
                      f"p99 {stats['p99']:.2f} ms  max {stats['max']:.2f} ms", flush=True)
    print(f"results: {save('latency', results)}")


if __name__ == "__main__":
    main()
