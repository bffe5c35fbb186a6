"""Fixtures shared by the core tests and the Home Assistant tests."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The tests exercise wyoming_flux as installed (script/test installs the built wheel), as Home Assistant and
# users import it, not the checkout pytest puts first on sys.path: the checkout stays reachable only for
# `tests` and `custom_components`, which are not installed.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT] + [str(ROOT)]

from tests.fake_flux import FakeFlux  # noqa: E402
from wyoming_flux.deepgram.catalog import forget_catalogs  # noqa: E402
from wyoming_flux.deepgram.endpoints import forget_endpoints  # noqa: E402
from wyoming_flux.deepgram.models import DEEPGRAM_MODELS, MODEL_EN, MODEL_MULTI  # noqa: E402
from wyoming_flux.turn.session import SessionConfig  # noqa: E402

if TYPE_CHECKING:  # the server needs the `server` extra, which the integration's environment does not have
    from wyoming_flux.server.settings import ServerSettings
    from wyoming_flux.server.server import WyomingServer

API_KEY = "dg-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def _loopback_sockets(request: pytest.FixtureRequest) -> None:
    """Under Home Assistant's test harness sockets are blocked unless asked for; we only use loopback."""
    try:
        request.getfixturevalue("socket_enabled")
    except pytest.FixtureLookupError:
        pass


@pytest.fixture(autouse=True)
def _fresh_endpoint_memory() -> None:
    """A port the OS hands out again must not inherit what an earlier test's fake taught the process."""
    forget_endpoints()
    forget_catalogs()


@pytest.fixture
async def fake_flux() -> AsyncIterator[FakeFlux]:
    fake = FakeFlux(api_key=API_KEY)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def session_config(fake_flux: FakeFlux) -> SessionConfig:
    return SessionConfig(url=fake_flux.url, api_key=API_KEY)


DEFAULT_MODELS = [MODEL_EN]  # what a test's server offers unless it names models; `backend` switches it


@pytest.fixture(params=["flux", "nova"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a suite on both APIs: servers made by make_settings() without models offer Flux, or Nova-3 alone
    (so the same commands, with no language, go to /v1/listen)."""
    DEFAULT_MODELS[:] = [MODEL_EN] if request.param == "flux" else ["nova-3"]
    try:
        yield request.param
    finally:
        DEFAULT_MODELS[:] = [MODEL_EN]


@pytest.fixture
def end_trigger(backend: str) -> str:
    """The trigger of a command the API ended by itself: Flux's EndOfTurn (model), Nova-3's speech_final."""
    return {"flux": "model", "nova": "speech_final"}[backend]


def make_settings(config: SessionConfig, *models: str) -> ServerSettings:
    from wyoming_flux.server.settings import ServerSettings

    return ServerSettings(session=config, models=tuple(DEEPGRAM_MODELS[m] for m in (models or DEFAULT_MODELS)))


async def start_server(config: SessionConfig, **changes: object) -> WyomingServer:
    """A started server on a free port, with these settings changed."""
    import dataclasses

    from wyoming_flux.server.server import WyomingServer

    server = WyomingServer(dataclasses.replace(make_settings(config), **changes), "tcp://127.0.0.1:0")  # type: ignore[arg-type]
    await server.start()
    return server


@pytest.fixture
async def wyoming_server(session_config: SessionConfig) -> AsyncIterator[WyomingServer]:
    from wyoming_flux.server.server import WyomingServer

    server = WyomingServer(make_settings(session_config, MODEL_EN, MODEL_MULTI), "tcp://127.0.0.1:0")
    await server.start()
    yield server
    await server.stop()
