"""Is this a complete command? Home Assistant's own intent recogniser knows ("turn on the kitchen light" is
HassTurnOn with every slot matched; "turn on the kitchen" or "set a timer for" is not), in well under a
millisecond once warm. A command whose words are complete is answered at the first sign that the speaker
stopped (Flux's EagerEndOfTurn, a short Nova-3 endpoint) instead of at the generic end.

Each door brings its way of asking (the integration asks the default agent in process; the Wyoming server asks
over Home Assistant's WebSocket API). This module makes any of them safe for a command to wait on: answers are
bounded (a late or failed one is "don't know", and a command then ends as it would without the check), cached
per text and language, and the asks in flight are bounded too.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

_LOGGER = logging.getLogger(__name__)

ASK_TIMEOUT = 0.08  # seconds a command waits for an answer; a warm recogniser answers in about a millisecond
CACHE_SIZE = 2048  # texts remembered per checker
MAX_IN_FLIGHT = 16  # asks not yet answered; beyond, "don't know" at once
EARLY_TRIGGER = "eager_complete"  # TurnResult.trigger of a command answered early because its words were complete

Recognise = Callable[[str, str | None], Awaitable[bool | None]]  # (text, language) -> complete / not / don't know


class CompletionCheck(Protocol):
    """What a command asks: whether its words so far are a complete command in its language."""

    def ready(self) -> bool:
        """The check can answer now (e.g. Home Assistant is connected); otherwise commands run as without it."""

    async def complete(self, text: str, language: str | None) -> bool | None:
        """True: complete; False: not a complete command; None: don't know (late, failed, unavailable)."""


def _key(text: str, language: str | None) -> tuple[str, str]:
    words = re.sub(r"[^\w\s']", " ", text.casefold()).split()  # "Turn on the light." == "turn on the light"
    return (language or "").casefold(), " ".join(words)


class CachedCompletion:
    """A CompletionCheck around a door's `recognise`: bounded, cached, never raising.

    An ask that outlives ASK_TIMEOUT keeps running in the background and fills the cache (the first ask in a
    language loads that language's intents, ~0.1-0.3 s): the next command with the same words gets the answer."""

    def __init__(self, recognise: Recognise, ready: Callable[[], bool] = lambda: True, *,
                 timeout: float = ASK_TIMEOUT) -> None:
        self._recognise = recognise
        self._ready = ready
        self.timeout = timeout
        self._cache: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._asking: dict[tuple[str, str], asyncio.Task[bool | None]] = {}
        self.failures = 0  # asks that raised or timed out (diagnostics)

    def ready(self) -> bool:
        try:
            return bool(self._ready())
        except Exception:  # a door's readiness probe must never fail a command
            return False

    async def complete(self, text: str, language: str | None) -> bool | None:
        key = _key(text, language)
        if not key[1]:
            return False
        if (known := self._cache.get(key)) is not None:
            self._cache.move_to_end(key)
            return known
        task = self._asking.get(key)
        if task is None:
            if len(self._asking) >= MAX_IN_FLIGHT or not self.ready():
                return None
            task = asyncio.get_running_loop().create_task(self._ask(key, text, language), name="completion check")
            self._asking[key] = task
            task.add_done_callback(lambda _task: self._asking.pop(key, None))
        done, _ = await asyncio.wait([task], timeout=self.timeout)
        if not done:
            self.failures += 1
            return None
        return task.result()

    async def _ask(self, key: tuple[str, str], text: str, language: str | None) -> bool | None:
        try:
            answer = await self._recognise(text, language)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a failed ask is "don't know": the command ends as it would without the check
            self.failures += 1
            _LOGGER.debug("Completion check failed: %s", type(err).__name__)
            return None
        if answer is not None:
            self._cache[key] = answer
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return answer

    async def aclose(self) -> None:
        """Cancel the asks still running (on shutdown or unload)."""
        tasks = list(self._asking.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def complete_from_debug(result: object) -> bool:
    """Home Assistant's answer for one sentence (its default agent's debug recognition: null, or a dict with
    `match`) as "a complete command": an intent with every slot matched, or a sentence trigger."""
    return isinstance(result, dict) and result.get("match") is True
