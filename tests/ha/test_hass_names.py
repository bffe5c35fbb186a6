"""The Wyoming server reading names from a real Home Assistant over its websocket API.

Home Assistant here is the harness's real `hass` with its `http`, `websocket_api` and `config` components,
served on a loopback port, and a real long-lived access token: the server talks to it exactly as it would to
a house's Home Assistant.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestServer
from homeassistant.auth.models import TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar, entity_registry as er
from homeassistant.setup import async_setup_component
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient

from tests.conftest import make_settings
from tests.fake_flux import FakeFlux
from tests.ha.conftest import needs_home_assistant
from tests.helpers import chunks, fixture_text, free_port, load_wav, silence
from wyoming_flux.deepgram.flux import estimate_tokens
from wyoming_flux.server.hass.names import HassNames
from wyoming_flux.cli.namecheck import check_names
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.turn.session import SessionConfig

pytestmark = needs_home_assistant("2026.10.0", "the server needs wyoming 1.10, newer than older releases pin")

KITCHEN = "turn_on_the_kitchen_light"
LOGGER = "wyoming_flux.server.hass.names"


class HomeAssistantApi:
    """hass.http.app on a fixed loopback port, so it can go away and come back like a restarted HA."""

    def __init__(self, hass: HomeAssistant) -> None:
        self._app = hass.http.app
        self.port = free_port()
        self._server: TestServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = TestServer(self._app, host="127.0.0.1", port=self.port)
        await self._server.start_server()

    async def stop(self) -> None:
        """As HA going down: open connections are cut, not left to aiohttp's minute of shutdown grace."""
        if self._server is not None:
            assert self._server.runner is not None and self._server.runner.server is not None
            for connection in list(self._server.runner.server.connections):
                if connection.transport is not None:
                    connection.transport.abort()
            await self._server.close()
            self._server = None


@pytest.fixture
async def ha_api(hass: HomeAssistant, ha_core: HomeAssistant) -> AsyncIterator[HomeAssistantApi]:
    for component in ("http", "websocket_api", "config"):
        assert await async_setup_component(hass, component, {})
    await hass.async_block_till_done()
    api = HomeAssistantApi(hass)
    await api.start()
    yield api
    await api.stop()


async def long_lived_token(hass: HomeAssistant, user) -> str:  # type: ignore[no-untyped-def]
    """A long-lived access token, as a user makes one on their profile page."""
    refresh = await hass.auth.async_create_refresh_token(
        user, client_name="wyoming-flux", token_type=TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN,
        access_token_expiration=timedelta(days=365),
    )
    return hass.auth.async_create_access_token(refresh)


@pytest.fixture
async def token(hass: HomeAssistant, hass_admin_user) -> str:  # type: ignore[no-untyped-def]
    return await long_lived_token(hass, hass_admin_user)


@pytest.fixture
def home(hass: HomeAssistant, ha_api: HomeAssistantApi) -> er.RegistryEntry:
    """An area with an alias, an exposed light in it with an alias, and a light that is not exposed."""
    area = ar.async_get(hass).async_create("Léa's Room", aliases={"Lea's bedroom"})
    registry = er.async_get(hass)
    strip = registry.async_get_or_create("light", "test", "strip", original_name="Hue Strip",
                                         suggested_object_id="hue_strip")
    registry.async_update_entity(strip.entity_id, area_id=area.id, aliases=["Rainbow"])
    hass.states.async_set(strip.entity_id, "off", {"friendly_name": "Hue Strip"})
    async_expose_entity(hass, "conversation", strip.entity_id, True)
    hidden = registry.async_get_or_create("light", "test", "hidden", suggested_object_id="hidden")
    hass.states.async_set(hidden.entity_id, "off", {"friendly_name": "Secret Lamp"})
    async_expose_entity(hass, "conversation", hidden.entity_id, False)
    return strip


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Generous: the machine is shared, and a refresh waits for its debounce."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)
    assert condition(), what


async def serving(fake_flux: FakeFlux, names: HassNames, keyterms: tuple[str, ...] = ()) -> WyomingServer:
    config = SessionConfig(url=fake_flux.url, api_key="dg-secret-0123456789abcdef", keyterms=keyterms)
    settings = dataclasses.replace(make_settings(config), hass_url=names.url, hass_token="set-in-names")
    server = WyomingServer(settings, "tcp://127.0.0.1:0")
    server.names = names
    await server.start()
    return server


async def command(server: WyomingServer, fake_flux: FakeFlux, seconds: float = 10.0) -> list[str]:
    """One Wyoming command as Home Assistant sends it (no names in Transcribe); the keyterms Flux received."""
    assert server.port is not None
    async with asyncio.timeout(seconds), AsyncTcpClient("127.0.0.1", server.port) as client:
        await client.write_event(Transcribe(language="en-US").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for chunk in chunks(load_wav(KITCHEN) + silence(1)):
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=chunk).event())
        await client.write_event(AudioStop().event())
        while (event := await client.read_event()) is not None and not Transcript.is_type(event.type):
            assert event.type != "error", event
    assert event is not None and Transcript.from_event(event).text == fixture_text(KITCHEN)
    return fake_flux.streams[-1].query.get("keyterm", [])


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


async def test_exposed_names_reach_commands_and_registry_changes_reach_the_next_one(
    hass: HomeAssistant, ha_api: HomeAssistantApi, token: str, home: er.RegistryEntry, fake_flux: FakeFlux,
    caplog: pytest.LogCaptureFixture,
) -> None:
    names = HassNames(ha_api.url, token, debounce=0.05, min_interval=0.05)
    server = await serving(fake_flux, names, keyterms=("Zigbee",))
    try:
        await eventually(lambda: names.fetches >= 1, "names fetched")
        terms = await command(server, fake_flux)
        # Configured terms first, then areas with their aliases, then exposed entities with theirs.
        assert terms == ["Zigbee", "Léa's Room", "Lea's bedroom", "Hue Strip", "Rainbow"]
        assert names.status == "connected" and not warnings(caplog)

        fetches = names.fetches
        er.async_get(hass).async_update_entity(home.entity_id, aliases=["Rainbow", "Mood light"])
        ar.async_get(hass).async_create("Attic")
        await eventually(lambda: "Mood light" in names.terms and "Attic" in names.terms, "registry change seen")
        assert names.fetches <= fetches + 2  # a burst of changes is read in one or two fetches, not one per event
        terms = await command(server, fake_flux)
        assert {"Mood light", "Attic"} <= set(terms)

        async_expose_entity(hass, "conversation", home.entity_id, False)  # withdrawn from Assist
        await eventually(lambda: "Hue Strip" not in names.terms, "exposure change seen")
        assert "Hue Strip" not in await command(server, fake_flux)
    finally:
        await server.stop()


async def test_a_large_home_is_trimmed_to_the_budget_the_integration_uses(
    hass: HomeAssistant, ha_api: HomeAssistantApi, token: str, home: er.RegistryEntry, fake_flux: FakeFlux,
) -> None:
    for i in range(300):  # far more names than Flux's budget allows
        hass.states.async_set(f"switch.outlet_{i}", "off", {"friendly_name": f"Garage outlet number {i}"})
        async_expose_entity(hass, "conversation", f"switch.outlet_{i}", True)
    await hass.async_block_till_done()
    names = HassNames(ha_api.url, token)
    server = await serving(fake_flux, names)
    try:
        await eventually(lambda: names.fetches >= 1, "names fetched")
        terms = await command(server, fake_flux)
    finally:
        await server.stop()
    assert terms[:4] == ["Léa's Room", "Lea's bedroom", "Hue Strip", "Rainbow"]
    assert "Garage outlet number 0" in terms and "Secret Lamp" not in terms
    assert sum(estimate_tokens(t) for t in terms) <= 500 and len(terms) < 300


# HA's own side of a refused login leaves its aiohttp heartbeat timer armed for a minute after it closed.
HA_HEARTBEAT_AFTER_REFUSAL = pytest.mark.parametrize("expected_lingering_timers", [True])


@HA_HEARTBEAT_AFTER_REFUSAL
@pytest.mark.parametrize("problem", ["bad token", "unreachable"])
async def test_a_rejected_token_or_absent_home_assistant_warns_once_and_commands_go_on(
    hass: HomeAssistant, ha_api: HomeAssistantApi, token: str, home: er.RegistryEntry, fake_flux: FakeFlux,
    caplog: pytest.LogCaptureFixture, problem: str,
) -> None:
    url = ha_api.url if problem == "bad token" else f"http://127.0.0.1:{free_port()}"
    names = HassNames(url, "not-a-token" if problem == "bad token" else token, min_backoff=0.05, max_backoff=0.2)
    server = await serving(fake_flux, names, keyterms=("Zigbee",))
    attempts: list[str] = []
    try:
        caplog.set_level(logging.DEBUG, LOGGER)
        await eventually(lambda: len([r for r in caplog.records if r.name == LOGGER]) >= (1 if problem == "bad token" else 4),
                         "tried")
        await asyncio.sleep(0.5)  # time for several more tries
        assert await command(server, fake_flux) == ["Zigbee"]  # no names, no waiting
        attempts = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    finally:
        await server.stop()
    (warning,) = warnings(caplog)
    assert ("rejected the token" if problem == "bad token" else "unreachable") in warning
    ours = " ".join(attempts)
    assert "not-a-token" not in ours and token not in ours
    assert not names.connected
    if problem == "bad token":  # each try would be a failed login in HA's log and notifications: one is enough
        assert len(attempts) == 1 and names.status == "Home Assistant rejected the token"
    else:
        assert len(attempts) >= 4


async def test_names_come_back_after_home_assistant_restarts(
    hass: HomeAssistant, ha_api: HomeAssistantApi, token: str, home: er.RegistryEntry, fake_flux: FakeFlux,
    caplog: pytest.LogCaptureFixture,
) -> None:
    names = HassNames(ha_api.url, token, min_backoff=0.05, max_backoff=0.5, debounce=0.05, min_interval=0.05)
    server = await serving(fake_flux, names)
    try:
        await eventually(lambda: names.connected, "connected")
        await ha_api.stop()
        await eventually(lambda: not names.connected, "the loss seen")
        ar.async_get(hass).async_create("Garden")  # changed while the server could not listen
        assert "Hue Strip" in await command(server, fake_flux)  # the names known before go on being used
        await ha_api.start()
        await eventually(lambda: names.connected and "Garden" in names.terms, "reconnected and refreshed")
        assert "Garden" in await command(server, fake_flux)
    finally:
        await server.stop()
    assert len(warnings(caplog)) == 1  # one outage, one warning


@HA_HEARTBEAT_AFTER_REFUSAL
async def test_check_proves_the_address_and_token(
    ha_api: HomeAssistantApi, token: str, home: er.RegistryEntry, capsys: pytest.CaptureFixture[str],
) -> None:
    assert await check_names(ha_api.url, token, timeout=10) == 0
    assert "1 entity exposed to Assist" in capsys.readouterr().out
    assert await check_names(ha_api.url, "not-a-token", timeout=10) == 1
    assert "rejected the token" in capsys.readouterr().err
    assert await check_names(f"http://127.0.0.1:{free_port()}", token, timeout=10) == 1
    assert "unreachable" in capsys.readouterr().err


async def test_a_user_who_is_not_an_administrator_is_told_once_and_commands_go_on(
    hass: HomeAssistant, ha_api: HomeAssistantApi, hass_read_only_user, home: er.RegistryEntry,  # type: ignore[no-untyped-def]
    fake_flux: FakeFlux, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    read_only = await long_lived_token(hass, hass_read_only_user)
    names = HassNames(ha_api.url, read_only, min_backoff=0.05, max_backoff=0.2)
    server = await serving(fake_flux, names)
    try:
        await eventually(lambda: bool(warnings(caplog)), "warned")
        assert await command(server, fake_flux) == []
    finally:
        await server.stop()
    (warning,) = warnings(caplog)
    assert "its user is not an administrator" in warning and not names.connected
    assert await check_names(ha_api.url, read_only, timeout=10) == 1
    assert "not an administrator" in capsys.readouterr().err
