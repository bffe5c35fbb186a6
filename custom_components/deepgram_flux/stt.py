"""The Deepgram Flux speech-to-text entity: streams the pipeline's audio and returns on Flux's EndOfTurn (or,
for a language the Flux model does not speak, on Nova-3's endpointing)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable
from typing import Any

from homeassistant.components import stt
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from wyoming_flux import (
    AudioBuffer,
    AudioFormatError,
    Ending,
    FluxAuthError,
    TurnRequest,
    TurnResult,
    TurnSession,
    answer_with_fallback,
    cancel,
    check_format,
    choose_model,
    unserved_language,
)

from . import DeepgramFluxConfigEntry, default_price, entry_models, options_with_defaults
from .const import CONF_FALLBACK_ENTITY
from .device import device_info
from .fallback import FALLBACK_TIMEOUT, EntityFallback, fallback_entity_id
from .repairs import clear_issues, raise_issue

_LOGGER = logging.getLogger(__name__)


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
        """Stream the audio to Flux as it comes; return as soon as the turn is decided."""
        runtime = self._entry.runtime_data
        fallback_id = fallback_entity_id(options_with_defaults(self._entry).get(CONF_FALLBACK_ENTITY))
        capped = runtime.usage.cap_reached()
        if capped:  # at once, no Flux stream: the fallback answers, or the command fails; the repair issue says why
            _LOGGER.error("Deepgram Flux: the monthly cap of %g audio minutes is reached; %s until the month's end "
                          "or a higher cap in the options", runtime.usage.cap_minutes,
                          "the fallback answers" if fallback_id else "commands fail")
            if not fallback_id:
                runtime.usage.record(None)  # a command all the same: the sensor counts it
                return stt.SpeechResult(None, stt.SpeechResultState.ERROR)
        model = choose_model(self._models, None, metadata.language)
        if model is None:  # never a transcript in the wrong language
            _LOGGER.error("Deepgram Flux: %s", unserved_language(
                self._models, metadata.language, nova_off="the setting “Nova-3 for other languages” turned off",
                model_option="the model"))
            runtime.usage.record(None)
            return stt.SpeechResult(None, stt.SpeechResultState.ERROR)
        request = TurnRequest(model, metadata.language, tuple(runtime.keyterms.terms()))
        started = asyncio.get_running_loop().time()
        # With a fallback, the command's audio is kept from its first chunk; while Flux is down it skips Flux.
        buffer = AudioBuffer(runtime.session_config.max_command_seconds) if fallback_id else None
        session = None
        if not capped and (buffer is None or not runtime.health.skip_flux()):
            session = TurnSession(
                async_get_clientsession(self.hass), runtime.session_config, request, int(metadata.sample_rate)
            )
            session.start()
        feeder = asyncio.create_task(self._feed(session, buffer, metadata, stream))
        try:
            result = await session.wait() if session is not None else None
            if fallback_id and buffer is not None:
                replay = EntityFallback(self.hass, fallback_id, metadata).replay
                result = await answer_with_fallback(result, buffer, replay, fallback_timeout=FALLBACK_TIMEOUT,
                                                    health=runtime.health, started=started)
            assert result is not None
        finally:
            # The turn is decided: stop reading the pipeline's stream (HA does not close it for us).
            await cancel(feeder)
            # Closing the Flux stream (CloseStream, then Flux's close) is a network round trip the user must
            # not wait for: it runs after the answer, as a task the entry cancels on unload.
            if session is not None:
                self._entry.async_create_background_task(self.hass, session.aclose(), "deepgram_flux close stream")
        self._record(metadata, model.name, result)
        runtime.usage.record(result, default_price(model, metadata.language))
        return self._speech_result(result)

    async def _feed(self, session: TurnSession | None, buffer: AudioBuffer | None, metadata: stt.SpeechMetadata,
                    stream: AsyncIterable[bytes]) -> None:
        """Feed Flux and keep the audio for the fallback (while a fallback may still need it)."""
        rate, width, channels = int(metadata.sample_rate), int(metadata.bit_rate) // 8, int(metadata.channel)
        try:
            check_format(rate, width, channels)
            async for chunk in stream:
                if buffer is not None:
                    buffer.append(chunk, rate, width, channels)
                if session is not None:
                    session.feed(chunk, rate, width, channels)
                    if session.done and buffer is None:
                        return
        except AudioFormatError as err:
            _LOGGER.error("Audio format not supported: %s", err)
            if buffer is not None:
                buffer.chunks.clear()
                buffer.end()
            if session is not None:
                await session.aclose()
            return
        if buffer is not None:
            buffer.end()
        if session is not None:
            await session.finish()  # the stream ended before Flux did: finalize on what was heard

    def _speech_result(self, result: TurnResult) -> stt.SpeechResult:
        if result.fallback:
            _LOGGER.warning("Deepgram Flux could not answer (%s); the fallback did", result.error or "stream broke")
            if result.error is not None:  # a key or credit problem still needs the user
                raise_issue(self.hass, self._entry.entry_id, self._entry.title, result.error)
                if isinstance(result.error, FluxAuthError):
                    self._entry.async_start_reauth(self.hass)
            return stt.SpeechResult(result.text, stt.SpeechResultState.SUCCESS)
        if result.ended_by in (Ending.ERROR, Ending.CANCELLED):
            error = result.error
            _LOGGER.error("Deepgram Flux failed: %s", error)
            if error is not None:
                raise_issue(self.hass, self._entry.entry_id, self._entry.title, error)
            if isinstance(error, FluxAuthError):
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
