"""Plots for docs/performance.md from bench/results/*.json: the added-latency distribution, and when the command
closes with Flux vs Home Assistant's VAD.    .venv/bin/python bench/plot.py"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from common import RESULTS  # noqa: E402


def latency() -> None:
    data = json.loads((RESULTS / "latency.json").read_text())
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for streams in ("1", "25", "100"):
        values = sorted(data[streams]["ms"])
        ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], drawstyle="steps-post",
                label=f"{streams} stream{'s' if streams != '1' else ''} (p50 {data[streams]['p50']:.2f}, "
                      f"p99 {data[streams]['p99']:.2f} ms)")
    ax.axvline(5, color="grey", linestyle=":", label="target p99 5 ms")
    ax.set_xlabel("EndOfTurn sent by Flux → Transcript read by the Wyoming client (ms)")
    ax.set_ylabel("fraction of commands")
    ax.set_title("Added latency (real-time streams, 10 ms chunks)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "latency.png", dpi=110)


def closing() -> None:
    rows = json.loads((RESULTS / "vad_vs_flux.json").read_text())["rows"]
    names = [r["fixture"].replace("_", " ") for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r["ha_vad_s"]["default"] * 1000 for r in rows], height=0.4,
            label="Home Assistant VAD (default)", color="#b0b0b0")
    ax.barh([i - 0.2 for i in y], [r["ours_s"] * 1000 for r in rows], height=0.4,
            label="Flux EndOfTurn via wyoming-flux", color="#13ef93")
    ax.set_yticks(list(y), names, fontsize=8)
    ax.set_xlabel("command closed, ms after the end of speech")
    ax.set_title("When the voice command closes")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.4, -0.2), ncol=2)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "closing.png", dpi=110)


if __name__ == "__main__":
    latency()
    closing()
    print(f"wrote {RESULTS / 'latency.png'} and {RESULTS / 'closing.png'}")
