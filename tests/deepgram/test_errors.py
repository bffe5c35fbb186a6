"""One table of Flux failures: every handshake status and stream code maps to its own stable code, retries
only where a retry helps, and docs/how-it-works.md shows the same table."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import API_KEY
from tests.fake_flux import FakeFlux
from tests.fake_nova import CLOSE_REASONS
from wyoming_flux.deepgram.errors import KINDS, STREAM_CODES, error_for_status, error_for_stream
from wyoming_flux.deepgram.flux import FluxOptions, connect_flux


@pytest.mark.parametrize(
    ("status", "code", "retry"),
    [(400, "flux-bad-request", False), (401, "flux-auth", False), (402, "flux-no-credit", False),
     (403, "flux-forbidden", False), (404, "flux-not-found", False), (408, "flux-request-timeout", True),
     (418, "flux-bad-request", False), (429, "flux-rate-limited", True), (500, "flux-unavailable", True),
     (503, "flux-unavailable", True)],
)
def test_every_handshake_status_has_its_code(status: int, code: str, retry: bool) -> None:
    error = error_for_status(status, "Deepgram says why")
    assert (error.code, error.retryable, error.status) == (code, retry, status)
    assert str(error).endswith(f"(HTTP {status}): Deepgram says why")


@pytest.mark.parametrize(
    ("flux_code", "code"),
    [("INTERNAL_SERVER_ERROR", "flux-stream"), ("NET-0000", "flux-stream"), ("NET-0001", "flux-idle-timeout"),
     ("DATA-0000", "flux-bad-audio"), ("UNPARSABLE_CLIENT_MESSAGE", "flux-unsupported-message"),
     ("INACTIVE_CLIENT", "flux-idle-timeout"), ("SOMETHING_NEW", "flux-stream"), ("", "flux-stream")],
)
def test_every_stream_code_has_its_code(flux_code: str, code: str) -> None:
    error = error_for_stream(flux_code, "detail")
    assert error.code == code and (flux_code in str(error))


@pytest.mark.parametrize(
    ("reason", "code"),
    [*((sentence, STREAM_CODES[code]) for code, sentence in CLOSE_REASONS.items()),
     ("Deepgram did not receive audio data or a text message within the timeout window. See https://dpgr.am/NET0001",
      "flux-idle-timeout"),
     ("net-0001", "flux-idle-timeout"), ("closed (NET-0000)", "flux-stream"),
     ("See https://dpgr.am/net00010", "flux-stream"),
     ("Something else entirely", "flux-stream")],
)
def test_the_code_inside_a_close_reason_decides(reason: str, code: str) -> None:
    """/v1 closes with a sentence that carries the code (as a dpgr.am link, any case), not the bare code."""
    error = error_for_stream(reason, "Nova-3 closed the stream")
    assert error.code == code and reason in str(error)


@pytest.mark.parametrize("reason", [None, CLOSE_REASONS["NET-0001"]])
async def test_an_idle_close_is_read_as_flux_idle_timeout(fake_flux: FakeFlux, reason: str | None) -> None:
    """Flux's idle limit, as a fatal Error INACTIVE_CLIENT or as a close frame whose reason carries NET-0001."""
    fake_flux.script.idle_close_after = 0.3
    fake_flux.script.idle_close_reason = reason
    async with aiohttp.ClientSession() as http:
        socket = await connect_flux(http, fake_flux.url, API_KEY, FluxOptions(model="flux-general-en"))

        async def ping() -> None:  # pings are not audio: they must not keep the stream alive
            while not socket.closed:
                await socket.ping()
                await asyncio.sleep(0.05)

        pinger = asyncio.create_task(ping())
        messages = []
        async with asyncio.timeout(5):
            while (message := await socket.receive()) is not None:
                messages.append(message)
        pinger.cancel()
        await asyncio.gather(pinger, return_exceptions=True)
        await socket.close()
    if reason is None:
        assert messages[-1].code == "INACTIVE_CLIENT"  # type: ignore[union-attr]
        assert error_for_stream(messages[-1].code, "").code == "flux-idle-timeout"  # type: ignore[union-attr]
    else:
        assert error_for_stream(socket.close_reason, "").code == "flux-idle-timeout"


def test_the_documented_error_table_is_the_code_table() -> None:
    page = (Path(__file__).parents[2] / "docs" / "how-it-works.md").read_text(encoding="utf-8")
    for kind in KINDS.values():
        row = f"| `{kind.code}` | {kind.cause} | {'yes' if kind.retry else 'no'} | "
        assert row in page, row
        line = page[page.index(row):].split("\n", 1)[0]
        assert line.endswith("| |") != kind.user_action, line  # rows the user must act on say what to do


def test_the_core_home_assistant_installs_needs_only_aiohttp_and_numpy() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['wyoming'] = None; sys.modules['homeassistant'] = None\n"
            "import wyoming_flux.turn.session, wyoming_flux.turn.state, wyoming_flux.turn.request, wyoming_flux.deepgram.errors, "
            "wyoming_flux.deepgram.endpoints, wyoming_flux.deepgram.pool, wyoming_flux.turn.names")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
