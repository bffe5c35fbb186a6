"""The public core API's names, imported from where they live. `wyoming_flux` (the package) hands them out on
first use, so that importing the package (as the `wyoming-flux` command's entry point does) loads nothing
heavy: a Ctrl+C in the command's first second is then a quiet exit, not a traceback from inside numpy."""

from .common.bounds import RANGES
from .common.tasks import cancel
from .deepgram.access import verify_model
from .deepgram.catalog import known_catalog, load_catalog, served_models
from .deepgram.errors import KINDS, DeepgramAuthError, DeepgramError
from .deepgram.endpoints import REGIONS, check_deepgram_url
from .deepgram.flux import validate_thresholds, verify_flux_access
from .deepgram.models import (
    Api,
    DEEPGRAM_MODELS,
    MODEL_EN,
    MODEL_MULTI,
    MODEL_NOVA,
    Model,
    base_language,
    choose_model,
    nova_language,
    unserved_language,
)
from .deepgram.nova import DEFAULT_ENDPOINTING_MS, DEFAULT_UTTERANCE_END_MS
from .turn.audio import AudioFormatError, check_format
from .turn.command import Command, CommandRefused, CommandSetup, Fallback, Wording
from .turn.completion import CachedCompletion, complete_from_debug
from .turn.fallback import AudioBuffer, FallbackError, DeepgramHealth, answer_with_fallback
from .turn.names import Named, keyterms_from_names
from .turn.request import SessionConfig, TurnRequest, TurnResult
from .turn.session import TurnSession
from .turn.state import Ending
