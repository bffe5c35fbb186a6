"""Early answers: is this a complete command? Home Assistant's own default conversation agent knows ("turn on the
kitchen light" is HassTurnOn with every slot matched; "set a timer" is nothing yet), asked in process.

It is a dry run: the agent's debug recognition (what the Assist debugger's `conversation/agent/homeassistant/debug`
WebSocket command calls), which never executes an intent or a trigger and never touches a chat log. That method
is not a stable public API: every part of the ask is guarded, and anything missing or failing is "don't know",
so a command then ends as it would without the check. The core's CachedCompletion bounds, caches and never
raises; this module only knows how to ask Home Assistant.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from homeassistant.core import Context, HomeAssistant
from homeassistant.util import language as language_util

from wyoming_flux import CachedCompletion, complete_from_debug

_LOGGER = logging.getLogger(__name__)

# Any words load a language's sentences (the first ask in a language takes 0.1-1 s; later ones milliseconds).
# Not empty: older releases' fuzzy matcher divides by the number of words.
WARM_TEXT = "hello"


# Runs a coroutine as a task the config entry cancels on unload: (coroutine, name).
BackgroundTasks = Callable[[Coroutine[Any, Any, None], str], object]


class AssistCompletion:
    """Home Assistant's default conversation agent as the completion check of the entry's commands."""

    def __init__(self, hass: HomeAssistant, spawn: BackgroundTasks) -> None:
        self._hass = hass
        self._spawn = spawn
        self._warm: set[str] = set()  # languages whose sentences are loaded, or loading
        self.check = CachedCompletion(self.recognise, self.ready)

    def _agent(self) -> Any:
        """The default agent, or None while conversation is not set up (nothing is created by asking)."""
        if "conversation" not in self._hass.config.components:
            return None
        try:
            from homeassistant.components.conversation.agent_manager import get_agent_manager

            agent = get_agent_manager(self._hass).default_agent
        except Exception:  # an internal that moved: no check, commands end as without it
            return None
        return agent if callable(getattr(agent, "async_debug_recognize", None)) else None

    def ready(self) -> bool:
        return self._agent() is not None

    @property
    def languages(self) -> list[str]:
        """The languages whose sentences were loaded (or are loading) for early answers."""
        return sorted(self._warm)

    def _language(self, agent: Any, language: str | None) -> str | None:
        """The command's language if the agent has sentences for it (otherwise its answer would be "nothing
        recognised", which would hold every command as unfinished)."""
        language = language or self._hass.config.language
        return language if language_util.matches(language, agent.supported_languages) else None

    async def recognise(self, text: str, language: str | None) -> bool | None:
        """True: the words are a complete command; False: not; None: don't know (no agent, no sentences for the
        language). Raising is fine too: CachedCompletion turns it into "don't know"."""
        agent = self._agent()
        if agent is None or (language := self._language(agent, language)) is None:
            return None
        from homeassistant.components.conversation.models import ConversationInput

        # Built as the debug WebSocket command builds it; only the fields this release has (all but text,
        # context, language and agent are optional there).
        given = {"text": text, "context": Context(), "conversation_id": None, "device_id": None,
                 "satellite_id": None, "language": language, "agent_id": agent.entity_id}
        names = {item.name for item in dataclasses.fields(ConversationInput)}
        result = await agent.async_debug_recognize(
            ConversationInput(**{key: value for key, value in given.items() if key in names}))
        return complete_from_debug(result)

    def warm(self, language: str | None) -> None:
        """Load a language's sentences in the background, once, so that the first command in it gets an answer
        within the check's bound."""
        language = language or self._hass.config.language
        if language in self._warm or not self.ready():
            return
        self._warm.add(language)
        self._spawn(self._warm_up(language), "deepgram_flux completion warm-up")

    async def _warm_up(self, language: str) -> None:
        try:
            await self.recognise(WARM_TEXT, language)
        except Exception as err:  # the next command tries again
            self._warm.discard(language)
            _LOGGER.debug("Loading Home Assistant's %s sentences failed: %s", language, type(err).__name__)

    def warm_pipelines(self, stt_entity_id: str) -> None:
        """Warm the languages of the Assist pipelines that use this speech-to-text entity."""
        if "assist_pipeline" not in self._hass.config.components:
            return
        try:
            from homeassistant.components.assist_pipeline import async_get_pipelines

            languages = {p.stt_language for p in async_get_pipelines(self._hass) if p.stt_engine == stt_entity_id}
        except Exception:  # an internal that moved: each command warms its own language instead
            return
        for language in languages:
            self.warm(language)

    async def aclose(self) -> None:
        await self.check.aclose()

