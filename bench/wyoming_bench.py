"""An independent client: wyoming-bench (PyPI) in streaming mode against our server backed by the fake Flux.

    uv venv -p python3.11 .venv-bench && uv pip install -p .venv-bench/bin/python wyoming-bench==2026.10.0
    .venv/bin/python bench/wyoming_bench.py [--rounds 5]

The corpus is the kitchen fixture (the fake's transcript), sent in HA-sized 10 ms chunks at real-time pace.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from common import ROOT, processes

from tests.helpers import FIXTURES

BENCH = ROOT / ".venv-bench" / "bin" / "wyoming-bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not BENCH.exists():
        raise SystemExit(f"install wyoming-bench first (see {__file__})")
    with tempfile.TemporaryDirectory() as corpus, processes("--warm-connections", "1") as (_, port):
        for suffix in ("wav", "txt"):
            shutil.copy(FIXTURES / f"turn_on_the_kitchen_light.{suffix}", Path(corpus) / f"kitchen.{suffix}")
        output = subprocess.run(
            [str(BENCH), "stt", f"127.0.0.1:{port}", "--corpus", corpus, "--mode", "streaming",
             "--chunk-samples", "160", "--chunk-delay", "0.01", "--trailing-silence", "2",
             "--rounds", str(args.rounds)],
            capture_output=True, text=True, check=False)
        print(output.stdout, output.stderr[-3000:])
        (ROOT / "bench" / "results").mkdir(exist_ok=True)
        (ROOT / "bench" / "results" / "wyoming_bench.txt").write_text(output.stdout)


if __name__ == "__main__":
    main()
