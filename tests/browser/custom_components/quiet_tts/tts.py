"""A fixed clip as speech: the Assist pipeline of the browser test needs a text-to-speech step that needs no network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import homeassistant.components
from homeassistant.components.tts import Provider, TtsAudioType
from homeassistant.core import HomeAssistant

# Home Assistant's own demo clip, as MP3: the format the pipeline asks for, so no conversion (no ffmpeg) is needed.
CLIP = Path(homeassistant.components.__path__[0]) / "demo" / "tts.mp3"


def get_engine(hass: HomeAssistant, config: dict[str, Any], discovery_info: Any = None) -> Provider:
    return QuietProvider()


class QuietProvider(Provider):
    def __init__(self) -> None:
        self.name = "Quiet"

    @property
    def default_language(self) -> str:
        return "en"

    @property
    def supported_languages(self) -> list[str]:
        return ["en"]

    def get_tts_audio(self, message: str, language: str, options: dict[str, Any]) -> TtsAudioType:
        return "mp3", CLIP.read_bytes()
