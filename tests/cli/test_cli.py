"""The wyoming-flux command: configuration checks, and the real process serving a command."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

from tests.conftest import API_KEY
from tests.fake_flux import FakeFlux
from tests.helpers import chunks, fixture_text, free_port, load_wav, silence
from tests.wyoming_io import serve_with_a_port_taken
from wyoming_flux.cli.main import main

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--api-key", "k", "--eot-threshold", "1.5"], "--eot-threshold must be between 0.5 and 1.0, not 1.5"),
        (["--api-key", "k", "--eager-eot-threshold", "0.8", "--eot-threshold", "0.6"],
         "--eager-eot-threshold 0.8 must not exceed --eot-threshold 0.6"),
        (["--api-key", "k", "--eager-eot-threshold", "0.8"],
         "--eager-eot-threshold 0.8 must not exceed --eot-threshold (Flux's default, 0.7)"),
        (["--api-key", "k", "--eot-timeout-ms", "100"], "--eot-timeout-ms must be between 500 and 60000, not 100"),
        (["--api-key", "k", "--max-command-seconds", "0"], "--max-command-seconds must be between 5 and 300, not 0"),
        (["--api-key", "k", "--no-speech-timeout", "90"], "--no-speech-timeout must be between 1 and 60, not 90"),
        (["--api-key", "k", "--uri", "http://x"], "--uri must be"),
        (["--api-key", "k", "--flux-url", "https://x"], "--flux-url must be"),
        (["--api-key", "k", "--flux-url", "ws://[::1"], "not ws://[::1 (not a URL: invalid IPv6 URL)"),
        (["--api-key", "k", "--flux-url", "ws://"], "--flux-url must be global, us, eu, au, in or a ws:// or wss:// URL, "
                                                    "not ws:// (no host)"),
        (["--api-key", "k", "--flux-url", "wss://:0"], "not wss://:0 (no host)"),
        (["--api-key", "k", "--flux-url", "ws://h:abc/"], "(the port is not a number from 1 to 65535)"),
        (["--api-key", "k", "--flux-url", "ws://h:0/v2/listen"], "(the port is not a number from 1 to 65535)"),
        (["check", "--flux", "--api-key", "k", "--flux-url", "ws://[::1"], "--flux-url must be"),
        ([], "a Deepgram API key is required"),
        (["--api-key-file", "/nonexistent/key"], "cannot read --api-key-file"),
    ],
)
def test_bad_configuration_is_one_clear_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "environment", "message"),
    [
        ([], {"DEEPGRAM_API_KEY_FILE": "/x"}, "cannot read DEEPGRAM_API_KEY_FILE /x: No such file"),
        (["check", "--flux"], {"DEEPGRAM_API_KEY_FILE": "/x"}, "cannot read DEEPGRAM_API_KEY_FILE /x: No such file"),
        (["--api-key", "k"], {"WYOMING_FLUX_URI": "10300"},
         "WYOMING_FLUX_URI must be tcp://HOST:PORT or unix://PATH, not 10300"),
        (["--api-key", "k", "--eot-threshold", "0.6"], {"WYOMING_FLUX_EAGER_EOT_THRESHOLD": "0.8"},
         "WYOMING_FLUX_EAGER_EOT_THRESHOLD 0.8 must not exceed --eot-threshold 0.6"),
        (["--api-key", "k", "--eager-eot-threshold", "0.8"], {"WYOMING_FLUX_EOT_THRESHOLD": "0.6"},
         "--eager-eot-threshold 0.8 must not exceed WYOMING_FLUX_EOT_THRESHOLD 0.6"),
        (["--api-key", "k"], {"WYOMING_FLUX_URL": "ws://[::1"}, "WYOMING_FLUX_URL must be global, us, eu, au, in or a ws://"),
        (["check", "--flux", "--api-key", "k"], {"WYOMING_FLUX_URL": "ws://[::1"}, "WYOMING_FLUX_URL must be"),
        (["--api-key", "k", "--hass-url", "http://h:8123"], {"WYOMING_FLUX_HASS_TOKEN_FILE": "/x"},
         "cannot read WYOMING_FLUX_HASS_TOKEN_FILE /x: No such file"),
        (["check", "--hass-url", "http://h:8123"], {"WYOMING_FLUX_HASS_TOKEN_FILE": "/x"},
         "cannot read WYOMING_FLUX_HASS_TOKEN_FILE /x: No such file"),
        # given on the command line, the flag is named even though its variable is set too
        (["--api-key", "k", "--uri", "10300"], {"WYOMING_FLUX_URI": "10301"}, "--uri must be"),
    ],
)
def test_an_error_from_an_environment_variable_names_the_variable(
        argv: list[str], environment: dict[str, str], message: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err


def test_malformed_environment_value_is_one_clear_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WYOMING_FLUX_EOT_THRESHOLD", "high")
    assert main(["--api-key", "k"]) == 2
    assert capsys.readouterr().err.strip().startswith("wyoming-flux: error:")


async def test_the_server_process_serves_a_command_and_never_logs_the_key(fake_flux: FakeFlux, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(API_KEY + "\n")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WYOMING_FLUX_URL": fake_flux.url, "WYOMING_FLUX_DEBUG": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wyoming_flux", "--uri", f"tcp://127.0.0.1:{port}", "--api-key-file", str(key_file),
        "--model", "flux-general-en", "--model", "flux-general-multi",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        for _ in range(100):  # wait (bounded) for it to listen
            try:
                client = AsyncTcpClient("127.0.0.1", port)
                await client.connect()
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the server did not start")
        async with client:
            await client.write_event(Describe().event())
            info = Info.from_event(await client.read_event())  # type: ignore[arg-type]
            # Nova-3 joins for the languages the Flux models do not speak (--no-nova turns it off)
            assert [m.name for m in info.asr[0].models] == ["flux-general-en", "flux-general-multi", "nova-3"]
            assert len({lang.split("-")[0] for m in info.asr[0].models for lang in m.languages}) >= 40
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            for chunk in chunks(load_wav("turn_on_the_kitchen_light") + silence(1)):
                await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=chunk).event())
            await client.write_event(AudioStop().event())
            async with asyncio.timeout(5):
                while not Transcript.is_type((event := await client.read_event()).type):  # type: ignore[union-attr]
                    pass
            assert Transcript.from_event(event).text == fixture_text("turn_on_the_kitchen_light")  # type: ignore[arg-type]
    finally:
        process.terminate()
        output, _ = await asyncio.wait_for(process.communicate(), 10)
    log = output.decode()
    assert "Command done: model=flux-general-en" in log and "ended_by=end_of_turn(model)" in log
    assert API_KEY not in log


async def run_cli(*argv: str) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DEEPGRAM_API_KEY", None)
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "wyoming_flux", *argv, env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_check_flux_proves_the_key_against_flux_itself(fake_flux: FakeFlux) -> None:
    code, out, _ = await run_cli("check", "--flux", "--api-key", API_KEY, "--flux-url", fake_flux.url)
    assert code == 0 and out.startswith("ok: Flux accepts this key for flux-general-en")
    # both APIs the server would use, on the one host: /v2/listen, then /v1/listen for Nova-3
    assert "ok: Nova-3 accepts this key for nova-3 at " + fake_flux.nova_url in out
    assert [s.query["model"][0] for s in fake_flux.streams] == ["flux-general-en", "nova-3"]
    assert all(s.audio_bytes == 0 and s.closed for s in fake_flux.streams)  # handshakes only, no audio
    code, out, _ = await run_cli("check", "--flux", "--no-nova", "--api-key", API_KEY, "--flux-url",
                                 f"ws://127.0.0.1:{fake_flux.port}")  # a bare host: its /v2/listen
    assert code == 0 and "Nova-3" not in out and len(fake_flux.streams) == 3
    code, out, err = await run_cli("check", "--flux", "--api-key", "revoked-key", "--flux-url", fake_flux.url)
    assert code == 1 and "error (flux-auth): Deepgram rejected the API key (HTTP 401)" in err
    assert "revoked-key" not in out + err
    fake_flux.script.handshake_status = 402
    code, _, err = await run_cli("check", "--flux", "--api-key", API_KEY, "--flux-url", fake_flux.url)
    assert code == 1 and "error (flux-no-credit)" in err and "Traceback" not in err


async def test_check_flux_prints_the_languages_the_key_can_use_as_deepgram_lists_them(fake_flux: FakeFlux) -> None:
    fake_flux.script.extra_nova_languages = ("hy",)  # the live list, not the built-in table
    code, out, _ = await run_cli("check", "--flux", "--api-key", API_KEY, "--flux-url", fake_flux.url)
    assert code == 0, out
    nova = next(line for line in out.splitlines() if line.startswith("languages of nova-3 (Deepgram's list): "))
    codes = nova.split(": ", 1)[1].split(";")[0].split()
    assert {"he", "fa", "ur", "th", "gu", "kk", "zh-HK", "hy", "pl"} <= set(codes) and "multi" not in codes
    assert "through language=multi: af ar gl xh zu" in nova
    assert "languages of flux-general-multi (Deepgram's list): en es fr de hi ru pt ja it nl" in out
    fake_flux.script.models_endpoint = False
    code, out, _ = await run_cli("check", "--flux", "--api-key", API_KEY, "--flux-url", fake_flux.url)
    assert code == 0 and f"languages: http://127.0.0.1:{fake_flux.port}/v1/models gave no model list; the " \
        "built-in table stands" in out


async def test_check_flux_on_a_flux_only_host_says_nova_3_is_missing_not_flux(fake_flux: FakeFlux) -> None:
    fake_flux.script.nova_served = False
    code, out, err = await run_cli("check", "--flux", "--api-key", API_KEY, "--flux-url", fake_flux.url)
    assert code == 1 and out.startswith("ok: Flux accepts this key for flux-general-en")
    assert "this host serves Flux but not Nova-3" in err and "--no-nova" in err and "Traceback" not in err
    code, out, err = await run_cli("check", "--flux", "--no-nova", "--api-key", API_KEY, "--flux-url", fake_flux.url)
    assert code == 0 and "languages of nova-3: not listed" in out, err


@pytest.mark.parametrize(("value", "url"), [
    ("global", "wss://api.deepgram.com/v2/listen"), ("us", "wss://api.us.deepgram.com/v2/listen"),
    ("US", "wss://api.us.deepgram.com/v2/listen"), ("eu", "wss://api.eu.deepgram.com/v2/listen"),
    ("in", "wss://api.in.deepgram.com/v2/listen"),
])
def test_the_us_data_residency_host_is_a_region_beside_the_others(value: str, url: str) -> None:
    from wyoming_flux.cli.main import build_parser, settings_from_args

    settings = settings_from_args(build_parser().parse_args(["--api-key", "k", "--flux-url", value]))
    assert settings.session.url == url
    assert settings.session.nova_url == url.replace("/v2/", "/v1/")  # both APIs on the region's host
    default = settings_from_args(build_parser().parse_args(["--api-key", "k"]))
    assert default.session.url == "wss://api.deepgram.com/v2/listen"  # the global host stays the default


def test_a_region_that_does_not_exist_names_the_ones_that_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--api-key", "k", "--flux-url", "mars"]) == 2
    assert "--flux-url must be global, us, eu, au, in or a ws:// or wss:// URL, not mars" in capsys.readouterr().err


def test_privacy_tags_regions_and_warm_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from wyoming_flux.cli.main import build_parser, settings_from_args

    monkeypatch.delenv("WYOMING_FLUX_WARM_CONNECTIONS", raising=False)
    settings = settings_from_args(build_parser().parse_args(
        ["--api-key", "k", "--mip-opt-out", "--tag", "home", "--tag", "kitchen", "--flux-url", "au"]))
    assert settings.session.mip_opt_out and settings.session.tags == ("home", "kitchen")
    assert settings.session.url == "wss://api.au.deepgram.com/v2/listen"
    assert settings.warm_connections == 0 and settings.warm_window == 120
    always = settings_from_args(build_parser().parse_args(["--api-key", "k", "--warm-connections", "1",
                                                           "--warm-window", "0"]))
    assert always.warm_connections == 1 and always.warm_window is None


@pytest.mark.parametrize(("uri", "message"), [
    ("stdio://", "stdio:// is not supported"),
    ("tcp://:5000", "needs a host and a port"),
    ("tcp://127.0.0.1", "needs a host and a port"),
    ("tcp://127.0.0.1:99999", "tcp://HOST:PORT"),
    ("unix://", "needs a path"),
])
def test_uris_the_server_cannot_listen_on_are_one_clear_line(uri: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--api-key", "k", "--uri", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "Traceback" not in err


@pytest.mark.parametrize(("argv", "message"), [
    (["--idle-timeout", "0"], "--idle-timeout must be between 0.01 and 86400"),
    (["--max-connections", "0"], "--max-connections must be between 1 and 100000"),
    (["--max-queued-bytes", "10"], "--max-queued-bytes must be between 1024 and"),
    (["--read-window", "-0.01"], "--read-window must be between 0.0 and 1.0, not -0.01"),
    (["--read-window", "1e308"], "--read-window must be between 0.0 and 1.0, not 1e308"),
    (["--read-window", "inf"], "--read-window must be a finite number between 0.0 and 1.0, not inf"),
    (["--idle-timeout", "nan"], "--idle-timeout must be a finite number between 0.01 and 86400, not nan"),
])
def test_bad_connection_limits_are_one_clear_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["--api-key", "k", *argv]) == 2
    assert message in capsys.readouterr().err


def test_connection_limits_come_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from wyoming_flux.cli.main import build_parser, settings_from_args

    monkeypatch.setenv("WYOMING_FLUX_IDLE_TIMEOUT", "12.5")
    monkeypatch.setenv("WYOMING_FLUX_MAX_PAYLOAD_BYTES", "4096")
    monkeypatch.setenv("WYOMING_FLUX_READ_WINDOW", "0")
    limits = settings_from_args(build_parser().parse_args(["--api-key", "k", "--max-connections", "7"])).limits
    assert (limits.idle_timeout, limits.max_connections, limits.wire.payload_bytes) == (12.5, 7, 4096)
    assert limits.read_window == 0


async def _server_process(*argv: str, env: dict[str, str] | None = None) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wyoming_flux", "--uri", f"tcp://127.0.0.1:{port}", *argv,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return process, port
        except OSError:
            await asyncio.sleep(0.1)
    process.kill()
    await process.communicate()
    pytest.fail("the server did not start")


async def test_ctrl_c_stops_quietly_and_a_key_on_the_command_line_is_warned_about(fake_flux: FakeFlux) -> None:
    import signal

    process, _ = await _server_process("--api-key", API_KEY, "--flux-url", fake_flux.url,
                                       "--log-format", "LOG %(levelname)s %(message)s")
    process.send_signal(signal.SIGINT)
    output, _ = await asyncio.wait_for(process.communicate(), 15)
    log = output.decode()
    assert process.returncode == 0 and "Traceback" not in log
    assert "LOG WARNING --api-key on the command line can be read by other users" in log
    assert "--api-key-file" in log and API_KEY not in log


async def test_the_key_from_the_environment_is_not_warned_about(fake_flux: FakeFlux) -> None:
    process, _ = await _server_process("--flux-url", fake_flux.url, env={"DEEPGRAM_API_KEY": API_KEY})
    process.terminate()
    output, _ = await asyncio.wait_for(process.communicate(), 15)
    assert "--api-key on the command line" not in output.decode()


async def test_transcribe_against_a_port_that_is_not_wyoming_is_one_line(fake_flux: FakeFlux, tmp_path: Path) -> None:
    import wave

    wav = tmp_path / "a.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        out.writeframes(silence(0.2))

    async def not_wyoming(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_wyoming, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wyoming_flux", "transcribe", str(wav), "--uri", f"tcp://127.0.0.1:{port}",
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        server.close()
        await server.wait_closed()
    assert process.returncode == 1
    text = err.decode().strip()
    assert text.count("\n") == 0 and "Traceback" not in text and text.startswith("wyoming-flux transcribe:")




async def test_a_port_in_use_is_one_line_and_leaves_nothing_unclosed(fake_flux: FakeFlux) -> None:
    code, text, port = await serve_with_a_port_taken(fake_flux, "--uri", "tcp://127.0.0.1:{taken}")
    assert code == 1 and f"cannot listen on tcp://127.0.0.1:{port}" in text
    assert "Traceback" not in text and "Unclosed" not in text


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # argparse's own exits (--help, a bad flag)
        return int(stop.code or 0)


def test_help_lists_every_command_and_every_mode_of_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("check ", "check --flux", "check --hass-url", "transcribe WAV"):
        assert command in out, command
    assert _exit_code(["check", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--flux" in out and "--hass-url" in out and "--uri" in out


@pytest.mark.parametrize(("argv", "env", "message"), [
    ([], {"WYOMING_FLUX_EOT_THRESHOLD": "abc"}, "WYOMING_FLUX_EOT_THRESHOLD must be a number between 0.5 and 1.0, not abc"),
    (["--eot-threshold", "abc"], {}, "--eot-threshold must be a number between 0.5 and 1.0, not abc"),
    ([], {"WYOMING_FLUX_EOT_THRESHOLD": "1.5"}, "WYOMING_FLUX_EOT_THRESHOLD must be between 0.5 and 1.0, not 1.5"),
    ([], {"WYOMING_FLUX_EOT_TIMEOUT_MS": "2.5"},
     "WYOMING_FLUX_EOT_TIMEOUT_MS must be a whole number between 500 and 60000, not 2.5"),
    (["--warm-connections", "11"], {}, "--warm-connections must be between 0 and 10, not 11"),
    ([], {"WYOMING_FLUX_WARM_MAX_AGE": "1"}, "WYOMING_FLUX_WARM_MAX_AGE must be between 2 and 300, not 1"),
    ([], {"WYOMING_FLUX_MAX_SESSIONS": "0"}, "WYOMING_FLUX_MAX_SESSIONS must be between 1 and 100000, not 0"),
    ([], {"WYOMING_FLUX_FALLBACK_TIMEOUT": "soon"},
     "WYOMING_FLUX_FALLBACK_TIMEOUT must be a number between 1 and 120, not soon"),
    ([], {"WYOMING_FLUX_IDLE_TIMEOUT": "x"}, "WYOMING_FLUX_IDLE_TIMEOUT must be a number between 0.01 and 86400, not x"),
    ([], {"WYOMING_FLUX_METRICS_PORT": "http"},
     "WYOMING_FLUX_METRICS_PORT must be a whole number between 1 and 65535, not http"),
    (["--metrics-port", "x"], {}, "--metrics-port must be a whole number between 1 and 65535, not x"),
    (["check", "--timeout", "soon"], {}, "wyoming-flux check: error: --timeout must be a number between 0.1 and 300"),
])
def test_a_bad_number_names_its_flag_or_variable_and_the_range(
    argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _exit_code([*argv, "--api-key", "k"] if argv[:1] != ["check"] else argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "Traceback" not in err, err


def test_an_empty_key_file_says_it_is_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    key = tmp_path / "deepgram.key"
    key.write_text("\n")
    assert main(["--api-key-file", str(key)]) == 2
    assert capsys.readouterr().err.strip() == f"wyoming-flux: error: --api-key-file {key} is empty"


def _small_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # reading a file whole fails fast, not the host


@pytest.mark.parametrize("kind", ["dev_zero", "fifo", "sparse_1_gib"])
@pytest.mark.parametrize("flags", [("--api-key-file",), ("check", "--flux", "--api-key-file"),
                                   ("--api-key", "k", "--hass-url", "http://h:8123", "--hass-token-file")])
def test_a_key_or_token_file_is_read_bounded_and_never_blocks(tmp_path: Path, kind: str,
                                                              flags: tuple[str, ...]) -> None:
    """/dev/zero was read whole (2.6 GB, then a MemoryError traceback), a FIFO blocked forever: now each is one
    line at once. In a process whose address space is capped at 1 GiB (never in the test's own: a regression
    would take the machine's memory)."""
    path = {"dev_zero": Path("/dev/zero"), "fifo": tmp_path / "fifo", "sparse_1_gib": tmp_path / "big"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "sparse_1_gib":
        with path.open("wb") as big:
            big.truncate(1 << 30)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DEEPGRAM_API_KEY", None)
    done = subprocess.run([sys.executable, "-m", "wyoming_flux", *flags, str(path)], env=env, capture_output=True,
                          text=True, timeout=30, preexec_fn=_small_address_space)
    reason = "larger than 4096 bytes" if kind == "sparse_1_gib" else "not a regular file"
    assert (done.returncode, done.stderr.count("\n")) == (2, 1), done.stderr[-2000:]
    assert f"cannot read {flags[-1]} {path}: {reason}" in done.stderr


@pytest.mark.parametrize("content", ["test-key\nsecond\n", "test key", "test-\x07key"])
def test_a_key_that_is_not_one_clean_line_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch, content: str) -> None:
    # Sent as it is, such a key fails inside the HTTP client at the first command ("header injection").
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    key = tmp_path / "deepgram.key"
    key.write_text(content)
    assert main(["--api-key-file", str(key)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--api-key-file {key} must hold one line without spaces" in err, err
    monkeypatch.setenv("DEEPGRAM_API_KEY", content.strip())
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: DEEPGRAM_API_KEY must hold one line" in err, err  # what was set
    # check --flux reads the key the same way: one line, no traceback
    assert main(["check", "--flux", "--api-key-file", str(key)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "must hold one line" in err, err


def test_a_unix_uri_on_a_file_that_is_not_a_socket_leaves_it_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPGRAM_API_KEY", "test-key")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert main(["--uri", f"unix://{notes}"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"wyoming-flux: error: cannot listen on unix://{notes}: exists and is not a socket"
    assert notes.read_text() == "mine"


@pytest.mark.parametrize(("value", "on"), [("1", True), ("TRUE", True), ("yes", True), ("On", True),
                                           ("0", False), ("False", False), ("no", False), ("off", False)])
def test_on_off_variables_read_every_usual_spelling(monkeypatch: pytest.MonkeyPatch, value: str, on: bool) -> None:
    from wyoming_flux.cli.main import build_parser, settings_from_args

    monkeypatch.setenv("DEEPGRAM_API_KEY", "test-key")
    monkeypatch.setenv("WYOMING_FLUX_MIP_OPT_OUT", value)
    monkeypatch.setenv("WYOMING_FLUX_DEBUG", value)
    monkeypatch.setenv("WYOMING_FLUX_EARLY_ANSWER", value)
    args = build_parser().parse_args([])
    settings = settings_from_args(args)
    assert args.debug is on and settings.session.mip_opt_out is on and settings.session.early_answer is on


def test_early_answers_are_on_by_default_and_the_flag_turns_them_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from wyoming_flux.cli.main import build_parser, settings_from_args

    monkeypatch.setenv("DEEPGRAM_API_KEY", "test-key")
    assert settings_from_args(build_parser().parse_args([])).session.early_answer is True
    assert settings_from_args(build_parser().parse_args(["--no-early-answer"])).session.early_answer is False


@pytest.mark.parametrize("variable", ["WYOMING_FLUX_DEBUG", "WYOMING_FLUX_MIP_OPT_OUT", "WYOMING_FLUX_EARLY_ANSWER"])
def test_an_on_off_variable_with_another_value_is_one_line(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DEEPGRAM_API_KEY", "test-key")
    monkeypatch.setenv(variable, "maybe")
    assert main([]) == 2
    assert capsys.readouterr().err.strip() == (f"wyoming-flux: error: {variable} must be 1, true, yes or on "
                                               "(or 0, false, no, off), not maybe")


async def test_check_flux_waits_no_longer_than_a_command_would(fake_flux: FakeFlux) -> None:
    # A handshake slower than the server's bound (3 s) fails every command: check --flux must not pass it.
    fake_flux.script.handshake_delay = 4.0
    code, out, err = await run_cli("check", "--flux", "--api-key", API_KEY, "--flux-url", fake_flux.url)
    assert code == 1 and out == "" and "error (flux-timeout)" in err, err
    code, out, err = await run_cli("check", "--flux", "--api-key", API_KEY, "--flux-url", fake_flux.url, "--timeout", "6")
    assert code == 0 and out.startswith("ok: Flux accepts this key"), err


def test_check_in_two_modes_at_once_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--flux", "--hass-url", "http://127.0.0.1:8123"]) == 2
    assert capsys.readouterr().err.strip() == ("wyoming-flux check: error: --flux and --hass-url are two modes: check "
                                               "one at a time")


def _numeric_flags() -> list[str]:
    from wyoming_flux.cli.main import build_parser
    from wyoming_flux.common.bounds import Number

    return sorted(option for action in build_parser()._actions if isinstance(action.type, Number)  # noqa: SLF001
                  for option in action.option_strings if option.startswith("--"))


@pytest.fixture
def no_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """A configuration that is accepted fails the test instead of serving."""
    import wyoming_flux.cli.main as cli_main

    async def accepted(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the configuration was accepted")

    monkeypatch.setattr(cli_main, "serve", accepted)


@pytest.mark.parametrize("flag", _numeric_flags())
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e308", "-1e308", "99999999999999999999"])
def test_every_numeric_option_refuses_what_would_overflow_or_make_no_sense_in_one_line(
    flag: str, value: str, capsys: pytest.CaptureFixture[str], no_serving: None
) -> None:
    try:
        code = main(["--api-key", "k", "--uri", "tcp://127.0.0.1:10300", f"{flag}={value}"])
    except SystemExit as exit_:  # argparse's own refusal (not a number of that type)
        code = exit_.code  # type: ignore[assignment]
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wyoming-flux: error:") and err.count("\n") == 0 and flag in err, err


@pytest.mark.parametrize("fmt", ["%(nosuchfield)s", "%(message)d", "plain words", "%(asctime", "{message}"])
def test_a_log_format_logging_cannot_use_is_one_line_at_start(fmt: str, capsys: pytest.CaptureFixture[str],
                                                             no_serving: None) -> None:
    assert main(["--api-key", "k", "--log-format", fmt]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wyoming-flux: error: --log-format") and err.count("\n") == 0, err


def test_the_console_scripts_import_loads_nothing_heavy() -> None:
    """A Ctrl+C in the command's first second lands in main(), which exits quietly, not in the console script's
    own `from wyoming_flux.cli.entry import main` (aiohttp and numpy took a second or two there)."""
    import subprocess

    probe = ("import sys, wyoming_flux.cli.entry; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'aiohttp', 'numpy', 'wyoming', 'zeroconf'}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd="/")
    assert done.stdout.strip() == "[]"


def test_the_public_names_load_on_first_use() -> None:
    import wyoming_flux
    from wyoming_flux import _api

    public = {name for name in vars(_api) if not name.startswith("_")}
    assert public == set(wyoming_flux.__all__) - {"__version__"}  # one list, no name forgotten
    assert all(getattr(wyoming_flux, name) is getattr(_api, name) for name in public)
    assert set(wyoming_flux.__all__) <= set(dir(wyoming_flux))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        wyoming_flux.nothing  # noqa: B018


@pytest.mark.parametrize("delay", [0.3, 0.6, 1.0, 2.0])
def test_ctrl_c_while_the_command_starts_is_a_quiet_exit(delay: float) -> None:
    """Wherever the interrupt lands (loading the libraries, reading the flags, starting the server), no
    traceback: 130 before the server runs, 0 once it stops on the signal. (Not before 0.3 s: the interpreter's
    own start-up, before any of our code, is not ours to quiet.)"""
    import signal
    import subprocess
    import time

    command = [str(Path(sys.executable).parent / "wyoming-flux"), "--api-key", "k", "--uri",
               f"tcp://127.0.0.1:{free_port()}", "--flux-url", "ws://127.0.0.1:9/v2/listen"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert process.returncode in (0, 130, -signal.SIGINT)  # (-SIGINT: before Python handles signals at all)

