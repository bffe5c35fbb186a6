"""The service device of one config entry, which its STT entity and usage sensors share."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo

from .entry import entry_models, entry_name
from .const import DOMAIN


def device_info(entry: ConfigEntry) -> DeviceInfo:
    return DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry_name(entry.data),
        manufacturer="Deepgram",
        model=", ".join(model.name for model in entry_models(entry.data)),
        entry_type=DeviceEntryType.SERVICE,
    )
