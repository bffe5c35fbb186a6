"""A real Home Assistant for the browser test: `python -m homeassistant` in a process of its own on loopback,
with the real frontend, this checkout's integration, and a user made through the onboarding API.

Only what the journey needs is set up (no default_config: it pulls go2rtc, a binary download). A tiny TTS
(custom_components/quiet_tts here) completes the Assist pipeline: the browser's Assist dialog sends no audio to
a pipeline without one."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import sys
from dataclasses import dataclass, field
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.helpers import free_port

ROOT = Path(__file__).parents[2]
HERE = Path(__file__).parent
USERNAME, PASSWORD = "newcomer", "first-hour-password"
START_TIMEOUT = 120.0  # seconds: a cold start imports the frontend and the assist pipeline on a busy machine

CONFIGURATION = """\
homeassistant:
  name: Home
  country: US
  language: en
  currency: USD
  unit_system: metric
  time_zone: UTC
  latitude: 52.37
  longitude: 4.89
  elevation: 0
http:
  server_host: 127.0.0.1
  server_port: {port}
frontend:
config:
assist_pipeline:
conversation:
intent:
tts:
  - platform: quiet_tts
{kitchen_light}logger:
  default: warning
"""
# A light "Kitchen light" (exposed to Assist, as new lights are) that really turns on: also the early-answer
# bench's home (bench/eager.py).
KITCHEN_LIGHT = """\
input_boolean:
  kitchen_power:
    name: Kitchen power
template:
  - light:
      - name: Kitchen light
        unique_id: kitchen_light
        state: "{{ is_state('input_boolean.kitchen_power', 'on') }}"
        turn_on:
          action: input_boolean.turn_on
          target:
            entity_id: input_boolean.kitchen_power
        turn_off:
          action: input_boolean.turn_off
          target:
            entity_id: input_boolean.kitchen_power
"""


@dataclass
class HomeAssistant:
    """A running Home Assistant: its URL, its config directory and a logged-in admin's tokens."""

    config_dir: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    tokens: dict[str, Any] = field(default_factory=dict)
    ready_path: str = "/manifest.json"  # answers 200 once started (the frontend's; /api/onboarding without it)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port,
                                                                                kitchen_light=KITCHEN_LIGHT))
        # The onboarding steps after the owner's add integrations that need the internet (weather, radio, a
        # cloud TTS): marked done, as a user who skipped them.
        storage = self.config_dir / ".storage"
        storage.mkdir(exist_ok=True)
        (storage / "onboarding").write_text(json.dumps({"version": 4, "minor_version": 1, "key": "onboarding", "data": {
            "done": ["core_config", "analytics", "integration"]}}))
        custom = self.config_dir / "custom_components"
        custom.mkdir(exist_ok=True)
        for source in (ROOT / "custom_components" / "deepgram_flux", HERE / "custom_components" / "quiet_tts"):
            if not (custom / source.name).exists():
                shutil.copytree(source, custom / source.name, ignore=shutil.ignore_patterns("__pycache__"))

    async def start(self) -> None:
        log = (self.config_dir / "home-assistant.log").open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "homeassistant", "--config", str(self.config_dir), "--skip-pip",
            "--log-no-color", stdout=log, stderr=log,
            cwd=self.config_dir,  # `python -m` puts the working directory first on sys.path: not the checkout's
        )                         # custom_components, the config directory's

        log.close()
        async with aiohttp.ClientSession() as session, asyncio.timeout(START_TIMEOUT):
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"Home Assistant exited ({self.process.returncode}):\n{self.log_tail()}")
                try:
                    async with session.get(f"{self.url}{self.ready_path}") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.25)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            async with asyncio.timeout(60):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        path = self.config_dir / "home-assistant.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def log_text(self) -> str:
        path = self.config_dir / "home-assistant.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def onboard(self) -> None:
        """Create the owner as the onboarding page does, and keep the tokens a browser login would get."""
        client_id = f"{self.url}/"
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.url}/api/onboarding/users", json={
                "client_id": client_id, "name": "Newcomer", "username": USERNAME, "password": PASSWORD,
                "language": "en",
            }) as response:
                assert response.status == 200, await response.text()
                code = (await response.json())["auth_code"]
            async with session.post(f"{self.url}/auth/token", data={
                "grant_type": "authorization_code", "code": code, "client_id": client_id,
            }) as response:
                assert response.status == 200, await response.text()
                self.tokens = await response.json()

    async def refresh(self) -> None:
        """A new access token (after a restart the old one still works; this keeps them short-lived)."""
        async with aiohttp.ClientSession() as session, session.post(f"{self.url}/auth/token", data={
            "grant_type": "refresh_token", "refresh_token": self.tokens["refresh_token"],
            "client_id": f"{self.url}/",
        }) as response:
            assert response.status == 200, await response.text()
            self.tokens = {**self.tokens, **await response.json()}

    def login_script(self) -> str:
        """A page script storing what the frontend keeps after a login, so the browser starts logged in."""
        tokens = json.dumps({**self.tokens, "hassUrl": self.url, "clientId": f"{self.url}/"})
        return (f"const tokens = {tokens}; tokens.expires = Date.now() + tokens.expires_in * 1000;"
                "localStorage.setItem('hassTokens', JSON.stringify(tokens));")

    async def ws(self, *messages: dict[str, Any]) -> list[Any]:
        """Send websocket commands in order; the result of each (an error fails the test)."""
        ids = itertools.count(1)
        results = []
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{self.url}/api/websocket") as ws:
            assert (await ws.receive_json())["type"] == "auth_required"
            await ws.send_json({"type": "auth", "access_token": self.tokens["access_token"]})
            assert (await ws.receive_json())["type"] == "auth_ok"
            for message in messages:
                message_id = next(ids)
                await ws.send_json({"id": message_id, **message})
                while True:
                    answer = await asyncio.wait_for(ws.receive_json(), 30)
                    if answer.get("id") == message_id and answer["type"] == "result":
                        break
                assert answer["success"], (message, answer)
                results.append(answer["result"])
        return results

    async def rest(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens['access_token']}"}
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}{path}", headers=headers) as response:
            assert response.status == 200, await response.text()
            return await response.json()


@contextlib.asynccontextmanager
async def onboarded_home_assistant(config: Path) -> AsyncIterator[HomeAssistant]:
    """A configured, started and onboarded Home Assistant, stopped on the way out (read its log after that)."""
    ha = HomeAssistant(config)
    ha.write_config()
    await ha.start()
    try:
        await ha.onboard()
        yield ha
    finally:
        await ha.stop()
