"""A config entry's parts: what its entity and diagnostics share at run time, and the helpers every module of
the integration uses to read an entry (its models, name, endpoint, options, settings, price)."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_API_KEY
from homeassistant.core import HomeAssistant

from wyoming_flux import (
    DEEPGRAM_MODELS,
    MODEL_EN,
    MODEL_MULTI,
    MODEL_NOVA,
    DeepgramHealth,
    Model,
    SessionConfig,
    known_catalog,
    nova_language,
    served_models,
)

from .completion import AssistCompletion
from .const import (
    CONF_CUSTOM_URL,
    CONF_END_OF_SPEECH,
    CONF_ENDPOINT,
    CONF_MODEL,
    CONF_MONTHLY_CAP_MINUTES,
    CONF_NOVA,
    CONF_PRICE_PER_MINUTE,
    DEFAULT_OPTIONS,
    DEFAULT_PRICES,
    END_OF_SPEECH_FLUX,
    ENDPOINT_CUSTOM,
    ENDPOINT_GLOBAL,
    ENDPOINT_URLS,
    HISTORY_LENGTH,
    NOVA_MULTI,
)
from .keyterms import KeytermIndex
from .usage import UsageTracker

EARLY_ANSWER_RESUMED = "early_answer_resumed"  # the counter of commands the speaker went on after


@dataclass
class RuntimeData:
    """What the entity and diagnostics share for one config entry."""

    session_config: SessionConfig
    keyterms: KeytermIndex
    usage: UsageTracker
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY_LENGTH))
    counters: Counter[str] = field(default_factory=Counter)  # errors by code, and notes (Configure refused, ...)
    health: DeepgramHealth = field(default_factory=DeepgramHealth)  # after a failure, commands skip Flux for a while
    completion: AssistCompletion | None = None  # early answers: Home Assistant's recogniser (None: switched off)

    def count_resumed(self) -> None:
        """The speaker went on after an early answer: the cut early answers risk, shown in diagnostics."""
        self.counters[EARLY_ANSWER_RESUMED] += 1


type DeepgramFluxConfigEntry = ConfigEntry[RuntimeData]


def endpoint_url(data: dict[str, Any]) -> str:
    """The Flux URL an entry's data points at."""
    if data.get(CONF_ENDPOINT) == ENDPOINT_CUSTOM:
        return str(data[CONF_CUSTOM_URL])
    return ENDPOINT_URLS[data.get(CONF_ENDPOINT) or ENDPOINT_GLOBAL]


def entry_models(data: Mapping[str, Any]) -> list[Model]:
    """The models an entry offers, in the order a command's language tries them: its Flux model, then Nova-3
    for the languages that model does not speak (unless turned off; entries from before Nova-3 have it on);
    nova-3 as the entry's model hears every language. Nova-3's languages are those Deepgram listed for the
    entry's host at setup, or the built-in table."""
    model = DEEPGRAM_MODELS[data[CONF_MODEL]]
    models = [model] if model.name == MODEL_NOVA or not data.get(CONF_NOVA, True) else [model, DEEPGRAM_MODELS[MODEL_NOVA]]
    return served_models(models, known_catalog(endpoint_url(dict(data))))


# What the entry's title and device say of each model: the languages it serves, as the model field lists them.
MODEL_NAMES = {MODEL_EN: "Flux English", MODEL_MULTI: "Flux multilingual", MODEL_NOVA: "Nova-3"}


def entry_name(data: Mapping[str, Any]) -> str:
    """The entry's title and device name: every model it serves, as a voice assistant's list shows it
    ("Deepgram (Flux English, Nova-3)"), not only its Flux model, which a Polish command never reaches."""
    return f"Deepgram ({', '.join(MODEL_NAMES[model.name] for model in entry_models(data))})"


def uses_nova(data: Mapping[str, Any]) -> bool:
    return any(model.name == MODEL_NOVA for model in entry_models(data))


def default_price(model: Model, language: str | None) -> float:
    """Deepgram's pay-as-you-go rate for one command: its model's, Nova-3's multilingual one for language=multi."""
    if model.name == MODEL_NOVA and nova_language(language, model)[0] == "multi":
        return DEFAULT_PRICES[NOVA_MULTI]
    return DEFAULT_PRICES[model.name]


def options_with_defaults(entry: ConfigEntry) -> dict[str, Any]:
    return {**DEFAULT_OPTIONS, **entry.options}


def session_config(entry: ConfigEntry) -> SessionConfig:
    """Map the entry's data and options onto the shared core's settings (by the options' names, which are the
    settings' own, as the server's flags are)."""
    options = options_with_defaults(entry)
    return SessionConfig.from_values(endpoint_url(dict(entry.data)), entry.data[CONF_API_KEY], {
        **options, "end_on_flux_eot": options[CONF_END_OF_SPEECH] == END_OF_SPEECH_FLUX})


def usage_tracker(hass: HomeAssistant, entry: ConfigEntry) -> UsageTracker:
    """The entry's usage, priced at its option or each command's model's pay-as-you-go rate, with its optional
    cap."""
    price, cap = entry.options.get(CONF_PRICE_PER_MINUTE), entry.options.get(CONF_MONTHLY_CAP_MINUTES)
    return UsageTracker(hass, entry.entry_id, entry.title,
                        None if price in (None, "") else float(price),  # type: ignore[arg-type]
                        None if cap in (None, "") else float(cap),  # type: ignore[arg-type]
                        default_price=DEFAULT_PRICES[entry.data[CONF_MODEL]])
