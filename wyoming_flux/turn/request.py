"""What a command runs with (SessionConfig), asks for (TurnRequest) and gets (TurnResult), and the Flux query
that follows from them. Shared by the session, the warm pool's owner, the Wyoming server and the integration."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..deepgram.endpoints import listen_urls
from ..deepgram.errors import DeepgramError
from ..deepgram.models import Model
from ..deepgram.nova import DEFAULT_ENDPOINTING_MS, DEFAULT_UTTERANCE_END_MS, KEEP_ALIVE_SECONDS
from .state import Ending


@dataclass(frozen=True)
class SessionConfig:
    """Connection settings and bounds shared by every command of a server or config entry."""

    url: str
    api_key: str = field(repr=False)
    eot_threshold: float | None = None
    eager_eot_threshold: float | None = None
    eot_timeout_ms: int | None = None
    keyterms: tuple[str, ...] = ()
    end_on_flux_eot: bool = True  # False: the client's end of audio decides (Home Assistant's VAD mode)
    no_speech_timeout: float = 8.0
    max_command_seconds: float = 30.0
    connect_timeout: float = 3.0
    finalize_timeout: float = 2.0  # end asked for -> final text
    stall_timeout: float = 3.0  # no message at all from a Flux stream that should be talking
    keep_alive_seconds: float = KEEP_ALIVE_SECONDS  # Nova-3: a KeepAlive after this long with no audio sent
    mip_opt_out: bool = False  # Deepgram's Model Improvement Program opt-out
    tags: tuple[str, ...] = ()  # Deepgram usage-report labels
    endpointing_ms: int = DEFAULT_ENDPOINTING_MS  # Nova-3: silence that ends a command
    utterance_end_ms: int = DEFAULT_UTTERANCE_END_MS  # Nova-3: the word-timing backup when speech_final never comes
    early_answer: bool = True  # with a completion check: answer a complete command at the first sign of its end

    @classmethod
    def from_values(cls, url: str, api_key: str, values: Mapping[str, Any]) -> SessionConfig:
        """The config from named settings, each under its field's name (the CLI's flags, the integration's
        options): both doors build it here, so a new setting reaches both. Absent, None or empty values keep
        their defaults; the rest are converted to the field's type."""
        settings: dict[str, Any] = {}
        for item in fields(cls):
            value = values.get(item.name)
            if item.name in ("url", "api_key") or value is None or value == "":
                continue
            kind = str(item.type)
            convert = (tuple if kind.startswith("tuple") else bool if kind == "bool" else
                       int if kind.startswith("int") else float)
            settings[item.name] = convert(value)
        return cls(url=url, api_key=api_key, **settings)

    @property
    def eot_timeout(self) -> float:
        return (self.eot_timeout_ms or 5000) / 1000

    @property
    def nova_url(self) -> str:
        """Nova-3's /v1/listen on the host `url` names (a region's, or a self-hosted deployment's)."""
        return listen_urls(self.url)[1]


@dataclass(frozen=True)
class TurnRequest:
    """What one command asks for."""

    model: Model
    language: str | None = None
    keyterms: tuple[str, ...] = ()  # per-command terms, after the configured ones


@dataclass
class TurnResult:
    text: str
    ended_by: Ending
    language: str | None = None
    trigger: str | None = None  # Flux's own EndOfTurn trigger, when one came
    degraded: bool = False  # Flux failed or went quiet; the text is the best heard, not a confirmed final
    error: DeepgramError | None = None
    audio_seconds: float = 0.0  # of the client's audio, heard by Flux or by the fallback
    # Seconds of audio Flux received for this command, on every stream it opened (a warm socket's replay too),
    # silence we sent included: what Deepgram bills. The one count of billed audio: the server's
    # audio_sent_seconds metric and the integration's usage both add exactly this.
    billed_seconds: float = 0.0
    request_id: str | None = None
    connect_seconds: float | None = None  # start -> Flux stream open
    first_text_seconds: float | None = None  # start -> first partial text
    finalize_seconds: float | None = None  # end of audio (or EndOfTurn) -> result
    elapsed_seconds: float = 0.0  # start -> result
    # End of speech -> result: from when the audio where the last word ends (by the API's word timings) reached
    # the session, as the client streams in real time: when the user stopped speaking. None without text or
    # without word timings.
    speech_end_seconds: float | None = None
    warm: bool = False  # streamed on a socket the warm pool opened before the command
    notes: tuple[str, ...] = ()  # what went less than right: degraded reason, Configure refused, language
    fallback: bool = False  # the text is the local fallback's, not Flux's


PartialCallback = Callable[[str], None]
