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
from wyoming_flux.server.protocol.limits import ConnectionLimits
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.turn.session import SessionConfig

ROOT = Path(__file__).parents[2]
KITCHEN = "turn_on_the_kitchen_light"


async def test_check_passes_on_a_server_and_fails_on_nothing(wyoming_server: WyomingServer, fake_flux: FakeFlux,
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
    wyoming_server: WyomingServer, capsys: pytest.CaptureFixture[str], fast: bool
) -> None:
    code = await transcribe(str(FIXTURES / f"{KITCHEN}.wav"), f"tcp://127.0.0.1:{wyoming_server.port}",
                            fast=fast, language="en-US", model=None)
    out, err = capsys.readouterr()
    assert code == 0
    assert out.strip() == fixture_text(KITCHEN)
    assert "time to first partial:" in err and " to flux-general-en\n" in err  # which model answered
    if not fast:  # real time: the transcript comes a Flux end-of-turn after the speech, well before the file ends
        closing = float(err.split("end of speech -> transcript: ")[1].split(" ms")[0])
        assert 0 < closing < 800
    else:  # the speech's end was sent long before it would be spoken: no figure that means nothing
        assert "end of speech" not in err.replace("no end-of-speech timing", "")
        assert "transcript after " in err and "--fast" in err


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
    wyoming_server: WyomingServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
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
async def refusing(session_config: SessionConfig, **changes: object) -> AsyncIterator[WyomingServer]:
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


async def test_silence_is_said_to_be_no_speech_not_a_blank_line(wyoming_server: WyomingServer, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "silence.wav"
    write_wav(path, silence(1.5), 16000, 2, 1, False)
    code = await transcribe(str(path), f"tcp://127.0.0.1:{wyoming_server.port}", fast=True, language=None, model=None)
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert "no speech recognized" in err and "audio 1.50 s (no speech found), sent 1.50 s" in err
    assert "end of speech" not in err and "speech ends" not in err  # no made-up figure, no "- :"


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


async def test_transcribe_names_the_model_and_refuses_one_the_server_does_not_offer(
    wyoming_server: WyomingServer, capsys: pytest.CaptureFixture[str],
) -> None:
    uri = f"tcp://127.0.0.1:{wyoming_server.port}"  # offers flux-general-en and flux-general-multi
    wav = str(FIXTURES / f"{KITCHEN}.wav")
    assert await transcribe(wav, uri, fast=True, language="de", model=None) == 0
    assert " to flux-general-multi\n" in capsys.readouterr().err  # the language picked it
    for model in ("bogus", "nova-3"):  # unknown, and a real model this server does not offer
        assert await transcribe(wav, uri, fast=True, language=None, model=model) == 2
        out, err = capsys.readouterr()
        assert out == "" and err == (f"wyoming-flux transcribe: error: --model {model}: {uri} offers "
                                     "flux-general-en, flux-general-multi\n")


async def test_an_unreachable_server_is_said_in_words_by_both_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers import free_port

    uri = f"tcp://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    assert await transcribe(str(FIXTURES / f"{KITCHEN}.wav"), uri, fast=True, language=None, model=None) == 1
    assert await check(uri, 5.0) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"wyoming-flux transcribe: {uri} is not answering: connection refused",
                     f"wyoming-flux check: {uri} is not answering: connection refused"]


async def test_a_wav_cut_short_is_sent_with_a_warning(wyoming_server: WyomingServer, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    whole = tmp_path / "whole.wav"
    write_wav(whole, load_wav(KITCHEN), 16000, 2, 1, False)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: 44 + 32000 * 2])  # 2 s of the 2.68 s the header announces
    code = await transcribe(str(cut), f"tcp://127.0.0.1:{wyoming_server.port}", fast=True, language=None,
                            model=None)
    err = capsys.readouterr().err
    assert code == 0
    assert err.splitlines()[0] == (f"wyoming-flux transcribe: warning: {cut} is cut short: its header announces "
                                   "2.68 s of audio, the file holds 2.00 s; sending what is there")
    assert "audio 2.00 s" in err


def test_a_streaming_writers_unknown_data_size_is_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "streamed.wav"
    write_wav(path, load_wav(KITCHEN), 16000, 2, 1, False)
    data = bytearray(path.read_bytes())
    data[40:44] = struct.pack("<I", 0xFFFFFFFF)  # as ffmpeg writes to a pipe: the length was not known
    path.write_bytes(bytes(data))
    recording = read_wav(str(path))
    assert recording.warning is None and len(recording.pcm) == len(load_wav(KITCHEN))


def _run_transcribe(*argv: str, timeout: float = 60) -> tuple[int, str]:
    """The installed command in a process of its own: (exit code, stderr). A file that made it hang fails this
    test, not the test run."""
    import subprocess

    command = str(Path(sys.executable).parent / "wyoming-flux")
    try:
        done = subprocess.run([command, "transcribe", *argv, "--uri", "tcp://127.0.0.1:9"], capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"transcribe {argv} did not end within {timeout} s")
    return done.returncode, done.stderr


@pytest.mark.parametrize("kind", ["device", "fifo", "directory"])
def test_a_file_that_is_not_a_regular_file_is_refused_in_one_line(tmp_path: Path, kind: str) -> None:
    if kind == "device":
        path, said = Path("/dev/zero"), "/dev/zero is a device, not a WAV file"
    elif kind == "fifo":
        path, said = tmp_path / "command.wav", "is a FIFO, not a WAV file"
        os.mkfifo(path)  # nobody writes to it: reading it would wait forever
    else:
        path, said = tmp_path, "is a directory, not a WAV file"
    code, err = _run_transcribe(str(path))
    assert code == 1 and err.count("\n") == 1 and said in err and "Traceback" not in err, err


def _sparse_wav(path: Path, seconds: float, rate: int, width: int, channels: int) -> None:
    """A WAV header announcing `seconds` of audio, and a file that long without the disk space (sparse)."""
    block = width * channels
    size = int(seconds * rate) * block
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, 8 * width)
    header = b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
    with path.open("wb") as out:
        out.write(header + b"data" + struct.pack("<I", size))
        out.truncate(44 + size)


@pytest.mark.parametrize(("seconds", "rate", "width", "channels", "said"), [
    (3600, 16000, 2, 1, "holds 3600 s of audio; a command is at most 300 s"),  # 115 MB, an hour
    (60, 96000, 4, 8, "holds 176 MiB of audio, more than the 64 MiB a command may be"),
])
def test_a_file_longer_than_a_command_is_refused_without_reading_it(
    tmp_path: Path, seconds: float, rate: int, width: int, channels: int, said: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import tracemalloc

    from wyoming_flux.cli.client import main as client_main
    from wyoming_flux.cli.wav import WavError

    path = tmp_path / "long.wav"
    _sparse_wav(path, seconds, rate, width, channels)
    tracemalloc.start()
    try:
        with pytest.raises(WavError, match=said):
            read_wav(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes"  # the header, not the audio
    assert client_main("transcribe", [str(path), "--uri", "tcp://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err
