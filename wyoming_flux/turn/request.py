"""What a command runs with (SessionConfig), asks for (TurnRequest) and gets (TurnResult), and the Flux query
that follows from them. Shared by the session, the warm pool's owner, the Wyoming server and the integration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..deepgram.endpoints import listen_urls
from ..deepgram.errors import FluxError
from ..deepgram.flux import StreamOptions, trim_keyterms
from ..deepgram.models import NOVA, FluxModel, language_hints, nova_language
from ..deepgram.nova import DEFAULT_ENDPOINTING_MS, DEFAULT_UTTERANCE_END_MS, NovaOptions
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
    mip_opt_out: bool = False  # Deepgram's Model Improvement Program opt-out
    tags: tuple[str, ...] = ()  # Deepgram usage-report labels
    endpointing_ms: int = DEFAULT_ENDPOINTING_MS  # Nova-3: silence that ends a command
    utterance_end_ms: int = DEFAULT_UTTERANCE_END_MS  # Nova-3: the word-timing backup when speech_final never comes

    @property
    def eot_timeout(self) -> float:
        return (self.eot_timeout_ms or 5000) / 1000

    @property
    def nova_url(self) -> str:
        """Nova-3's /v1/listen on the host `url` names (a region's, or a self-hosted deployment's)."""
        return listen_urls(self.url)[1]

    def end_timeout(self, model: FluxModel) -> float:
        """Audio seconds after the last new words in which the model's API should have ended the command."""
        if model.api == NOVA:
            return max(self.endpointing_ms, self.utterance_end_ms) / 1000
        return self.eot_timeout


@dataclass(frozen=True)
class TurnRequest:
    """What one command asks for."""

    model: FluxModel
    language: str | None = None
    keyterms: tuple[str, ...] = ()  # per-command terms, after the configured ones


@dataclass
class TurnResult:
    text: str
    ended_by: Ending
    language: str | None = None
    trigger: str | None = None  # Flux's own EndOfTurn trigger, when one came
    degraded: bool = False  # Flux failed or went quiet; the text is the best heard, not a confirmed final
    error: FluxError | None = None
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


def stream_options(config: SessionConfig, request: TurnRequest, sample_rate: int) -> StreamOptions | NovaOptions:
    """The query for a command. The warm pool opens its sockets with the same function, so a socket it
    holds fits a command exactly when the two agree."""
    if request.model.api == NOVA:
        language, hints = nova_language(request.language)
        return NovaOptions(
            language=language,
            sample_rate=sample_rate,
            endpointing_ms=config.endpointing_ms,
            utterance_end_ms=config.utterance_end_ms,
            language_hints=hints,
            keyterms=tuple(trim_keyterms([*config.keyterms, *request.keyterms])),
            tags=config.tags,
            mip_opt_out=config.mip_opt_out,
        )
    return StreamOptions(
        model=request.model.name,
        sample_rate=sample_rate,
        eot_threshold=config.eot_threshold,
        eager_eot_threshold=config.eager_eot_threshold,
        eot_timeout_ms=config.eot_timeout_ms,
        keyterms=tuple(trim_keyterms([*config.keyterms, *request.keyterms])),
        language_hints=tuple(language_hints(request.model, request.language)),
        tags=config.tags,
        mip_opt_out=config.mip_opt_out,
    )
