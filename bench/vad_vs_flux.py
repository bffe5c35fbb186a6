"""When does the command close: Home Assistant's own VAD, or Flux's EndOfTurn through our server?

For each speech fixture (+ 5 s of silence): HA's VoiceCommandSegmenter fed with the speech probabilities
HA's pipeline computes (MicroVadSpeexEnhancer, 10 ms chunks), at each sensitivity; and the time our server
answers with the Transcript when the audio is streamed in real time to it, backed by the fake Flux that
ends a turn 0.26 s after speech (Flux's published ~260 ms). Both are measured from the end of speech.

    .venv/bin/python bench/vad_vs_flux.py            # add --pipeline for the real assist pipeline check
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys

from common import ROOT, command, cpu_model, processes, save
from homeassistant.components.assist_pipeline.audio_enhancer import MicroVadSpeexEnhancer
from homeassistant.components.assist_pipeline.vad import VadSensitivity, VoiceCommandSegmenter

from tests.helpers import english_commands, load_wav, silence
from wyoming_flux.cli.client import speech_end

NAMES = english_commands()


def ha_vad_close(pcm: bytes, sensitivity: str) -> float:
    """Audio seconds at which HA's segmenter ends the command."""
    enhancer = MicroVadSpeexEnhancer(0, 0, True)
    segmenter = VoiceCommandSegmenter(silence_seconds=VadSensitivity.to_seconds(sensitivity))
    for i in range(len(pcm) // 320):
        probability = enhancer.enhance_chunk(pcm[i * 320 : (i + 1) * 320], i * 10).speech_probability
        if not segmenter.process(0.01, probability):
            return (i + 1) * 0.01
    return len(pcm) / 32000


async def ours(port: int, pcm: bytes) -> float:
    outcome = await command(port, pcm, pace=1.0)
    return outcome.answered - outcome.started  # real time = audio time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pipeline", action="store_true", help="also run the real Home Assistant pipeline check")
    args = parser.parse_args()
    rows = []
    with processes("--warm-connections", "1") as (_, port):
        for name in NAMES:
            pcm = load_wav(name) + silence(5)
            end = speech_end(load_wav(name), 16000, 2, 1)
            ha = {s: ha_vad_close(pcm, s) - end for s in ("aggressive", "default", "relaxed")}
            flux = asyncio.run(ours(port, pcm)) - end
            rows.append({"fixture": name, "speech_end_s": end, "ha_vad_s": ha, "ours_s": flux,
                         "saving_ms": (ha["default"] - flux) * 1000})
    print(f"{'fixture':34} {'HA VAD (aggr/def/relaxed)':>28} {'ours':>7} {'saving vs default':>18}")
    for row in rows:
        ha = row["ha_vad_s"]
        print(f"{row['fixture']:34} {ha['aggressive']:8.2f} {ha['default']:8.2f} {ha['relaxed']:8.2f} s "
              f"{row['ours_s']:6.2f} s {row['saving_ms']:12.0f} ms")
    savings = sorted(r["saving_ms"] for r in rows)
    print(f"saving vs HA's default VAD: min {savings[0]:.0f} ms, median {savings[len(savings) // 2]:.0f} ms")
    save("vad_vs_flux", {"cpu": cpu_model(), "rows": rows})
    if args.pipeline:
        sys.exit(subprocess.call([sys.executable, "-m", "pytest", str(ROOT / "bench" / "pipeline_check.py"),
                                  "-q", "-s", "-p", "no:cacheprovider", "--rootdir", str(ROOT)], cwd=ROOT))


if __name__ == "__main__":
    main()
