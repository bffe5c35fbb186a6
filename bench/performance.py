"""Regenerate the connection-layer figures of docs/performance.md with one command: runs
bench/connection.py (CPU against the Protocol floor, Describe fairness) and bench/latency.py (added latency),
then prints the table rows, naming the machine.

    .venv/bin/python bench/performance.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import RESULTS, cpu_model

HERE = Path(__file__).parent


def run(script: str, *args: str) -> dict:  # type: ignore[type-arg]
    subprocess.run([sys.executable, str(HERE / f"{script}.py"), *args], check=True)
    return json.loads((RESULTS / f"{script}.json").read_text())


def machine() -> str:
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return f"{os.cpu_count()} cores reported as \"{cpu_model()}\", {memory / 1024 ** 2:.0f} GiB, Python {sys.version.split()[0]}"


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs, for a look")
    args = parser.parse_args()
    quick = ("--seconds", "5", "--repeat", "1") if args.quick else ()
    connection = run("connection", *quick)
    latency = run("latency", *(("--rounds-1", "5", "--rounds-25", "1", "--rounds-50", "1", "--rounds-100", "1")
                               if args.quick else ()))
    print(f"\nMachine: {machine()}\n")
    print("| what | result | target |\n|---|---|---|")
    for fmt, target in (("16k_mono", 1.2), ("48k_stereo", 1.3)):
        figures = connection[fmt]
        ratio = figures["ratio_median"]
        print(f"| CPU per audio-second, {fmt.replace('_', ' ')}, server ÷ do-nothing Protocol server "
              f"({connection['streams']} streams × {connection['seconds']:.0f} s, same run) | **{ratio:.2f}×** "
              f"(runs {spread(figures['ratio'])}; server {spread(figures['server_ms'])} ms/s, floor "
              f"{spread(figures['floor_ms'])} ms/s; with `--read-window 0` {statistics.median(figures['unbatched_ratio']):.2f}×, "
              f"runs {spread(figures['unbatched_ratio'])}) | ≤ {target}× {'✅' if ratio <= target else '❌'} |")
    batched, unbatched = connection["close_batched"], connection["close_unbatched"]
    print(f"| AudioStop → Transcript when the client's AudioStop ends the command (what batched reads cost) | "
          f"p50 {batched['p50']:.1f} / p99 {batched['p99']:.1f} ms; with `--read-window 0` p50 "
          f"{unbatched['p50']:.1f} / p99 {unbatched['p99']:.1f} ms (n={batched['n']}) | |")
    for flood in ("describe", "audio"):
        stats = connection[f"describe_during_{flood}_flood"]
        print(f"| Another client's Describe round trip while one floods {flood} | p50 {stats['p50']:.2f} / p99 "
              f"{stats['p99']:.2f} ms (n={stats['n']}) | p99 ≤ 50 ms {'✅' if stats['p99'] <= 50 else '❌'} |")
    for streams in ("1", "25", "50", "100"):
        stats = latency[streams]
        target = "p99 ≤ 5 ms" if streams == "50" else ""
        mark = ("✅" if stats["p99"] <= 5 else "❌") if target else ""
        print(f"| Added latency, Flux EndOfTurn → Transcript at the client, {streams} streams | p50 {stats['p50']:.2f} / "
              f"p95 {stats['p95']:.2f} / p99 {stats['p99']:.2f} ms (n={stats['n']}) | {target} {mark} |")


if __name__ == "__main__":
    main()
