"""Names from Home Assistant for the Wyoming server, read over HA's websocket API.

Home Assistant sends no names over Wyoming, so the server asks for them itself: the areas and the entities
exposed to Assist, with their aliases, refreshed when a registry changes. Commands never wait for this: they
take whatever `terms` holds at that moment (empty until the first fetch, or while HA is away).

A large home's answers (get_states of 100k entities is tens of MB) are decoded element by element in a worker
thread, keeping only the names (json_elements.py), so the event loop and the Wyoming port never wait on them
and the memory they took is returned; re-reads are at least `min_interval` apart however often HA's registries
change; everything HA sends is bounded (MAX_MESSAGE_BYTES, MAX_EVENT_BYTES).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import inspect
import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ...common.tasks import cancel
from ...common.wording import count
from ...deepgram.flux import Keyterms
from ...turn.completion import complete_from_debug
from ...turn.names import Named, add_names
from .json_elements import Element, decode_elements

_LOGGER = logging.getLogger(__name__)

ASSISTANT = "conversation"  # Assist's key in HA's exposure settings
# Exposure of a registered entity lives in its registry options, so these two events cover names, aliases,
# areas and exposure changes; a periodic refresh catches the rest (entities outside the registry).
WATCHED_EVENTS = ("entity_registry_updated", "area_registry_updated")
MAX_MESSAGE_BYTES = 32 * 1024 * 1024  # a names answer: get_states of ~100k entities; larger ones are refused
MAX_EVENT_BYTES = 64 * 1024  # a registry event is a few hundred bytes; a larger one only marks the names stale
SMALL_MESSAGE_BYTES = 64 * 1024  # decoded at once on the event loop (well under a millisecond); larger: in a thread
ENTRIES_PER_CALL = 1000  # entity registry entries asked for at once (their aliases)
# Home Assistant's default agent recognising sentences without executing anything (any authenticated user may).
RECOGNISE = "conversation/agent/homeassistant/debug"
# Large answers are decoded from UTF-8 in the worker thread too, where aiohttp can leave that to us.
_RAW_TEXT = ({"decode_text": False}
             if "decode_text" in inspect.signature(aiohttp.ClientSession.ws_connect).parameters else {})
_HEAD = re.compile(r'\s*\{\s*"id"\s*:\s*(\d+)\s*,\s*"type"\s*:\s*"(\w+)"')  # HA writes id and type first


class HassAuthError(Exception):
    """Home Assistant rejected the token, or its user may not read what is needed."""

    def __init__(self, reason: str = "rejected the token") -> None:
        super().__init__(reason)


class HassProtocolError(Exception):
    """Home Assistant answered something this client does not understand, or a command failed."""


class HassTooLargeError(HassProtocolError):
    """Home Assistant sent more than MAX_MESSAGE_BYTES in one message."""

    def __init__(self) -> None:
        super().__init__(f"sent a message of more than {MAX_MESSAGE_BYTES // (1024 * 1024)} MiB, the bound on a "
                         "names answer; names stay as they were")


class _LargeAnswer:
    """A result too large to decode on the event loop: its text, for the caller to decode in a thread."""

    def __init__(self, text: str | bytes) -> None:
        self.text = text


def _decode_answer(text: str | bytes, path: tuple[str, ...], element: Element, stop: threading.Event) -> Any:
    return decode_elements(text.decode("utf-8") if isinstance(text, bytes) else text, path, element, stop)


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


def _area(_key: str | None, area: Any) -> Named | None:
    if not isinstance(area, dict):
        return None
    aliases = area.get("aliases")
    return Named.of(area.get("name"), aliases if isinstance(aliases, list) else ())


def _exposed(_key: str | None, settings: Any) -> bool | None:
    return True if isinstance(settings, dict) and settings.get(ASSISTANT) else None


def _aliases(_key: str | None, entry: Any) -> tuple[Any, ...] | None:
    aliases = entry.get("aliases") if isinstance(entry, dict) else None
    return tuple(aliases) if isinstance(aliases, list) else None


def _exposed_state(exposed: dict[str, Any]) -> Element:
    """get_states element -> (entity id, name) of an entity exposed to Assist; nothing else is kept."""

    def keep(_key: str | None, state: Any) -> tuple[str, str] | None:
        entity_id = state.get("entity_id") if isinstance(state, dict) else None
        if not isinstance(entity_id, str) or not exposed.get(entity_id):
            return None
        attributes = state.get("attributes")
        name = attributes.get("friendly_name") if isinstance(attributes, dict) else None
        # As HA's State.name: the friendly name, else the object id with spaces.
        return entity_id, name if isinstance(name, str) and name else entity_id.partition(".")[2].replace("_", " ")

    return keep


def _pick(value: Any, path: tuple[str, ...], element: Element) -> Any:
    """As decode_elements does for a large answer, on one already decoded."""
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, list):
        return [item for v in value if (item := element(None, v)) is not None]
    if isinstance(value, dict):
        return {k: item for k, v in value.items() if (item := element(k, v)) is not None}
    return value


def _keep(_key: str | None, value: Any) -> Any:
    return value


class HassNames:
    """Keeps `terms` up to date from one Home Assistant; reconnects with backoff, warns once per outage.

    An outage ends when a connection has stayed up `stable` seconds: a Home Assistant that closes after every
    read is one outage (one warning, a backoff that keeps growing), not a warning and a reset per reconnect."""

    def __init__(self, url: str, token: str, *, timeout: float = 10.0, min_backoff: float = 1.0,
                 max_backoff: float = 60.0, debounce: float = 0.5, resync: float = 600.0,
                 min_interval: float = 5.0, stable: float = 60.0) -> None:
        self.url = websocket_url(url)
        self._token = token
        self.timeout = timeout  # bound on each step: connect, auth, each command
        self.min_backoff, self.max_backoff = min_backoff, max_backoff
        self.debounce = debounce  # registry events come in bursts: one fetch per burst
        self.resync = resync  # fetch again this often even without events
        # Re-reads start at least this far apart, and ten times as far as the last one took (a large home).
        self.min_interval = min_interval
        self.stable = stable  # seconds a connection must last to end an outage
        self._announced = False  # the names were logged since the last warning
        self._last_read: tuple[float, float] = (-1e9, 0.0)  # loop time the last read started, and its duration
        self._big_event_warned = False
        self.terms: tuple[str, ...] = ()
        self.status = "not connected yet"  # "connected", "token ...", or why the last try failed
        self.connected = False
        self.fetches = 0  # completed fetches (diagnostics, tests)
        self._warned = False
        self._task: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._dirty = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None  # authenticated and read now: recognise() asks on it
        self._no_recogniser = False  # this Home Assistant has no conversation agent to ask (until it reconnects)

    def current(self) -> tuple[str, ...]:
        """The names known now; what a command adds to its keyterms."""
        return self.terms

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="home assistant names")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel(self._task)
            self._task = None

    def recognising(self) -> bool:
        """recognise() can ask now: a connection is authenticated (names may still be loading)."""
        return self._ws is not None and not self._ws.closed and not self._no_recogniser

    async def recognise(self, text: str, language: str | None) -> bool | None:
        """Is `text` a complete command in `language` (None: Home Assistant's own)? Home Assistant's default agent
        recognises it on the names connection, a dry run: nothing is executed. None when not connected. Callers
        bound the wait (turn/completion.py); the answer shares the connection's ids with the names reads."""
        ws = self._ws
        if ws is None or not self.recognising():
            return None
        ask: dict[str, Any] = {"sentences": [text]}
        if language:
            ask["language"] = language
        try:
            answer = await self._call(ws, RECOGNISE, **ask)
        except HassProtocolError as err:
            if str(err).startswith("unknown_command") and not self._no_recogniser:
                self._no_recogniser = True  # no `conversation` loaded: asking every command would only fail again
                _LOGGER.info("Home Assistant at %s has no conversation agent to ask whether a command is complete: "
                             "commands end as without early answers", self.url)
            raise
        results = answer.get("results") if isinstance(answer, dict) else None
        return complete_from_debug(results[0]) if isinstance(results, list) and results else False

    async def fetch_once(self) -> tuple[int, int, tuple[str, ...]]:
        """Connect, authenticate, read the names, disconnect (for `wyoming-flux check`): how many areas, how many
        entities exposed to Assist, and the keyterms they make."""
        async with aiohttp.ClientSession() as http, self._connect(http) as ws:
            reader = asyncio.create_task(self._read(ws))
            try:
                areas, states = await self._fetch(ws)
                return len(areas), len(states), tuple(await self._keyterms(ws, areas, states))
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    # ------------------------------------------------------------ connection life

    async def _run(self) -> None:
        delay = self.min_backoff
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as http:
            while True:
                began = loop.time()
                try:
                    await self._serve(http)
                    problem = "Home Assistant closed the connection"
                except HassAuthError as err:
                    # The token will not get better, and each try is a failed login (and a notification) in HA.
                    self.connected, self.status = False, f"Home Assistant {err}"
                    _LOGGER.warning("Home Assistant at %s %s (check --hass-token-file or HASS_TOKEN); commands go on "
                                    "without names until the server restarts with another token", self.url, err)
                    return
                except HassTooLargeError as err:
                    problem = f"Home Assistant at {self.url} {err}"
                except (aiohttp.ClientError, OSError, TimeoutError, HassProtocolError, ValueError) as err:
                    problem = f"Home Assistant at {self.url} is unreachable: {_describe(err)}"
                except Exception as err:  # noqa: BLE001 - odd answers must not end the names for good
                    _LOGGER.debug("Unexpected failure reading names", exc_info=True)
                    problem = f"Home Assistant at {self.url} answered what we cannot read: {_describe(err)}"
                if self.connected and loop.time() - began >= self.stable:
                    delay, self._warned = self.min_backoff, False  # it worked for a while: a new outage begins
                self.connected = False
                self.status = problem
                if not self._warned:
                    self._warned, self._announced = True, False
                    _LOGGER.warning("%s; commands go on with the names known so far (%d), retrying in the "
                                    "background", problem, len(self.terms))
                else:
                    _LOGGER.debug("%s; retrying in %.0fs", problem, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)

    @contextlib.asynccontextmanager
    async def _connect(self, http: aiohttp.ClientSession):  # type: ignore[no-untyped-def]
        async with asyncio.timeout(self.timeout):
            ws = await http.ws_connect(self.url, heartbeat=30.0, max_msg_size=MAX_MESSAGE_BYTES,  # type: ignore[call-overload]
                                       timeout=aiohttp.ClientWSTimeout(ws_close=self.timeout), **_RAW_TEXT)
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
            self._ws, self._no_recogniser = ws, False  # authenticated and read: recognise() may ask now
            try:
                for event_type in WATCHED_EVENTS:  # before the fetch, so no change slips between the two
                    await self._call(ws, "subscribe_events", event_type=event_type)
                await self._refresh(ws)
                if not self._announced:  # once, and again only after an outage was warned about
                    self._announced = True
                    _LOGGER.info("Home Assistant names: %s from %s", count(len(self.terms), "keyterm"), self.url)
                self.connected, self.status = True, "connected"
                while not reader.done():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.resync):
                            await _first(self._dirty.wait(), reader)
                    if reader.done():
                        break
                    await _first(asyncio.sleep(self._next_read_in()), reader)
                    if reader.done():
                        break
                    await self._refresh(ws)
                reader.result()  # a reader failure is this connection's failure
            finally:
                self._ws = None
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
                self._pending.clear()

    def _next_read_in(self) -> float:
        """Seconds to wait before the next re-read: the debounce, and the minimum interval from the last one."""
        started, took = self._last_read
        since = asyncio.get_running_loop().time() - started
        return max(self.debounce, max(self.min_interval, 10 * took) - since)

    async def _refresh(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._dirty.clear()
        loop = asyncio.get_running_loop()
        started = loop.time()
        areas, states = await self._fetch(ws)
        self.terms = tuple(await self._keyterms(ws, areas, states))
        self._last_read = (started, loop.time() - started)
        self.fetches += 1
        _LOGGER.debug("Home Assistant names: %s, %s -> %s", count(len(areas), "area"),
                      count(len(states), "exposed entity", "exposed entities"), count(len(self.terms), "keyterm"))

    async def _fetch(self, ws: aiohttp.ClientWebSocketResponse) -> tuple[list[Named], list[tuple[str, str]]]:
        """Areas, and (entity id, name) of the entities exposed to Assist, in HA's order. Each answer is reduced
        to these as it is decoded: a large home's answers are never held whole."""
        areas = await self._call(ws, "config/area_registry/list", element=_area)
        exposed = await self._call(ws, "homeassistant/expose_entity/list", path=("exposed_entities",),
                                   element=_exposed) or {}
        if not isinstance(exposed, dict):
            raise HassProtocolError("unexpected answer shapes from Home Assistant")
        states = await self._call(ws, "get_states", element=_exposed_state(exposed))
        if not (isinstance(areas, list) and isinstance(states, list)):
            raise HassProtocolError("unexpected answer shapes from Home Assistant")
        return areas, states

    async def _keyterms(self, ws: aiohttp.ClientWebSocketResponse, areas: list[Named],
                        states: list[tuple[str, str]]) -> list[str]:
        """The keyterms, as keyterms_from_names makes them; aliases are asked for ENTRIES_PER_CALL entities at a
        time, only until the token budget is full (the first few hundred entities of a large home)."""
        keyterms = Keyterms()
        add_names(keyterms, areas)
        for start in range(0, len(states), ENTRIES_PER_CALL):
            if keyterms.full:
                break
            part = states[start:start + ENTRIES_PER_CALL]
            entries = await self._call(ws, "config/entity_registry/get_entries", element=_aliases,
                                       entity_ids=[entity_id for entity_id, _ in part])
            if not isinstance(entries, dict):
                raise HassProtocolError("unexpected answer shapes from Home Assistant")
            add_names(keyterms, entities=(Named.of(name, entries.get(entity_id, ())) for entity_id, name in part))
        return keyterms.kept

    # ------------------------------------------------------------ messages

    async def _call(self, ws: aiohttp.ClientWebSocketResponse, kind: str, path: tuple[str, ...] = (),
                    element: Element = _keep, **data: Any) -> Any:
        """The result of one command, at `path` inside it, each element of that container through `element`."""
        message_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        try:
            await ws.send_json({"id": message_id, "type": kind, **data})
            async with asyncio.timeout(self.timeout):
                answer = await future
        finally:
            self._pending.pop(message_id, None)
        if isinstance(answer, _LargeAnswer):
            stop = threading.Event()
            try:
                async with asyncio.timeout(self.timeout):
                    item = await asyncio.to_thread(_decode_answer, answer.text, ("result", *path), element, stop)
            except ValueError as err:
                raise HassProtocolError(f"unreadable answer to {kind}: {err}") from None
            finally:
                stop.set()  # timed out or cancelled: the thread stops at its next element (and lets the text go)
            del answer  # the text goes as soon as the thread is done with it
            return _result(item, ("result", *path))
        return _pick(_result(answer, ()), path, element)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Results go to their callers, events mark the names stale; returns when the socket closes."""
        failure: Exception = HassProtocolError("the connection closed")
        try:
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                if len(message.data) > SMALL_MESSAGE_BYTES:
                    self._dispatch_large(message.data)
                    continue
                payload = _loads(message.data)
                for item in payload if isinstance(payload, list) else [payload]:  # HA may coalesce messages
                    self._dispatch(item)
            error = ws.exception()
            if isinstance(error, aiohttp.WebSocketError) and error.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
                raise HassTooLargeError
            if error is not None:
                raise HassProtocolError(f"connection failed: {_describe(error)}")
        except HassProtocolError as err:
            failure = err
            raise
        finally:  # a caller waiting for an answer learns at once that none will come, and why
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(failure)

    def _dispatch(self, item: Any) -> None:
        if not isinstance(item, dict):
            return
        if item.get("type") == "event":
            self._dirty.set()
            return
        future = self._pending.get(item.get("id"))  # type: ignore[arg-type]
        if future is not None and not future.done() and item.get("type") == "result":
            future.set_result(item)

    def _dispatch_large(self, text: str | bytes) -> None:
        """A message too large to decode here: an answer goes to its caller as text, an event is not read."""
        start = text[:256]
        head = _HEAD.match(start.decode("utf-8", "replace") if isinstance(start, bytes) else start)
        if head is None:
            _LOGGER.debug("Ignoring a message of %d bytes from Home Assistant that names no id first", len(text))
            return
        message_id, kind = int(head[1]), head[2]
        if kind == "event":
            if len(text) > MAX_EVENT_BYTES and not self._big_event_warned:
                self._big_event_warned = True
                _LOGGER.warning("Home Assistant sent an event of %d bytes (more than %d KiB); such events are not "
                                "read, the names are read again all the same", len(text), MAX_EVENT_BYTES // 1024)
            self._dirty.set()
            return
        future = self._pending.get(message_id)
        if future is not None and not future.done() and kind == "result":
            future.set_result(_LargeAnswer(text))


async def _receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive()
    if message.type is not aiohttp.WSMsgType.TEXT:
        raise HassProtocolError("the connection closed during authentication")
    if len(message.data) > SMALL_MESSAGE_BYTES:
        raise HassProtocolError("unexpected large message during authentication")
    payload = _loads(message.data)
    if not isinstance(payload, dict):
        raise HassProtocolError("unexpected message during authentication")
    return payload


def _loads(data: str | bytes) -> Any:
    """A small message decoded; one HassProtocolError if it is not JSON, nested too deeply included (on Python
    3.11 a few thousand levels, well within SMALL_MESSAGE_BYTES, were a RecursionError and its traceback)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise HassProtocolError("sent a message nested too deeply") from None
    except ValueError as err:
        raise HassProtocolError(f"sent a message that is not JSON: {err}") from None


async def _first(wait: Any, task: asyncio.Task[None]) -> None:
    """Wait for `wait` (a coroutine) or for `task` to finish, whichever comes first."""
    waiter = asyncio.ensure_future(wait)
    try:
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


def _result(item: Any, path: tuple[str, ...]) -> Any:
    """A command's result (at `path` in its message), or the error it answered."""
    if not isinstance(item, dict):
        raise HassProtocolError("unexpected answer shapes from Home Assistant")
    if not item.get("success"):
        error = item.get("error")
        error = error if isinstance(error, dict) else {}
        if error.get("code") == "unauthorized":  # the list of exposed entities is an admin API
            raise HassAuthError("accepted the token, but its user is not an administrator")
        raise HassProtocolError(f"{error.get('code', 'error')}: {error.get('message', '')}")
    value: Any = item
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if path else item.get("result")


def _describe(err: BaseException | None) -> str:
    return str(err) or type(err).__name__


NamesSource = Callable[[], tuple[str, ...]]
