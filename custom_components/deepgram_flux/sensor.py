"""Usage sensors of one config entry: audio minutes and commands this month, the last command's latency
(speech end to text) and the estimated cost this month. Which commands count: see UsageTracker.record.
Icons: icons.json."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entry import DeepgramFluxConfigEntry
from .device import device_info
from .usage import UsageTracker


@dataclass(frozen=True, kw_only=True)
class UsageSensorDescription(SensorEntityDescription):
    value: Callable[[UsageTracker], float | int | None]
    monthly: bool = True  # a total that starts again at each month's start


SENSORS = (
    UsageSensorDescription(
        key="audio_minutes", translation_key="audio_minutes", native_unit_of_measurement=UnitOfTime.MINUTES,
        device_class=SensorDeviceClass.DURATION, state_class=SensorStateClass.TOTAL,
        suggested_display_precision=2,  # 0.6 s steps: a short command shows as itself, not as a tenth of a minute
        value=lambda usage: round(usage.minutes, 4),
    ),
    UsageSensorDescription(
        key="commands", translation_key="commands", state_class=SensorStateClass.TOTAL,
        value=lambda usage: usage.commands,
    ),
    UsageSensorDescription(
        key="last_latency", translation_key="last_latency", native_unit_of_measurement=UnitOfTime.SECONDS,
        device_class=SensorDeviceClass.DURATION, state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2, monthly=False,
        value=lambda usage: None if usage.last_latency is None else round(usage.last_latency, 3),
    ),
    UsageSensorDescription(
        key="estimated_cost", translation_key="estimated_cost", native_unit_of_measurement="USD",
        device_class=SensorDeviceClass.MONETARY, state_class=SensorStateClass.TOTAL,
        suggested_display_precision=4,  # a short command costs a few hundredths of a cent
        value=lambda usage: round(usage.cost, 5),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DeepgramFluxConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    async_add_entities(UsageSensor(entry, description) for description in SENSORS)


class UsageSensor(SensorEntity):
    """One figure of the entry's usage; updated when a command ends or a month starts."""

    _attr_has_entity_name = True
    entity_description: UsageSensorDescription

    def __init__(self, entry: DeepgramFluxConfigEntry, description: UsageSensorDescription) -> None:
        self.entity_description = description
        self._usage = entry.runtime_data.usage
        self._attr_unique_id = f"{entry.entry_id}-{description.key}"
        self._attr_device_info = device_info(entry)

    async def async_added_to_hass(self) -> None:
        self.async_on_remove(self._usage.add_listener(self.async_write_ha_state))

    @property
    def native_value(self) -> float | int | None:
        return self.entity_description.value(self._usage)

    @property
    def last_reset(self) -> datetime | None:
        return self._usage.month_started if self.entity_description.monthly else None
