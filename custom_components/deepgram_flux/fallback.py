"""The integration's fallback: another speech-to-text entity hears the buffered command again when Flux cannot
answer. The decision (buffer, Flux health, bounds) is the shared core's `wyoming_flux.turn.fallback`."""

from __future__ import annotations

import contextvars
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import voluptuous as vol
from homeassistant.components import stt
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.selector import EntitySelector, EntitySelectorConfig

from wyoming_flux import AudioBuffer, FallbackError, base_language

from .const import CONF_FALLBACK_ENTITY, DOMAIN

_LOGGER = logging.getLogger(__name__)

FALLBACK_TIMEOUT = 10.0  # seconds the fallback entity may take after the audio ended (plus 3)

# Set while a command is replayed: a fallback that is itself a Flux entity must not chain to its own fallback.
_REPLAYING: contextvars.ContextVar[bool] = contextvars.ContextVar("deepgram_flux_replaying", default=False)


def fallback_entity_id(entity_id: str | None) -> str | None:
    """The fallback to use for this command, or None (none set, or this command is already a replay)."""
    if not entity_id or _REPLAYING.get():
        return None
    return entity_id


def _own_entity_id(hass: HomeAssistant, entry_id: str) -> str | None:
    return er.async_get(hass).async_get_entity_id("stt", DOMAIN, f"{entry_id}-stt")


def fallback_schema(hass: HomeAssistant, entry_id: str) -> dict[vol.Marker, Any]:
    """The options field: any other speech-to-text entity."""
    own = _own_entity_id(hass, entry_id)
    return {vol.Optional(CONF_FALLBACK_ENTITY): EntitySelector(
        EntitySelectorConfig(domain="stt", exclude_entities=[own] if own else []))}


def valid_fallback(hass: HomeAssistant, entry_id: str, entity_id: str | None) -> bool:
    return not entity_id or (entity_id.startswith("stt.") and entity_id != _own_entity_id(hass, entry_id))


class EntityFallback:
    """Replays a command to another STT entity's `async_process_audio_stream`."""

    def __init__(self, hass: HomeAssistant, entity_id: str, metadata: stt.SpeechMetadata) -> None:
        self.hass, self.entity_id, self.metadata = hass, entity_id, metadata

    async def replay(self, buffer: AudioBuffer) -> tuple[str, str | None]:
        entity = stt.async_get_speech_to_text_entity(self.hass, self.entity_id)
        if entity is None:
            raise FallbackError(f"{self.entity_id} is not a speech-to-text entity (removed or unavailable)")
        metadata = dataclasses.replace(self.metadata, language=_language_for(entity, self.metadata.language))
        if not entity.check_metadata(metadata):
            raise FallbackError(f"{self.entity_id} does not take {self.metadata.language} 16 kHz mono audio")

        async def audio() -> AsyncIterator[bytes]:  # what was heard so far, then the rest as it comes
            async for chunk in buffer.stream():
                yield chunk.audio

        token = _REPLAYING.set(True)
        try:
            result = await entity.async_process_audio_stream(metadata, audio())
        except FallbackError:
            raise
        except Exception as err:  # another integration's bug must not become ours: the caller answers anyway
            _LOGGER.debug("Fallback entity %s raised", self.entity_id, exc_info=True)
            raise FallbackError(f"{self.entity_id} failed: {type(err).__name__}") from None
        finally:
            _REPLAYING.reset(token)
        if result.result is not stt.SpeechResultState.SUCCESS or result.text is None:
            raise FallbackError(f"{self.entity_id} answered an error")
        return result.text, self.metadata.language


def _language_for(entity: stt.SpeechToTextEntity, language: str) -> str:
    """The pipeline's language as the fallback names it: a local Whisper offers "en" where Flux has "en-US"."""
    supported = list(entity.supported_languages)
    if language in supported:
        return language
    base = base_language(language)
    same = [code for code in supported if base_language(code) == base]
    return base if base in same else (same[0] if same else language)
