"""Diagnostics: settings and the last commands' figures, with the API key redacted."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_API_KEY
from homeassistant.core import HomeAssistant

from . import DeepgramFluxConfigEntry, endpoint_url, options_with_defaults
from .const import CONF_FALLBACK_ENTITY

TO_REDACT = {CONF_API_KEY, "unique_id"}


async def async_get_config_entry_diagnostics(hass: HomeAssistant, entry: DeepgramFluxConfigEntry) -> dict[str, Any]:
    runtime = entry.runtime_data
    return {
        "entry": async_redact_data(entry.as_dict(), TO_REDACT),
        "endpoint": endpoint_url(dict(entry.data)),
        "options": options_with_defaults(entry),
        "keyterms": {
            "from_home_assistant": runtime.keyterms.enabled,
            "count": len(runtime.keyterms.terms()),
            "rebuilds": runtime.keyterms.builds,
        },
        "recent_commands": list(runtime.history),
        "counters": dict(runtime.counters),
        "fallback": {  # "fallback" in counters and recent_commands counts the commands it answered
            "entity": options_with_defaults(entry).get(CONF_FALLBACK_ENTITY),
            "flux_down": runtime.health.down,
            "last_flux_error": runtime.health.last_error,
        },
    }
