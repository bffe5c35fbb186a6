"""Names from Home Assistant for the Wyoming server, read over HA's websocket API.

Home Assistant sends no names over Wyoming, so the server asks for them itself: the areas and the entities
exposed to Assist, with their aliases, refreshed when a registry changes. Commands never wait for this: they
take whatever `terms` holds at that moment (empty until the first fetch, or while HA is away).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ..common.tasks import cancel
from ..common.wording import count
from ..turn.names import Named, keyterms_from_names

_LOGGER = logging.getLogger(__name__)

ASSISTANT = "conversation"  # Assist's key in HA's exposure settings
# Exposure of a registered entity lives in its registry options, so these two events cover names, aliases,
# areas and exposure changes; a periodic refresh catches the rest (entities outside the registry).
WATCHED_EVENTS = ("entity_registry_updated", "area_registry_updated")
MAX_MESSAGE_BYTES = 32 * 1024 * 1024  # get_states of a large home, with room to spare; bounded all the same


class HassAuthError(Exception):
    """Home Assistant rejected the token, or its user may not read what is needed."""

    def __init__(self, reason: str = "rejected the token") -> None:
        super().__init__(reason)


class HassProtocolError(Exception):
    """Home Assistant answered something this client does not understand, or a command failed."""


def websocket_url(url: str) -> str:
    """http(s)://host:8123 -> ws(s)://host:8123/api/websocket; the Supervisor's proxy http://supervisor/core
    -> ws://supervisor/core/websocket; a ws(s)://.../websocket URL is used as given."""
    parts = urlsplit(url.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise ValueError(f"{url} is not an http://, https://, ws:// or wss:// URL")
    path = parts.path.rstrip("/")
    if not path.endswith("/websocket"):
        path += "/websocket" if path.endswith("/core") else "/api/websocket"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def names_from(areas: list[dict[str, Any]], exposed: dict[str, Any], states: list[dict[str, Any]],
               entries: dict[str, Any]) -> tuple[list[Named], list[Named]]:
    """HA's answers -> areas and exposed entities, in HA's own order (the order the integration sees too)."""
    area_names = [Named.of(area.get("name"), area.get("aliases") or ()) for area in areas if isinstance(area, dict)]
    entities: list[Named] = []
    for state in states:
        entity_id = state.get("entity_id") if isinstance(state, dict) else None
        if not isinstance(entity_id, str) or not (exposed.get(entity_id) or {}).get(ASSISTANT):
            continue
        attributes = state.get("attributes") or {}
        # As HA's State.name: the friendly name, else the object id with spaces.
        name = attributes.get("friendly_name") or entity_id.partition(".")[2].replace("_", " ")
        entry = entries.get(entity_id)
        entities.append(Named.of(name, (entry.get("aliases") or ()) if isinstance(entry, dict) else ()))
    return area_names, entities


class HassNames:
    """Keeps `terms` up to date from one Home Assistant; reconnects with backoff, warns once per outage."""

    def __init__(self, url: str, token: str, *, timeout: float = 10.0, min_backoff: float = 1.0,
                 max_backoff: float = 60.0, debounce: float = 0.5, resync: float = 600.0) -> None:
        self.url = websocket_url(url)
        self._token = token
        self.timeout = timeout  # bound on each step: connect, auth, each command
        self.min_backoff, self.max_backoff = min_backoff, max_backoff
        self.debounce = debounce  # registry events come in bursts: one fetch per burst
        self.resync = resync  # fetch again this often even without events
        self.terms: tuple[str, ...] = ()
        self.status = "not connected yet"  # "connected", "token ...", or why the last try failed
        self.connected = False
        self.fetches = 0  # completed fetches (diagnostics, tests)
        self._warned = False
        self._task: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._dirty = asyncio.Event()

    def current(self) -> tuple[str, ...]:
        """The names known now; what a command adds to its keyterms."""
        return self.terms

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="home assistant names")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel(self._task)
            self._task = None

    async def fetch_once(self) -> tuple[list[Named], list[Named]]:
        """Connect, authenticate, read the names, disconnect (for `wyoming-flux check`)."""
        async with aiohttp.ClientSession() as http, self._connect(http) as ws:
            reader = asyncio.create_task(self._read(ws))
            try:
                return await self._fetch(ws)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    # ------------------------------------------------------------ connection life

    async def _run(self) -> None:
        delay = self.min_backoff
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    await self._serve(http)
                    problem = "Home Assistant closed the connection"
                except HassAuthError as err:
                    # The token will not get better, and each try is a failed login (and a notification) in HA.
                    self.connected, self.status = False, f"Home Assistant {err}"
                    _LOGGER.warning("Home Assistant at %s %s (check --hass-token-file or HASS_TOKEN); commands go on "
                                    "without names until the server restarts with another token", self.url, err)
                    return
                except (aiohttp.ClientError, OSError, TimeoutError, HassProtocolError, ValueError) as err:
                    problem = f"Home Assistant at {self.url} is unreachable: {_describe(err)}"
                if self.connected:
                    delay = self.min_backoff  # it worked a moment ago: try again soon
                self.connected = False
                self.status = problem
                if not self._warned:
                    self._warned = True
                    _LOGGER.warning("%s; commands go on with the names known so far (%d), retrying in the "
                                    "background", problem, len(self.terms))
                else:
                    _LOGGER.debug("%s; retrying in %.0fs", problem, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)

    @contextlib.asynccontextmanager
    async def _connect(self, http: aiohttp.ClientSession):  # type: ignore[no-untyped-def]
        async with asyncio.timeout(self.timeout):
            ws = await http.ws_connect(self.url, heartbeat=30.0, max_msg_size=MAX_MESSAGE_BYTES,
                                       timeout=aiohttp.ClientWSTimeout(ws_close=self.timeout))
        try:
            async with asyncio.timeout(self.timeout):
                await self._authenticate(ws)
            yield ws
        finally:
            await ws.close()

    async def _authenticate(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        first = await _receive(ws)
        if first.get("type") != "auth_required":
            raise HassProtocolError(f"expected auth_required, got {first.get('type')!r}")
        await ws.send_json({"type": "auth", "access_token": self._token})
        answer = await _receive(ws)
        if answer.get("type") == "auth_invalid":
            with contextlib.suppress(TimeoutError):  # let HA close first: it is still recording the failed login
                async with asyncio.timeout(2.0):
                    await ws.receive()
            raise HassAuthError
        if answer.get("type") != "auth_ok":
            raise HassProtocolError(f"expected auth_ok, got {answer.get('type')!r}")

    async def _serve(self, http: aiohttp.ClientSession) -> None:
        async with self._connect(http) as ws:
            reader = asyncio.create_task(self._read(ws))
            try:
                for event_type in WATCHED_EVENTS:  # before the fetch, so no change slips between the two
                    await self._call(ws, "subscribe_events", event_type=event_type)
                await self._refresh(ws)
                if not self.connected:
                    _LOGGER.info("Home Assistant names: %s from %s", count(len(self.terms), "keyterm"), self.url)
                self.connected, self._warned, self.status = True, False, "connected"
                while not reader.done():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.resync):
                            await _first(self._dirty.wait(), reader)
                    if reader.done():
                        break
                    await asyncio.sleep(self.debounce)
                    await self._refresh(ws)
                reader.result()  # a reader failure is this connection's failure
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
                self._pending.clear()

    async def _refresh(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._dirty.clear()
        areas, entities = await self._fetch(ws)
        self.terms = tuple(keyterms_from_names(areas, entities))
        self.fetches += 1
        _LOGGER.debug("Home Assistant names: %s, %s -> %s", count(len(areas), "area"),
                      count(len(entities), "exposed entity", "exposed entities"), count(len(self.terms), "keyterm"))

    async def _fetch(self, ws: aiohttp.ClientWebSocketResponse) -> tuple[list[Named], list[Named]]:
        areas = await self._call(ws, "config/area_registry/list")
        exposed = (await self._call(ws, "homeassistant/expose_entity/list")).get("exposed_entities") or {}
        states = await self._call(ws, "get_states")
        ids = [s.get("entity_id") for s in states if isinstance(s, dict) and (exposed.get(s.get("entity_id")) or {}).get(ASSISTANT)]
        entries = await self._call(ws, "config/entity_registry/get_entries", entity_ids=ids) if ids else {}
        if not (isinstance(areas, list) and isinstance(exposed, dict) and isinstance(states, list)
                and isinstance(entries, dict)):
            raise HassProtocolError("unexpected answer shapes from Home Assistant")
        return names_from(areas, exposed, states, entries)

    # ------------------------------------------------------------ messages

    async def _call(self, ws: aiohttp.ClientWebSocketResponse, kind: str, **data: Any) -> Any:
        message_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        try:
            await ws.send_json({"id": message_id, "type": kind, **data})
            async with asyncio.timeout(self.timeout):
                return await future
        finally:
            self._pending.pop(message_id, None)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Results go to their callers, events mark the names stale; returns when the socket closes."""
        try:
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                payload = message.json()
                for item in payload if isinstance(payload, list) else [payload]:  # HA may coalesce messages
                    self._dispatch(item)
            if ws.exception() is not None:
                raise HassProtocolError(f"connection failed: {_describe(ws.exception())}")
        finally:  # a caller waiting for an answer learns at once that none will come
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(HassProtocolError("the connection closed"))

    def _dispatch(self, item: Any) -> None:
        if not isinstance(item, dict):
            return
        if item.get("type") == "event":
            self._dirty.set()
            return
        future = self._pending.get(item.get("id"))  # type: ignore[arg-type]
        if future is None or future.done() or item.get("type") != "result":
            return
        if item.get("success"):
            future.set_result(item.get("result"))
        else:
            error = item.get("error") or {}
            if error.get("code") == "unauthorized":  # the list of exposed entities is an admin API
                future.set_exception(HassAuthError("accepted the token, but its user is not an administrator"))
            else:
                future.set_exception(HassProtocolError(f"{error.get('code', 'error')}: {error.get('message', '')}"))


async def _receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive()
    if message.type is not aiohttp.WSMsgType.TEXT:
        raise HassProtocolError("the connection closed during authentication")
    payload = message.json()
    if not isinstance(payload, dict):
        raise HassProtocolError("unexpected message during authentication")
    return payload


async def _first(wait: Any, task: asyncio.Task[None]) -> None:
    """Wait for `wait` (a coroutine) or for `task` to finish, whichever comes first."""
    waiter = asyncio.ensure_future(wait)
    try:
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


def _describe(err: BaseException | None) -> str:
    return str(err) or type(err).__name__


NamesSource = Callable[[], tuple[str, ...]]
