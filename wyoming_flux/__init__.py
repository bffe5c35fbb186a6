"""Deepgram Flux speech-to-text for Home Assistant voice: a Wyoming server and a shared turn core.

The package is built in layers, each a subpackage that imports only the ones below it (import-linter holds
this, see pyproject.toml):

    cli       the `wyoming-flux` command: flags, configuration readers, `check`, `transcribe`
    server    the Wyoming server (needs the `server` extra: wyoming, zeroconf, prometheus-client)
    turn      one voice command: the session, its state machine, audio adaptation, keyterms, the fallback
    deepgram  everything that talks to Deepgram: the Flux and Nova-3 clients, errors, models, endpoints, the warm pool
    common    helpers that know none of the above: background tasks, option ranges

The names below are the public core API: what the Home Assistant integration (and any other user of the core)
imports, from here only. They need aiohttp and numpy alone, and follow the package's version.
"""

__version__ = "0.1.0"

from .common.bounds import RANGES
from .common.tasks import cancel
from .deepgram.access import verify_model
from .deepgram.endpoints import check_deepgram_url
from .deepgram.errors import KINDS, FluxAuthError, FluxError
from .deepgram.flux import REGIONS, validate_thresholds, verify_access
from .deepgram.models import (
    FLUX_MODELS,
    MODEL_EN,
    MODEL_MULTI,
    MODEL_NOVA,
    NOVA,
    FluxModel,
    base_language,
    choose_model,
    nova_language,
    unserved_language,
)
from .deepgram.nova import DEFAULT_ENDPOINTING_MS, DEFAULT_UTTERANCE_END_MS
from .turn.audio import AudioFormatError, check_format
from .turn.fallback import AudioBuffer, FallbackError, FluxHealth, answer_with_fallback
from .turn.names import Named, keyterms_from_names
from .turn.request import SessionConfig, TurnRequest, TurnResult
from .turn.session import TurnSession
from .turn.state import Ending

__all__ = [
    "DEFAULT_ENDPOINTING_MS",
    "DEFAULT_UTTERANCE_END_MS",
    "FLUX_MODELS",
    "KINDS",
    "MODEL_EN",
    "MODEL_MULTI",
    "MODEL_NOVA",
    "NOVA",
    "RANGES",
    "REGIONS",
    "AudioBuffer",
    "AudioFormatError",
    "Ending",
    "FallbackError",
    "FluxAuthError",
    "FluxError",
    "FluxHealth",
    "FluxModel",
    "Named",
    "SessionConfig",
    "TurnRequest",
    "TurnResult",
    "TurnSession",
    "__version__",
    "answer_with_fallback",
    "base_language",
    "cancel",
    "check_deepgram_url",
    "check_format",
    "choose_model",
    "keyterms_from_names",
    "nova_language",
    "unserved_language",
    "validate_thresholds",
    "verify_access",
    "verify_model",
]
