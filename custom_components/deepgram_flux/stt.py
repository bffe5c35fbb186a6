"""The Deepgram Flux speech-to-text entity: streams the pipeline's audio and returns on Flux's EndOfTurn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable
from typing import Any

from homeassistant.components import stt
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from wyoming_flux.audio import AudioFormatError
from wyoming_flux.errors import FluxAuthError
from wyoming_flux.models import FLUX_MODELS
from wyoming_flux.request import TurnRequest, TurnResult
from wyoming_flux.session import TurnSession
from wyoming_flux.turn import Ending

from . import DeepgramFluxConfigEntry
from .const import CONF_MODEL
from .device import device_info
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
        self._model = FLUX_MODELS[entry.data[CONF_MODEL]]
        self._attr_unique_id = f"{entry.entry_id}-stt"
        self._attr_device_info = device_info(entry)

    @property
    def supported_languages(self) -> list[str]:
        return list(self._model.languages)

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
        if runtime.usage.cap_reached():  # at once: no Flux stream, no audio read; the repair issue says why
            _LOGGER.error("Deepgram Flux: the monthly cap of %g audio minutes is reached; commands fail until the "
                          "month's end or a higher cap in the options", runtime.usage.cap_minutes)
            return stt.SpeechResult(None, stt.SpeechResultState.ERROR)
        request = TurnRequest(self._model, metadata.language, tuple(runtime.keyterms.terms()))
        session = TurnSession(
            async_get_clientsession(self.hass), runtime.session_config, request, int(metadata.sample_rate)
        )
        session.start()
        feeder = asyncio.create_task(self._feed(session, metadata, stream))
        try:
            result = await session.wait()
        finally:
            # The turn is decided: stop reading the pipeline's stream (HA does not close it for us).
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
            # Closing the Flux stream (CloseStream, then Flux's close) is a network round trip the user must
            # not wait for: it runs after the answer, as a task the entry cancels on unload.
            self._entry.async_create_background_task(self.hass, session.aclose(), "deepgram_flux close stream")
        self._record(metadata, result)
        return self._speech_result(result)

    async def _feed(self, session: TurnSession, metadata: stt.SpeechMetadata, stream: AsyncIterable[bytes]) -> None:
        rate, width, channels = int(metadata.sample_rate), int(metadata.bit_rate) // 8, int(metadata.channel)
        try:
            async for chunk in stream:
                session.feed(chunk, rate, width, channels)
                if session.done:
                    return
        except AudioFormatError as err:
            _LOGGER.error("Audio format not supported: %s", err)
            await session.aclose()
            return
        await session.finish()  # the stream ended before Flux did: finalize on what was heard

    def _speech_result(self, result: TurnResult) -> stt.SpeechResult:
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

    def _record(self, metadata: stt.SpeechMetadata, result: TurnResult) -> None:
        """Keep a short history for diagnostics: figures, never the words or the key."""
        def ms(seconds: float | None) -> int | None:
            return None if seconds is None else round(seconds * 1000)

        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "language": metadata.language,
            "model": self._model.name,
            "audio_seconds": result.audio_seconds,
            "ended_by": result.ended_by.value,
            "trigger": result.trigger,
            "degraded": result.degraded,
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
        runtime.usage.record(result)
        if result.error is not None:
            runtime.counters[f"error:{result.error.code}"] += 1
        for note in result.notes:
            runtime.counters[note.split(":", 1)[0]] += 1
        _LOGGER.debug("Command done: %s", entry)
