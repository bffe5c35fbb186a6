"""`wyoming-flux check` and `wyoming-flux transcribe` against a running server, and zeroconf discovery."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from tests.fake_flux import FakeFlux
from tests.helpers import FIXTURES, fixture_text
from wyoming_flux.cli.client import check, read_wav, transcribe
from wyoming_flux.server.server import FluxServer

ROOT = Path(__file__).parents[2]
KITCHEN = "turn_on_the_kitchen_light"


async def test_check_passes_on_a_server_and_fails_on_nothing(wyoming_server: FluxServer, fake_flux: FakeFlux,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert await check(f"tcp://127.0.0.1:{wyoming_server.port}", 5.0) == 0
    assert "ok: deepgram-flux" in capsys.readouterr().out
    assert await check("tcp://127.0.0.1:9", 2.0) == 1
    assert "is not answering" in capsys.readouterr().err
    assert fake_flux.handshakes == 0


def test_speech_end_is_found_in_the_wav() -> None:
    recording = read_wav(str(FIXTURES / f"{KITCHEN}.wav"))
    assert 1.7 < recording.speech_end < 1.95  # espeak speech runs from 0.5 s to about 1.84 s


@pytest.mark.parametrize("fast", [True, False])
async def test_transcribe_streams_a_wav_and_reports_timings(
    wyoming_server: FluxServer, capsys: pytest.CaptureFixture[str], fast: bool
) -> None:
    code = await transcribe(str(FIXTURES / f"{KITCHEN}.wav"), f"tcp://127.0.0.1:{wyoming_server.port}",
                            fast=fast, language="en-US", model=None)
    out, err = capsys.readouterr()
    assert code == 0
    assert out.strip() == fixture_text(KITCHEN)
    assert "time to first partial:" in err and "end of speech -> transcript:" in err
    if not fast:  # real time: the transcript comes a Flux end-of-turn after the speech, well before the file ends
        closing = float(err.split("end of speech -> transcript: ")[1].split(" ms")[0])
        assert 0 < closing < 800


async def test_zeroconf_discovery_in_a_private_network_namespace() -> None:
    """mDNS runs on the loopback of a namespace of our own: nothing leaves the machine."""
    setup = "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo"
    process = await asyncio.create_subprocess_exec(
        # As root a network namespace is enough; otherwise a user namespace maps us to root inside it.
        "unshare", *(["--net"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--net"]), "sh", "-c", f"{setup} && exec {sys.executable} {ROOT / 'tests' / 'zeroconf_probe.py'}",
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()[-2000:]
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["added"] == ["probe-flux._wyoming._tcp.local."]
    assert (seen["port"], seen["address"], seen["check"]) == (10555, "127.0.0.1", 0)
    assert seen["removed"] == ["probe-flux._wyoming._tcp.local."]  # withdrawn when the server stops
