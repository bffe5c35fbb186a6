"""The names reader against a hostile Home Assistant (tests/hostile_hass.py, a separate process): a very large
home, a registry that changes all the time, a connection closed after every read. The Wyoming port keeps
answering, memory is bounded and returned, re-reads and log lines are bounded."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import AsyncIterator

import pytest

from tests.conftest import ROOT, make_settings
from tests.helpers import memory_mb, reset_peak_memory
from tests.wyoming_io import describe_latencies, port
from wyoming_flux.deepgram.flux import KEYTERM_TOKEN_BUDGET, estimate_tokens
from wyoming_flux.server.hass import names as hass_names
from wyoming_flux.server.hass.names import HassNames
from wyoming_flux.server.hass.json_elements import Element
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.turn.session import SessionConfig

LOGGER = "wyoming_flux.server.hass.names"


@contextlib.asynccontextmanager
async def hostile_hass(*args: str) -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.hostile_hass", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        async with asyncio.timeout(60):  # building a large home's answers takes a while on a busy machine
            line = (await process.stdout.readline()).decode().split()
        assert line[:1] == ["ready"], "the hostile Home Assistant did not start"
        yield f"http://127.0.0.1:{line[1]}"
    finally:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def serving(config: SessionConfig, names: HassNames | None) -> AsyncIterator[WyomingServer]:
    settings = make_settings(config)
    if names is not None:
        settings = dataclasses.replace(settings, hass_url=names.url, hass_token="set-in-names")
    server = WyomingServer(settings, "tcp://127.0.0.1:0")
    server.names = names
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def until(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


@contextlib.asynccontextmanager
async def describe_probe(server: WyomingServer) -> AsyncIterator[list[float]]:
    """Describe round trips from another process while the block runs (a stall of our loop shows in them)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.describe_probe", str(port(server)), cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    latencies: list[float] = []
    try:
        assert process.stdin is not None and process.stdout is not None
        async with asyncio.timeout(30):
            assert (await process.stdout.readline()).strip() == b"ready"
        yield latencies
        process.stdin.write(b"stop\n")
        async with asyncio.timeout(30):
            latencies += json.loads(await process.stdout.readline())
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_a_100k_entity_home_is_read_while_the_wyoming_port_answers_at_once(session_config: SessionConfig) -> None:
    async with hostile_hass("--entities", "100000") as url, serving(session_config, None) as server:
        names = HassNames(url, "token", timeout=60)
        async with describe_probe(server) as latencies:
            names.start()
            try:
                await until(lambda: names.fetches > 0, 60)
                await asyncio.sleep(0.2)
            finally:
                await names.stop()
    assert names.terms[:2] == ("Kitchen", "Cuisine") and "Lamp 0" in names.terms
    assert sum(estimate_tokens(t) for t in names.terms) <= KEYTERM_TOKEN_BUDGET
    # A few milliseconds while the names are read; stalls of a second before. A wide margin for load.
    assert max(latencies) < 0.3, f"Describe took up to {max(latencies) * 1000:.0f} ms during the read"


async def test_a_30_mb_answer_takes_bounded_memory_and_gives_it_back(session_config: SessionConfig) -> None:
    async with hostile_hass("--entities", "20000", "--pad", "400") as url:  # get_states: 30 MB of small objects
        names = HassNames(url, "token", timeout=60)
        reset_peak_memory()
        before, _ = memory_mb()
        async with serving(session_config, names):
            await until(lambda: names.fetches > 0, 60)
            after, peak = memory_mb()
    assert "Lamp 0" in names.terms
    # The answer's text, the websocket's buffer and one element at a time: a few times 30 MB at the peak (it
    # was 800 MB), and all of it returned after (it was kept).
    assert peak - before < 250, f"peak {peak - before:.0f} MB over the start"
    assert after - before < 80, f"{after - before:.0f} MB still held after the read"


async def test_a_registry_that_changes_all_the_time_is_read_at_most_once_per_interval(
    session_config: SessionConfig,
) -> None:
    async with hostile_hass("--entities", "50", "--event-every", "0.05") as url:
        names = HassNames(url, "token", debounce=0.05)
        names.min_interval = 1.0
        async with serving(session_config, names):
            await until(lambda: names.fetches > 0, 20)
            await asyncio.sleep(3.0)
            fetches = names.fetches
    # An event every 50 ms re-read the names every ~100 ms before; now at most once a second.
    assert 2 <= fetches <= 1 + 3 + 1, fetches


async def test_a_home_assistant_that_closes_after_every_read_is_one_warning_and_a_growing_backoff(
    session_config: SessionConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    async with hostile_hass("--entities", "50", "--close-after-read") as url:
        names = HassNames(url, "token", min_backoff=0.05, max_backoff=0.4)
        async with serving(session_config, names):
            await until(lambda: names.fetches > 0, 20)
            await asyncio.sleep(3.0)
            fetches = names.fetches
    assert len(records(caplog, logging.WARNING)) == 1, records(caplog, logging.WARNING)
    assert len(records(caplog, logging.INFO)) <= 2, records(caplog, logging.INFO)
    # 0.05, 0.1, 0.2, then 0.4 s between reads: about ten in 3 s (a reconnect every ~0.1 s before).
    assert fetches <= 12, fetches


async def test_a_names_bomb_past_its_timeout_stops_decoding(session_config: SessionConfig,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """get_states answered with 10 million empty objects (30 MB): refused at the timeout, as before, but its worker
    thread went on decoding for 13 s of CPU after it. Now it stops at its next element."""
    decoded = [0]
    exposed_state = hass_names._exposed_state

    def counting(exposed: dict[str, object]) -> Element:
        keep = exposed_state(exposed)

        def count(key: str | None, state: object) -> object:
            decoded[0] += 1
            return keep(key, state)

        return count

    monkeypatch.setattr(hass_names, "_exposed_state", counting)
    async with hostile_hass("--entities", "5", "--bomb", "10000000") as url:
        names = HassNames(url, "token", timeout=2.0, min_backoff=60.0)
        async with serving(session_config, names):
            await until(lambda: names.status != "not connected yet", 60)
            assert "TimeoutError" in names.status, names.status
            at_refusal = decoded[0]
            await asyncio.sleep(1.0)
            after = decoded[0]
    assert 0 < at_refusal < 10_000_000, "the decoding must have been under way at the refusal"
    assert after - at_refusal <= 1, f"{after - at_refusal} more elements decoded after the refusal"


async def test_deeply_nested_json_from_home_assistant_is_one_line(session_config: SessionConfig,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The area list as 20,000 nested arrays (40 KB, decoded on the event loop): on Python 3.11 a RecursionError
    that ended the reader, reported as "the connection closed". Now one warning that names it, no traceback
    (Python 3.14 decodes it: a list with no area in it)."""
    caplog.set_level(logging.DEBUG, LOGGER)
    async with hostile_hass("--entities", "5", "--nested", "20000") as url:
        names = HassNames(url, "token", min_backoff=60.0)
        async with serving(session_config, names):
            await until(lambda: names.status != "not connected yet", 20)
    assert not [r for r in caplog.records if r.exc_info], "no traceback, even at debug"
    warnings = records(caplog, logging.WARNING)
    assert names.status == "connected" and not warnings or (
        len(warnings) == 1 and "nested too deeply" in warnings[0]), (names.status, warnings)
