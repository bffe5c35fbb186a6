"""The Deepgram Flux speech-to-text entity: streams the pipeline's audio and returns on Flux's EndOfTurn (or,
for a language the Flux model does not speak, on Nova-3's endpointing)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable
from typing import Any

from homeassistant.components import stt
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.start import async_at_started

from wyoming_flux import (
    Command,
    CommandRefused,
    CommandSetup,
    Ending,
    Fallback,
    DeepgramAuthError,
    TurnResult,
    Wording,
    cancel,
)

from .entry import DeepgramFluxConfigEntry, default_price, entry_models, options_with_defaults
from .const import CONF_FALLBACK_ENTITY
from .device import device_info
from .fallback import FALLBACK_TIMEOUT, EntityFallback, fallback_entity_id
from .repairs import clear_issues, raise_issue

_LOGGER = logging.getLogger(__name__)

# What a refusal names: the integration's option labels, not the server's flags.
_WORDING = Wording(nova_off="the setting “Nova-3 for other languages” turned off", model_option="the model")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DeepgramFluxConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the speech-to-text entity."""
    async_add_entities([DeepgramFluxSTT(entry)])


class DeepgramFluxSTT(stt.SpeechToTextEntity):
    """Flux speech-to-text, ending the command on Flux's own EndOfTurn."""

    _attr_has_entity_name = True
    _attr_name = None

    def __init__(self, entry: DeepgramFluxConfigEntry) -> None:
        self._entry = entry
        self._models = entry_models(entry.data)
        self._attr_unique_id = f"{entry.entry_id}-stt"
        self._attr_device_info = device_info(entry)

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        # Early answers: the first ask in a language loads its sentences (0.1-1 s); the pipelines' languages
        # load once Home Assistant has started (then conversation and assist_pipeline are set up).
        if self._entry.runtime_data.completion is not None:
            self.async_on_remove(async_at_started(self.hass, self._warm_pipelines))

    @callback
    def _warm_pipelines(self, _hass: HomeAssistant) -> None:
        if (completion := self._entry.runtime_data.completion) is not None:
            completion.warm_pipelines(self.entity_id)

    @property
    def supported_languages(self) -> list[str]:
        return list(dict.fromkeys(code for model in self._models for code in model.languages))

    @property
    def supported_formats(self) -> list[stt.AudioFormats]:
        return [stt.AudioFormats.WAV]

    @property
    def supported_codecs(self) -> list[stt.AudioCodecs]:
        return [stt.AudioCodecs.PCM]

    @property
    def supported_bit_rates(self) -> list[stt.AudioBitRates]:
        return [stt.AudioBitRates.BITRATE_16]

    @property
    def supported_sample_rates(self) -> list[stt.AudioSampleRates]:
        return [stt.AudioSampleRates.SAMPLERATE_16000]

    @property
    def supported_channels(self) -> list[stt.AudioChannels]:
        return [stt.AudioChannels.CHANNEL_MONO]

    @property
    def audio_processing(self) -> stt.SpeechAudioProcessing:
        # Flux mode: HA's VAD stays off and Flux ends the turn. Auto gain helps quiet far-field microphones;
        # noise suppression is declined because its artefacts hurt a neural recogniser trained on noisy audio.
        return stt.SpeechAudioProcessing(
            requires_external_vad=not self._entry.runtime_data.session_config.end_on_flux_eot,
            prefers_auto_gain_enabled=True,
            prefers_noise_reduction_enabled=False,
        )

    async def async_process_audio_stream(
        self, metadata: stt.SpeechMetadata, stream: AsyncIterable[bytes]
    ) -> stt.SpeechResult:
        """Stream the audio to Deepgram as it comes; return as soon as the command is decided."""
        runtime = self._entry.runtime_data
        fallback_id = fallback_entity_id(options_with_defaults(self._entry).get(CONF_FALLBACK_ENTITY))
        capped = runtime.usage.cap_reached()
        if capped:  # at once, no stream: the fallback answers, or the command fails; the repair issue says why
            runtime.usage.log_capped(bool(fallback_id))
            if not fallback_id:
                runtime.usage.record(None)  # a command all the same: the sensor counts it
                return stt.SpeechResult(None, stt.SpeechResultState.ERROR)
        completion = runtime.completion
        if completion is not None:
            completion.warm(metadata.language)  # once per language; a no-op after
        setup = CommandSetup(runtime.session_config, tuple(self._models), async_get_clientsession(self.hass),
                             runtime.health, wording=_WORDING,
                             completion=completion.check if completion is not None else None,
                             on_resumed=runtime.count_resumed)
        rate, width, channels = int(metadata.sample_rate), int(metadata.bit_rate) // 8, int(metadata.channel)
        try:
            request = setup.request(metadata.language, keyterms=runtime.keyterms.terms())
            fallback = (Fallback(EntityFallback(self.hass, fallback_id, metadata).replay, FALLBACK_TIMEOUT)
                        if fallback_id else None)
            command = Command(setup, request, rate, width, channels, fallback=fallback, skip_deepgram=capped)
        except CommandRefused as err:  # never a transcript in the wrong language, nothing streamed
            _LOGGER.error("Deepgram: %s", err)
            runtime.usage.record(None)
            return stt.SpeechResult(None, stt.SpeechResultState.ERROR)
        feeder = asyncio.create_task(self._feed(command, stream))
        try:
            result = await command.result()
        finally:
            # The command is decided: stop reading the pipeline's stream (HA does not close it for us).
            await cancel(feeder)
            # Closing the stream (CloseStream, then Deepgram's close) is a network round trip the user must not
            # wait for: it runs after the answer, as a task the entry cancels on unload.
            self._entry.async_create_background_task(self.hass, command.aclose(), "deepgram_flux close stream")
        self._record(metadata, request.model.name, result)
        runtime.usage.record(result, default_price(request.model, metadata.language))
        return self._speech_result(result)

    @staticmethod
    async def _feed(command: Command, stream: AsyncIterable[bytes]) -> None:
        """Feed the command as the pipeline's audio comes; its end asks Deepgram for the final text."""
        try:
            async for chunk in stream:
                command.feed(chunk)
                if command.decided:
                    return
        except CommandRefused as err:
            _LOGGER.error("%s", err)
            await command.aclose()
            return
        await command.finish()

    def _speech_result(self, result: TurnResult) -> stt.SpeechResult:
        if result.fallback:
            _LOGGER.warning("Deepgram Flux could not answer (%s); the fallback did", result.error or "stream broke")
            if result.error is not None:  # a key or credit problem still needs the user
                raise_issue(self.hass, self._entry.entry_id, self._entry.title, result.error)
                if isinstance(result.error, DeepgramAuthError):
                    self._entry.async_start_reauth(self.hass)
            return stt.SpeechResult(result.text, stt.SpeechResultState.SUCCESS)
        if result.ended_by in (Ending.ERROR, Ending.CANCELLED):
            error = result.error
            _LOGGER.error("Deepgram Flux failed: %s", error)
            if error is not None:
                raise_issue(self.hass, self._entry.entry_id, self._entry.title, error)
            if isinstance(error, DeepgramAuthError):
                self._entry.async_start_reauth(self.hass)
            return stt.SpeechResult(None, stt.SpeechResultState.ERROR)
        clear_issues(self.hass, self._entry.entry_id)
        return stt.SpeechResult(result.text, stt.SpeechResultState.SUCCESS)

    def _record(self, metadata: stt.SpeechMetadata, model: str, result: TurnResult) -> None:
        """Keep a short history for diagnostics: figures, never the words or the key."""
        def ms(seconds: float | None) -> int | None:
            return None if seconds is None else round(seconds * 1000)

        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "language": metadata.language,
            "model": model,
            "audio_seconds": result.audio_seconds,
            "ended_by": result.ended_by.value,
            "trigger": result.trigger,
            "degraded": result.degraded,
            "fallback": result.fallback,  # the fallback entity answered, not Flux
            "text_chars": len(result.text),
            "connect_ms": ms(result.connect_seconds),
            "first_text_ms": ms(result.first_text_seconds),
            "finalize_ms": ms(result.finalize_seconds),
            "total_ms": ms(result.elapsed_seconds),
            "error_code": result.error.code if result.error else None,
            "notes": list(result.notes),  # reasons (degraded, Configure refused, language), never the words
        }
        runtime = self._entry.runtime_data
        runtime.history.append(entry)
        if result.error is not None:
            runtime.counters[f"error:{result.error.code}"] += 1
        for note in result.notes:
            runtime.counters[note.split(":", 1)[0]] += 1
        _LOGGER.debug("Command done: %s", entry)
