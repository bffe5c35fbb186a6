"""What a command runs with (SessionConfig), asks for (TurnRequest) and gets (TurnResult), and the Flux query
that follows from them. Shared by the session, the warm pool's owner, the Wyoming server and the integration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..deepgram.errors import FluxError
from ..deepgram.flux import StreamOptions, trim_keyterms
from ..deepgram.models import FluxModel, language_hints
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

    @property
    def eot_timeout(self) -> float:
        return (self.eot_timeout_ms or 5000) / 1000


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
    audio_seconds: float = 0.0
    request_id: str | None = None
    connect_seconds: float | None = None  # start -> Flux stream open
    first_text_seconds: float | None = None  # start -> first partial text
    finalize_seconds: float | None = None  # end of audio (or EndOfTurn) -> result
    elapsed_seconds: float = 0.0  # start -> result
    speech_end_seconds: float | None = None  # last new words reported -> result; None without text
    warm: bool = False  # streamed on a socket the warm pool opened before the command
    notes: tuple[str, ...] = ()  # what went less than right: degraded reason, Configure refused, language
    fallback: bool = False  # the text is the local fallback's, not Flux's


PartialCallback = Callable[[str], None]


def stream_options(config: SessionConfig, request: TurnRequest, sample_rate: int) -> StreamOptions:
    """The Flux query for a command. The warm pool opens its sockets with the same function, so a socket it
    holds fits a command exactly when the two agree."""
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
