"""Deepgram Flux speech-to-text for Home Assistant: Flux, not a silence timer, decides when a command ends (and
Nova-3, by Deepgram's endpointing, for the languages Flux does not speak). The entry's parts: entry.py."""

from __future__ import annotations

from homeassistant.const import CONF_API_KEY, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from wyoming_flux import load_catalog

from .completion import AssistCompletion
from .const import CONF_BOOST_EXPOSED, CONF_ENDPOINT, ENDPOINT_GLOBAL, ENDPOINT_US
from .entry import (
    DeepgramFluxConfigEntry,
    RuntimeData,
    endpoint_url,
    entry_name,
    options_with_defaults,
    session_config,
    usage_tracker,
    uses_nova,
)
from .keyterms import KeytermIndex
from .repairs import clear_issues
from .usage import async_remove_usage

PLATFORMS = [Platform.SENSOR, Platform.STT]
__all__ = ["PLATFORMS", "endpoint_url", "entry_name"]  # the entry's helpers, as tests and tools name them here


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
