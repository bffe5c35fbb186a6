"""The server as users run it — the installed `wyoming-flux` command in a venv of its own, with the `server`
extra — and each supported Home Assistant's own Wyoming client in front of it. On Home Assistant 2026.5-2026.9
(wyoming 1.7.2 in Home Assistant's environment) the client uploads the whole stream, its own VAD having ended
the command, and only then reads: the server must still answer it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from homeassistant.components import stt
from homeassistant.core import HomeAssistant

from tests.conftest import API_KEY
from tests.fake_flux import FakeFlux
from tests.ha.test_wyoming_integration import metadata, setup_wyoming
from tests.helpers import PacedStream, fixture_text, free_port, load_wav, silence

ROOT = Path(__file__).parents[2]
KITCHEN = "turn_on_the_kitchen_light"
POLISH = "pl_wlacz_swiatlo_w_kuchni"


def _uv() -> str:
    here = Path(sys.executable).parent / "uv"  # Home Assistant depends on uv
    return str(here) if here.exists() else str(shutil.which("uv"))


@pytest.fixture(scope="module")
def server_command(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`wyoming-flux` installed from this checkout with the server extra, in its own venv (not Home Assistant's)."""
    venv = tmp_path_factory.mktemp("server") / "venv"
    subprocess.run([_uv(), "venv", "-q", "-p", sys.executable, str(venv)], check=True)
    subprocess.run([_uv(), "pip", "install", "-q", "-p", str(venv / "bin" / "python"), f"{ROOT}[server]"],
                   check=True)
    return venv / "bin" / "wyoming-flux"


class Server:
    def __init__(self, port: int) -> None:
        self.port = port


@pytest.fixture
async def server_process(server_command: Path, fake_flux: FakeFlux, tmp_path: Path) -> AsyncIterator[Server]:
    key = tmp_path / "deepgram.key"
    key.write_text(API_KEY)
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(server_command), "--uri", f"tcp://127.0.0.1:{port}", "--api-key-file", str(key),
        "--flux-url", fake_flux.url, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                break
            except OSError:
                await asyncio.sleep(0.05)
        yield Server(port)
    finally:
        process.terminate()
        _, err = await asyncio.wait_for(process.communicate(), 10)
        assert b"Traceback" not in err and API_KEY.encode() not in err


async def test_this_home_assistants_wyoming_client_gets_the_text(
    hass: HomeAssistant, ha_core: HomeAssistant, server_process: Server, fake_flux: FakeFlux
) -> None:
    entity = await setup_wyoming(hass, server_process)  # type: ignore[arg-type]
    stream = PacedStream(load_wav(KITCHEN) + silence(1.5), pace=4.0)
    result = await asyncio.wait_for(entity.internal_async_process_audio_stream(metadata(), aiter(stream)), 30)
    assert result.result is stt.SpeechResultState.SUCCESS
    assert result.text == fixture_text(KITCHEN)
    assert fake_flux.streams and fake_flux.streams[0].query["model"] == ["flux-general-en"]


async def test_a_polish_command_through_home_assistants_wyoming_client_reaches_nova(
    hass: HomeAssistant, ha_core: HomeAssistant, server_process: Server, fake_flux: FakeFlux
) -> None:
    """The server's defaults (Flux English, Nova-3 for the rest): Home Assistant offers Polish from our Info, and a
    Polish command goes to /v1/listen with model=nova-3 and is answered on Deepgram's endpointing."""
    entity = await setup_wyoming(hass, server_process)  # type: ignore[arg-type]
    assert {"en-US", "pl", "pl-PL", "sv"} <= set(entity.supported_languages)
    fake_flux.script.transcripts = [fixture_text(POLISH)]
    stream = PacedStream(load_wav(POLISH) + silence(2), pace=4.0)
    result = await asyncio.wait_for(entity.internal_async_process_audio_stream(metadata("pl-PL"), aiter(stream)), 30)
    assert (result.result, result.text) == (stt.SpeechResultState.SUCCESS, fixture_text(POLISH))
    assert (fake_flux.streams[0].query["model"], fake_flux.streams[0].query["language"]) == (["nova-3"], ["pl"])
    assert any(m.get("speech_final") for m in fake_flux.streams[0].sent)

