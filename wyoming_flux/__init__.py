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

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (and re) when the command starts

__version__ = "0.1.0"

__all__ = [
    "DEEPGRAM_MODELS",
    "DEFAULT_ENDPOINTING_MS",
    "DEFAULT_UTTERANCE_END_MS",
    "KINDS",
    "MODEL_EN",
    "MODEL_MULTI",
    "MODEL_NOVA",
    "RANGES",
    "REGIONS",
    "Api",
    "AudioBuffer",
    "AudioFormatError",
    "CachedCompletion",
    "Command",
    "CommandRefused",
    "CommandSetup",
    "DeepgramAuthError",
    "DeepgramError",
    "DeepgramHealth",
    "Ending",
    "Fallback",
    "FallbackError",
    "Model",
    "Named",
    "SessionConfig",
    "TurnRequest",
    "TurnResult",
    "TurnSession",
    "Wording",
    "__version__",
    "answer_with_fallback",
    "base_language",
    "cancel",
    "check_deepgram_url",
    "check_format",
    "choose_model",
    "complete_from_debug",
    "keyterms_from_names",
    "known_catalog",
    "load_catalog",
    "nova_language",
    "served_models",
    "unserved_language",
    "validate_thresholds",
    "verify_flux_access",
    "verify_model",
]


def __getattr__(name: str) -> object:
    """A public name, loaded on first use (`from wyoming_flux import TurnSession` works as before)."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _api

    value = getattr(_api, name)
    globals()[name] = value  # later uses skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # the same names, eagerly, for type checkers and import-linter
    from ._api import *  # noqa: F403
