"""Early answers through the Wyoming server, against early answers off, in one run:

- a real Home Assistant (`python -m homeassistant` on loopback, the browser test's harness: `conversation`,
  `intent`, a template light "Kitchen light") is the recogniser, asked over the server's names connection;
- one fake Deepgram (in this process) with a late turn model: EagerEndOfTurn 0.2 s and EndOfTurn 0.8 s after
  speech ends (Nova-3: the requested endpointing);
- four server processes on them: Flux and Nova-3, each with early answers on (defaults) and off
  (`--no-early-answer`); every fixture goes through all four in turn, streamed in real time + 3 s of silence.

Figures: Flux, Transcript after the fake's EagerEndOfTurn; both APIs, Transcript after the end of speech, per
command against the same command with early answers off (ratio), with the spread. Round 1 asks Home Assistant
(each server's cache is empty); later rounds are answered from the cache, and are reported apart. The paused
fixtures (a 0.4 s mid-command pause) count cut commands: text shorter than the whole command.

    .venv/bin/python bench/eager.py [--rounds 3]

Home Assistant loads its frontend (and with it `cloud`) whatever the configuration says: install what the
browser test installs into `.venv` first (`script/test --only browser` does, or `uv pip install -p
.venv/bin/python home-assistant-frontend PyTurboJPEG` at the versions Home Assistant pins).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from common import API_KEY, command, cpu_model, free_port, read_timing_log, save
from nova_vs_flux import server

from tests.browser.harness import KITCHEN_LIGHT, HomeAssistant
from tests.fake_flux import FakeFlux, Script
from tests.helpers import english_commands, fixture_text, load_wav, silence
from wyoming_flux.cli.client import speech_end

EAGER_SILENCE, EOT_SILENCE = 0.2, 0.8
PAUSED = {"set_a_timer_pause": ("en", "set a timer | for five minutes"),
          "pl_ustaw_minutnik_pauza": ("pl", "ustaw minutnik | na dziesięć minut")}
SERVERS = {"flux": ("--model", "flux-general-en"), "flux-off": ("--model", "flux-general-en", "--no-early-answer"),
           "nova": ("--model", "nova-3"), "nova-off": ("--model", "nova-3", "--no-early-answer")}
CONFIGURATION = """\
homeassistant:
  name: Home
  country: US
  language: en
  unit_system: metric
  time_zone: UTC
http:
  server_host: 127.0.0.1
  server_port: {port}
onboarding:
config:
conversation:
intent:
{kitchen_light}logger:
  default: warning
"""


class Assist(HomeAssistant):
    """The browser test's Home Assistant process, with only what the recogniser needs and a light to name."""

    def write_config(self) -> None:
        super().write_config()
        (self.config_dir / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port,
                                                                                kitchen_light=KITCHEN_LIGHT))


@contextmanager
def home_assistant() -> Iterator[tuple[Assist, str, dict[str, list[bool | None]]]]:
    """A started, onboarded Home Assistant; yields it, a long-lived token, and what its recogniser says of the
    fixtures (a warm-up: the first ask in a language loads its sentences)."""
    with tempfile.TemporaryDirectory(prefix="eager-ha-") as config:
        ha = Assist(Path(config), ready_path="/api/onboarding")
        ha.write_config()
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(ha.start())
            loop.run_until_complete(ha.onboard())
            (token,) = loop.run_until_complete(ha.ws({"type": "auth/long_lived_access_token",
                                                      "client_name": "bench", "lifespan": 1}))
            said = loop.run_until_complete(recognised(ha))
            yield ha, token, said
        finally:
            loop.run_until_complete(ha.stop())
            loop.close()


async def recognised(ha: HomeAssistant) -> dict[str, list[bool | None]]:
    """The recogniser's verdict on each fixture's words, and on the paused ones' first part."""
    asks = {name: ("en", [fixture_text(name)]) for name in english_commands()}
    asks |= {name: (language, [text.split(" | ")[0], text.replace(" | ", " ")])
             for name, (language, text) in PAUSED.items()}
    said: dict[str, list[bool | None]] = {}
    for _ in range(120):  # Home Assistant listens before every integration is set up: wait for `conversation`
        try:
            await ha.ws({"type": "conversation/agent/homeassistant/debug", "sentences": ["what time is it"]})
            break
        except AssertionError:
            await asyncio.sleep(0.5)
    for name, (language, sentences) in asks.items():
        (result,) = await ha.ws({"type": "conversation/agent/homeassistant/debug", "sentences": sentences,
                                 "language": language})
        said[name] = [None if r is None else bool(r.get("match")) for r in result["results"]]
    return said


@contextmanager
def fake_deepgram(timing_log: Path) -> Iterator[tuple[FakeFlux, int]]:
    """The fake in a thread of this process, so each command's words can be set before it runs."""
    script = Script(eager_silence=EAGER_SILENCE, eot_silence=EOT_SILENCE, timing_log=str(timing_log))
    fake = FakeFlux(API_KEY, script)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: asyncio.Event | None = None

    async def run() -> None:
        nonlocal stop
        stop = asyncio.Event()
        await fake.start(port=free_port())
        started.set()
        await stop.wait()
        await fake.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    started.wait(15)
    try:
        yield fake, fake.port
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)


def spread(values: list[float]) -> str:
    if not values:
        return "n=0"
    ordered = sorted(values)
    return f"median {ordered[len(ordered) // 2]:.2f} (min {ordered[0]:.2f}, max {ordered[-1]:.2f}, n={len(ordered)})"


class Run:
    """Commands through the servers, timed against the end of speech and the fake's EagerEndOfTurn."""

    def __init__(self, fake: FakeFlux, ports: dict[str, int], timing_log: Path) -> None:
        self.fake, self.ports, self.timing_log = fake, ports, timing_log
        self.count = 0

    def one(self, mode: str, name: str, language: str, words: str) -> dict[str, object]:
        self.fake.script.transcripts = [words]
        self.count += 1
        tag = f"bench-{self.count}"
        speech = load_wav(name)
        end = speech_end(speech, 16000, 2, 1)
        outcome = asyncio.run(command(self.ports[mode], speech + silence(3), pace=1.0, tag=tag, language=language))
        eager = read_timing_log(self.timing_log).get((tag, "eager_end_of_turn"))
        return {"fixture": name, "mode": mode, "text": outcome.text,
                "after_speech_ms": (outcome.answered - outcome.started - end) * 1000,
                "after_eager_ms": (outcome.answered - float(eager["t"])) * 1000 if eager else None}  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, object] = {"cpu": cpu_model(), "eager_silence_s": EAGER_SILENCE, "eot_silence_s": EOT_SILENCE}
    names = english_commands()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        ha, token, said = stack.enter_context(home_assistant())
        print("recogniser: a real Home Assistant process (python -m homeassistant), its default agent")
        for name, verdicts in said.items():
            print(f"  {name}: {verdicts} (True: complete; False/None: not a complete command)")
        results["recogniser"] = {"kind": "home-assistant", "verdicts": said}
        timing_log = Path(tmp) / "timing.jsonl"
        fake, fake_port = stack.enter_context(fake_deepgram(timing_log))
        os.environ["HASS_TOKEN"] = token  # the servers' token (never a flag: ps shows flags)
        ports = {mode: stack.enter_context(server(fake_port, "--hass-url", ha.url, *flags))[0]
                 for mode, flags in SERVERS.items()}
        time.sleep(2.0)  # the servers connect to Home Assistant
        run = Run(fake, ports, timing_log)
        commands: list[dict[str, object]] = []
        for round_ in range(args.rounds):
            for name in names:
                for mode in SERVERS:  # interleaved: the machine's load falls on every mode alike
                    commands.append({"round": round_ + 1, **run.one(mode, name, "en", fixture_text(name))})
        paused = [run.one(mode, name, language, words) for name, (language, words) in PAUSED.items()
                  for mode in SERVERS if language == "en" or mode.startswith("nova")]
    results["commands"], results["paused"] = commands, paused
    complete = [name for name in names if said[name] == [True]]
    report: dict[str, object] = {}
    for label, rounds in (("asked", (1,)), ("cached", tuple(range(2, args.rounds + 1)))):
        def pick(mode: str, key: str, *, done: bool = True) -> list[float]:
            return [float(c[key]) for c in commands if c["mode"] == mode and c["round"] in rounds  # type: ignore[arg-type]
                    and (c["fixture"] in complete) == done and c[key] is not None]

        if not pick("flux", "after_eager_ms"):
            continue
        eager = pick("flux", "after_eager_ms")
        flux, flux_off = pick("flux", "after_speech_ms"), pick("flux-off", "after_speech_ms")
        nova, nova_off = pick("nova", "after_speech_ms"), pick("nova-off", "after_speech_ms")
        print(f"complete commands, round(s) {list(rounds)} ({label}):")
        print(f"  Flux, Transcript after the fake's EagerEndOfTurn: {spread(eager)} ms")
        print(f"  Flux, Transcript after end of speech: on {spread(flux)} ms; off {spread(flux_off)} ms")
        print(f"    on / off per command: {spread([a / b for a, b in zip(flux, flux_off)])}")
        print(f"  Nova-3, Transcript after end of speech: on {spread(nova)} ms; off {spread(nova_off)} ms")
        print(f"    on / off per command: {spread([a / b for a, b in zip(nova, nova_off)])}")
        others = {mode: pick(mode, "after_speech_ms", done=False) for mode in SERVERS}
        print("  not complete (as before): " + "; ".join(f"{m} {spread(v)} ms" for m, v in others.items()))
        report[label] = {"flux_after_eager_ms": eager, "flux_after_speech_ms": flux,
                         "flux_off_after_speech_ms": flux_off, "nova_after_speech_ms": nova,
                         "nova_off_after_speech_ms": nova_off, "not_complete_after_speech_ms": others}
    cut = [p for p in paused if p["text"] != fixture_text(str(p["fixture"]))]
    for p in paused:
        print(f"paused {p['fixture']} on {p['mode']}: {p['text']!r}, {float(p['after_speech_ms']):.0f} ms after speech"  # type: ignore[arg-type]
              + (" (CUT)" if p in cut else ""))
    print(f"cut commands on the paused fixtures: {len(cut)} of {len(paused)}")
    results["summary"], results["complete_fixtures"], results["cut"] = report, complete, len(cut)
    print(f"results: {save('eager', results)}")


if __name__ == "__main__":
    main()
