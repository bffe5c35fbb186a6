"""Diagnostics: settings and the last commands' figures, with the API key redacted."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_API_KEY
from homeassistant.core import HomeAssistant

from .entry import EARLY_ANSWER_RESUMED, DeepgramFluxConfigEntry, endpoint_url, options_with_defaults
from .const import CONF_FALLBACK_ENTITY

TO_REDACT = {CONF_API_KEY, "unique_id"}


async def async_get_config_entry_diagnostics(hass: HomeAssistant, entry: DeepgramFluxConfigEntry) -> dict[str, Any]:
    runtime = entry.runtime_data
    check = runtime.completion.check if runtime.completion is not None else None
    return {
        "entry": async_redact_data(entry.as_dict(), TO_REDACT),
        "endpoint": endpoint_url(dict(entry.data)),
        "options": options_with_defaults(entry),
        "keyterms": {
            "from_home_assistant": runtime.keyterms.enabled,
            "count": len(runtime.keyterms.terms()),
            "rebuilds": runtime.keyterms.builds,
        },
        "recent_commands": list(runtime.history),  # each with its trigger: eager_complete = answered early
        "early_answers": {
            "enabled": check is not None,
            "check_ready": check is not None and check.ready(),  # Home Assistant's recogniser can answer
            "check_failures": check.failures if check is not None else 0,  # asks late or failed: "don't know"
            "speaker_went_on": runtime.counters[EARLY_ANSWER_RESUMED],  # early answers that cut a command
            "languages": runtime.completion.languages if runtime.completion is not None else [],
        },
        "counters": dict(runtime.counters),
        "fallback": {  # "fallback" in counters and recent_commands counts the commands it answered
            "entity": options_with_defaults(entry).get(CONF_FALLBACK_ENTITY),
            "flux_down": runtime.health.down,
            "last_flux_error": runtime.health.last_error,
        },
    }
