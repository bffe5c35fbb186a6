"""`wyoming-flux check` and `wyoming-flux transcribe` against a running server, and zeroconf discovery."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import struct
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from wyoming.audio import AudioStart
from wyoming.info import Describe

from tests.conftest import start_server
from tests.fake_flux import FakeFlux
from tests.helpers import FIXTURES, fixture_text, load_wav, silence
from tests.wyoming_io import Raw, audio_events, until
from wyoming_flux.cli.client import check, read_wav, transcribe
from wyoming_flux.server.limits import ConnectionLimits
from wyoming_flux.server.server import FluxServer
from wyoming_flux.turn.session import SessionConfig

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


def write_wav(path: Path, mono16: bytes, rate: int, width: int, channels: int, extensible: bool) -> None:
    """A WAV file as recorders and sox write it: WAVE_FORMAT_EXTENSIBLE for more than 16 bits or 2 channels."""
    samples = np.frombuffer(mono16, dtype="<i2").astype(np.int32)
    if width == 1:
        frames = ((samples >> 8) + 128).astype(np.uint8).tobytes()  # 8-bit PCM is unsigned
    elif width == 2:
        frames = samples.astype("<i2").tobytes()
    elif width == 3:
        frames = (samples << 8).astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        frames = (samples << 16).astype("<i4").tobytes()
    sample_bytes = len(frames) // len(samples)
    pcm = b"".join(frames[i:i + sample_bytes] * channels for i in range(0, len(frames), sample_bytes))
    block = width * channels
    if extensible:
        guid = struct.pack("<H", 1) + bytes.fromhex("000000001000800000aa00389b71")
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, 8 * width, 22, 8 * width, 0) + guid
    else:
        fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, 8 * width)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


@pytest.mark.parametrize(("width", "channels", "extensible"), [
    (1, 1, False), (2, 1, True), (3, 1, True), (4, 1, True), (3, 2, True), (2, 6, True), (4, 3, False),
])
def test_every_wav_is_read_and_its_speech_end_found(tmp_path: Path, width: int, channels: int, extensible: bool) -> None:
    path = tmp_path / "command.wav"
    write_wav(path, load_wav(KITCHEN), 16000, width, channels, extensible)
    recording = read_wav(str(path))
    assert (recording.rate, recording.width, recording.channels) == (16000, width, channels)
    assert len(recording.pcm) == len(load_wav(KITCHEN)) // 2 * width * channels
    assert 1.7 < recording.speech_end < 1.95  # as for the 16-bit original, not the file's end (2.68 s)


async def test_transcribe_sends_a_24_bit_stereo_extensible_wav(
    wyoming_server: FluxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "command.wav"
    write_wav(path, load_wav(KITCHEN), 16000, 3, 2, True)
    code = await transcribe(str(path), f"tcp://127.0.0.1:{wyoming_server.port}", fast=True, language=None, model=None)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == fixture_text(KITCHEN)
    assert "speech ends at 1.8" in err or "speech ends at 1.7" in err or "speech ends at 1.9" in err


def test_a_file_that_is_not_wav_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wyoming_flux.cli.client import main as client_main

    path = tmp_path / "command.wav"
    path.write_bytes(b"OggS" + bytes(100))
    assert client_main("transcribe", [str(path), "--uri", "tcp://127.0.0.1:9"]) == 1
    text = capsys.readouterr().err.strip()
    assert text == f"wyoming-flux transcribe: {path} is not a WAV file (no RIFF/WAVE header)"


@contextlib.asynccontextmanager
async def refusing(session_config: SessionConfig, **changes: object) -> AsyncIterator[FluxServer]:
    server = await start_server(session_config, **changes)
    try:
        yield server
    finally:
        await server.stop()


async def test_a_refused_client_sees_why_and_the_log_names_it(
    session_config: SessionConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    wav = tmp_path / "command.wav"
    write_wav(wav, load_wav(KITCHEN), 16000, 2, 1, False)
    async with refusing(session_config, allow=(ipaddress.ip_network("10.0.0.0/8"),)) as server:
        uri = f"tcp://127.0.0.1:{server.port}"
        for _ in range(3):  # not a race: every time
            assert await check(uri, 5.0) == 1
            assert "refused: error (client-not-allowed)" in capsys.readouterr().err
            assert await transcribe(str(wav), uri, fast=True, language=None, model=None) == 1
            assert "error (client-not-allowed): This client is not allowed" in capsys.readouterr().err
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Refused")]
    assert refusals == ["Refused a connection from 127.0.0.1: not in --allow"]  # rate-limited as before
    assert "5 more refused connections in the last minute" in caplog.text  # said at shutdown


async def test_a_full_or_busy_server_is_said_by_the_client_commands(
    session_config: SessionConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    wav = tmp_path / "command.wav"
    write_wav(wav, load_wav(KITCHEN), 16000, 2, 1, False)
    limits = ConnectionLimits(max_connections=1)
    async with refusing(session_config, limits=limits) as server:
        uri = f"tcp://127.0.0.1:{server.port}"
        holder = await Raw.open(server)
        await holder.send(Describe().event())
        assert await holder.read() is not None
        try:
            assert await check(uri, 5.0) == 1
            assert "refused: error (server-full)" in capsys.readouterr().err
            assert await transcribe(str(wav), uri, fast=True, language=None, model=None) == 1
            assert "error (server-full)" in capsys.readouterr().err
        finally:
            await holder.close()
    async with refusing(session_config, max_sessions=1) as server:
        uri = f"tcp://127.0.0.1:{server.port}"
        holder = await Raw.open(server)
        await holder.send(AudioStart(rate=16000, width=2, channels=1).event(), *audio_events(silence(0.2)))
        await until(lambda: server.gate.active == 1)
        try:
            assert await transcribe(str(wav), uri, fast=True, language=None, model=None) == 1
            assert "error (server-busy)" in capsys.readouterr().err
        finally:
            await holder.close()


async def test_a_refused_command_is_logged_in_words(session_config: SessionConfig, caplog: pytest.LogCaptureFixture) -> None:
    async with refusing(session_config, max_sessions=1) as server:
        holder, second = await Raw.open(server), await Raw.open(server)
        try:
            await holder.send(AudioStart(rate=16000, width=2, channels=1).event())
            await until(lambda: server.gate.active == 1)
            await second.send(AudioStart(rate=16000, width=2, channels=1).event())
            assert (event := await second.read()) is not None and event.type == "error"
        finally:
            await holder.close()
            await second.close()
    assert "Refused a command: 1 command is already running (--max-sessions)" in caplog.text


async def test_silence_is_said_to_be_no_speech_not_a_blank_line(wyoming_server: FluxServer, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "silence.wav"
    write_wav(path, silence(1.5), 16000, 2, 1, False)
    code = await transcribe(str(path), f"tcp://127.0.0.1:{wyoming_server.port}", fast=True, language=None, model=None)
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert "no speech recognized" in err and "speech ends at - : no speech found" in err
    assert "end of speech -> transcript: -" in err  # no made-up figure


def test_a_wav_without_audio_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wyoming_flux.cli.main import main

    import wave

    path = tmp_path / "empty.wav"
    with wave.open(str(path), "wb") as out:  # a header and an empty data chunk
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
    assert main(["transcribe", str(path), "--uri", "tcp://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"wyoming-flux transcribe: {path} holds no audio (its data chunk is empty)"


@pytest.mark.parametrize(("uri", "message"), [
    ("127.0.0.1:10300", "--uri must be tcp://HOST:PORT or unix://PATH, not 127.0.0.1:10300"),
    ("stdio://", "--uri stdio:// is not supported"),
    ("tcp://127.0.0.1", "--uri tcp://127.0.0.1 needs a host and a port"),
])
@pytest.mark.parametrize("command", ["check", "transcribe"])
def test_a_uri_no_server_can_have_is_one_line(command: str, uri: str, message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from wyoming_flux.cli.main import main

    argv = [command, "--uri", uri] + ([str(FIXTURES / f"{KITCHEN}.wav")] if command == "transcribe" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "stdio://', 'unix://'" not in err, err


async def test_a_server_that_never_answers_is_said_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    held: list[asyncio.StreamWriter] = []  # referenced, or a newer Python collects and closes them
    silent = await asyncio.start_server(lambda r, w: held.append(w), "127.0.0.1", 0)
    try:
        port = silent.sockets[0].getsockname()[1]
        assert await check(f"tcp://127.0.0.1:{port}", 0.5) == 1
    finally:
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()
    assert capsys.readouterr().err.strip() == f"wyoming-flux check: tcp://127.0.0.1:{port} is not answering: no " \
                                              "answer within 0.5 s"
