"""Deepgram Flux speech-to-text for Home Assistant: Flux, not a silence timer, decides when a command ends (and
Nova-3, by Deepgram's endpointing, for the languages Flux does not speak)."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_API_KEY, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from wyoming_flux import (
    DEEPGRAM_MODELS,
    MODEL_EN,
    MODEL_MULTI,
    MODEL_NOVA,
    DeepgramHealth,
    Model,
    SessionConfig,
    known_catalog,
    load_catalog,
    nova_language,
    served_models,
)

from .completion import AssistCompletion
from .const import (
    CONF_BOOST_EXPOSED,
    CONF_CUSTOM_URL,
    CONF_EAGER_EOT_THRESHOLD,
    CONF_EARLY_ANSWER,
    CONF_END_OF_SPEECH,
    CONF_ENDPOINT,
    CONF_ENDPOINTING_MS,
    CONF_EOT_THRESHOLD,
    CONF_EOT_TIMEOUT_MS,
    CONF_KEYTERMS,
    CONF_MAX_COMMAND_SECONDS,
    CONF_MIP_OPT_OUT,
    CONF_MODEL,
    CONF_MONTHLY_CAP_MINUTES,
    CONF_NO_SPEECH_TIMEOUT,
    CONF_NOVA,
    CONF_PRICE_PER_MINUTE,
    CONF_TAGS,
    CONF_UTTERANCE_END_MS,
    DEFAULT_OPTIONS,
    DEFAULT_PRICES,
    END_OF_SPEECH_FLUX,
    ENDPOINT_CUSTOM,
    ENDPOINT_GLOBAL,
    ENDPOINT_US,
    ENDPOINT_URLS,
    HISTORY_LENGTH,
    NOVA_MULTI,
)
from .keyterms import KeytermIndex
from .repairs import clear_issues
from .usage import UsageTracker, async_remove_usage

PLATFORMS = [Platform.SENSOR, Platform.STT]
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
    """Map the entry's data and options onto the shared core's settings."""
    options = options_with_defaults(entry)
    eager = options.get(CONF_EAGER_EOT_THRESHOLD)
    return SessionConfig(
        url=endpoint_url(dict(entry.data)),
        api_key=entry.data[CONF_API_KEY],
        eot_threshold=float(options[CONF_EOT_THRESHOLD]),
        eager_eot_threshold=None if eager in (None, "") else float(eager),
        eot_timeout_ms=int(options[CONF_EOT_TIMEOUT_MS]),
        keyterms=tuple(options[CONF_KEYTERMS]),
        end_on_flux_eot=options[CONF_END_OF_SPEECH] == END_OF_SPEECH_FLUX,
        no_speech_timeout=float(options[CONF_NO_SPEECH_TIMEOUT]),
        max_command_seconds=float(options[CONF_MAX_COMMAND_SECONDS]),
        mip_opt_out=bool(options[CONF_MIP_OPT_OUT]),
        tags=tuple(options[CONF_TAGS]),
        endpointing_ms=int(options[CONF_ENDPOINTING_MS]),
        utterance_end_ms=int(options[CONF_UTTERANCE_END_MS]),
        early_answer=bool(options[CONF_EARLY_ANSWER]),
    )


def usage_tracker(hass: HomeAssistant, entry: ConfigEntry) -> UsageTracker:
    """The entry's usage, priced at its option or each command's model's pay-as-you-go rate, with its optional
    cap."""
    price, cap = entry.options.get(CONF_PRICE_PER_MINUTE), entry.options.get(CONF_MONTHLY_CAP_MINUTES)
    return UsageTracker(hass, entry.entry_id, entry.title,
                        float(price) if price not in (None, "") else None,
                        float(cap) if cap not in (None, "") else None,
                        default_price=DEFAULT_PRICES[entry.data[CONF_MODEL]])


async def async_setup_entry(hass: HomeAssistant, entry: DeepgramFluxConfigEntry) -> bool:
    """Set up Deepgram Flux from a config entry."""
    # A new key, model or endpoint (reauth, reconfigure) may have fixed what the issues asked for; a fault
    # that remains raises its issue again on the next command.
    clear_issues(hass, entry.entry_id)
    # What the host serves now, from Deepgram's model list (bounded, kept an hour; the built-in table when it
    # does not answer): the entity then offers Nova-3's languages as Deepgram lists them.
    if uses_nova(entry.data):
        await load_catalog(async_get_clientsession(hass), endpoint_url(dict(entry.data)), entry.data[CONF_API_KEY])
    keyterms = KeytermIndex(hass, enabled=options_with_defaults(entry)[CONF_BOOST_EXPOSED])
    entry.async_on_unload(keyterms.async_start())
    usage = usage_tracker(hass, entry)
    await usage.async_load()
    entry.async_on_unload(usage.async_start())
    config = session_config(entry)
    completion = None
    if config.early_answer and config.end_on_flux_eot:  # with Home Assistant's VAD, its silence ends commands
        completion = AssistCompletion(
            hass, lambda coro, name: entry.async_create_background_task(hass, coro, name))
        entry.async_on_unload(completion.aclose)  # its asks still running
    entry.runtime_data = RuntimeData(session_config=config, keyterms=keyterms, usage=usage, completion=completion)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_migrate_entry(hass: HomeAssistant, entry: DeepgramFluxConfigEntry) -> bool:
    """Minor version 2: "us" names Deepgram's US data-residency host; before, it named the global host, which
    is now "global" (so an entry keeps the host it was set up with)."""
    if entry.version == 1 and entry.minor_version < 2:
        data = dict(entry.data)
        if data.get(CONF_ENDPOINT) == ENDPOINT_US:
            data[CONF_ENDPOINT] = ENDPOINT_GLOBAL
        hass.config_entries.async_update_entry(entry, data=data, minor_version=2)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: DeepgramFluxConfigEntry) -> bool:
    """Unload a config entry (Home Assistant cancels its background tasks, e.g. Flux streams still closing)."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    await entry.runtime_data.usage.async_flush()  # the month's figures survive a reload or restart
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: DeepgramFluxConfigEntry) -> None:
    """The entry is gone: so are its repair issues."""
    clear_issues(hass, entry.entry_id)
    await async_remove_usage(hass, entry.entry_id)
