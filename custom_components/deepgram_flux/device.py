"""The service device of one config entry, which its STT entity and usage sensors share."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo

from .const import CONF_MODEL, DOMAIN


def device_info(entry: ConfigEntry) -> DeviceInfo:
    model = str(entry.data[CONF_MODEL])
    return DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        name=f"Deepgram Flux ({model})",
        manufacturer="Deepgram",
        model=model,
        entry_type=DeviceEntryType.SERVICE,
    )
