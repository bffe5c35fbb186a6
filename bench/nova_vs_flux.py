"""Nova-3 against Flux, through the server, in one run against one fake Deepgram process:

- end of speech -> Transcript, per English speech fixture streamed in real time (+ 3 s of silence): the Flux path
  (EndOfTurn), the Nova-3 path with the default endpointing (speech_final), and `--end-of-speech client`
  (Home Assistant's own VAD at its default sensitivity decides, then AudioStop; the server finalizes on Flux);
- server CPU per second of audio, Flux path against Nova-3 path (real-time streams, the fake never ending a
  command by itself, so both stream the whole time).

Figures are ratios (Nova-3 / Flux, client / Flux) with their spread over fixtures and rounds. The fake ends a
Flux turn 0.26 s after speech (Flux's published ~260 ms) and a Nova-3 command after the requested endpointing:
what differs between the paths is the end-of-command rule and our code, not Deepgram's servers.

    .venv/bin/python bench/nova_vs_flux.py [--rounds 2] [--streams 10] [--seconds 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from contextlib import ExitStack, contextmanager
from collections.abc import Iterator

from common import API_KEY, ROOT, command, cpu_model, cpu_seconds, free_port, save, wait_port
from cpu_memory import speech
from vad_vs_flux import ha_vad_close

from tests.helpers import english_commands, load_wav, silence
from wyoming_flux.cli.client import speech_end

NAMES = english_commands()
PAUSED = ["set_a_timer_pause"]  # a 0.4 s pause mid-command: reported apart
MODES = {"flux": ("--model", "flux-general-en"), "nova": ("--model", "nova-3"),
         "client": ("--model", "flux-general-en", "--end-of-speech", "client")}


@contextmanager
def fake(*args: str) -> Iterator[int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.fake_flux", "--port", str(port), "--api-key", API_KEY, *args],
                            env=env, stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def server(fake_port: int, *args: str) -> Iterator[tuple[int, int]]:
    """A wyoming-flux server process on the fake; yields (its port, its pid)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "wyoming_flux", "--uri", f"tcp://127.0.0.1:{port}", "--api-key",
                             API_KEY, "--flux-url", f"ws://127.0.0.1:{fake_port}", *args], env=env,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


async def end_to_answer(port: int, name: str, mode: str) -> float:
    """Seconds from the end of speech to the Transcript."""
    speech_pcm = load_wav(name)
    end = speech_end(speech_pcm, 16000, 2, 1)
    pcm = speech_pcm + silence(3)
    if mode == "client":  # the satellite streams until Home Assistant's VAD closes the command, then AudioStop
        pcm = pcm[: int(ha_vad_close(pcm, "default") * 16000) * 2]
    outcome = await command(port, pcm, pace=1.0)
    return outcome.answered - outcome.started - end


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    return f"median {ordered[len(ordered) // 2]:.2f} (min {ordered[0]:.2f}, max {ordered[-1]:.2f}, n={len(ordered)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, object] = {"cpu": cpu_model()}
    with ExitStack() as stack:
        fake_port = stack.enter_context(fake())
        ports = {mode: stack.enter_context(server(fake_port, *flags))[0] for mode, flags in MODES.items()}
        latency: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(args.rounds):
            for name in NAMES:
                for mode in MODES:  # interleaved: the machine's load falls on every mode alike
                    latency[mode].append(asyncio.run(end_to_answer(ports[mode], name, mode)))
        for mode, values in latency.items():
            print(f"end of speech -> Transcript, {mode:6}: {spread([v * 1000 for v in values])} ms", flush=True)
        for mode in ("nova", "client"):
            ratios = [a / b for a, b in zip(latency[mode], latency["flux"])]
            print(f"  {mode} / flux, per command: {spread(ratios)}")
        results["end_of_speech_to_transcript_ms"] = {m: [v * 1000 for v in vs] for m, vs in latency.items()}
        results["fixtures"] = NAMES
        # A negative figure: the command was answered before its speech ended, i.e. cut at the pause.
        paused = {f"{name}/{mode}": asyncio.run(end_to_answer(ports[mode], name, mode)) * 1000
                  for name in PAUSED for mode in MODES}
        for key, ms in paused.items():
            print(f"paused command {key}: answered {ms:.0f} ms after its speech ended"
                  + (" (cut at the pause)" if ms < 0 else ""))
        results["paused_ms"] = paused
    # CPU: a fake that never ends a command, so both paths stream the whole audio
    with ExitStack() as stack:
        fake_port = stack.enter_context(fake("--no-eot"))
        servers = {mode: stack.enter_context(server(fake_port, *MODES[mode])) for mode in ("flux", "nova")}
        from cpu_memory import cpu_run

        for port, _ in servers.values():
            asyncio.run(command(port, speech(2), pace=None))  # warm-up: imports, first allocations
        cpu: dict[str, list[float]] = {"flux": [], "nova": []}
        for _ in range(args.repeat):
            for mode, (port, pid) in servers.items():
                cpu[mode].append(asyncio.run(cpu_run(port, pid, args.streams, args.seconds, False)))
        for mode, values in cpu.items():
            print(f"CPU per second of audio, {mode}: {spread(values)} ms ({args.streams} real-time streams x "
                  f"{args.seconds:.0f} s)")
        print(f"  nova / flux, per round: {spread([n / f for n, f in zip(cpu['nova'], cpu['flux'])])}")
        results["cpu_ms_per_audio_s"] = cpu
    print(f"results: {save('nova_vs_flux', results)}")


if __name__ == "__main__":
    main()
