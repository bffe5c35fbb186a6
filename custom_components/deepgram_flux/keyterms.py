"""Keyterms from Home Assistant: the names of areas and of entities exposed to Assist.

Flux hears "turn on the Hue Strip in Léa's room" right when those names are sent as keyterms. The list is
rebuilt only after something it depends on changed (exposure, the entity or area registry), not per command.
This module only reads Home Assistant; the list itself (order, token budget) comes from `wyoming_flux.turn.names`,
which the Wyoming server uses too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.components.homeassistant.exposed_entities import (
    DATA_EXPOSED_ENTITIES,
    async_listen_entity_updates,
    async_should_expose,
)
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import entity_registry as er

from wyoming_flux import Named, keyterms_from_names

ASSISTANT = "conversation"


class KeytermIndex:
    """A cached list of area and exposed-entity names, marked stale by the events that change it."""

    def __init__(self, hass: HomeAssistant, *, enabled: bool) -> None:
        self._hass = hass
        self.enabled = enabled
        self._terms: list[str] = []
        self._stale = True
        self.builds = 0  # how many times the list was rebuilt (diagnostics, tests)

    @callback
    def async_start(self) -> Callable[[], None]:
        """Listen for changes; returns the function that stops listening."""
        if not self.enabled:
            return lambda: None
        unsubs: list[Callable[[], None]] = [
            self._hass.bus.async_listen(er.EVENT_ENTITY_REGISTRY_UPDATED, self._mark_stale),
            self._hass.bus.async_listen(ar.EVENT_AREA_REGISTRY_UPDATED, self._mark_stale),
        ]
        if DATA_EXPOSED_ENTITIES in self._hass.data:
            unsubs.append(async_listen_entity_updates(self._hass, ASSISTANT, self._mark_stale))

        def stop() -> None:
            for unsub in unsubs:
                unsub()

        return stop

    @callback
    def _mark_stale(self, _event: Event[Any] | None = None) -> None:
        self._stale = True

    @callback
    def terms(self) -> list[str]:
        """Area names and aliases first (few, and often spoken), then exposed entities' names and aliases."""
        if not self.enabled:
            return []
        if self._stale:
            self._terms = self._build()
            self._stale = False
            self.builds += 1
        return self._terms

    def _build(self) -> list[str]:
        areas = [Named.of(area.name, area.aliases) for area in ar.async_get(self._hass).async_list_areas()]
        if DATA_EXPOSED_ENTITIES not in self._hass.data:
            return keyterms_from_names(areas, [])
        registry = er.async_get(self._hass)
        entities = [
            Named.of(state.name, entry.aliases if (entry := registry.async_get(state.entity_id)) else ())
            for state in self._hass.states.async_all()
            if async_should_expose(self._hass, ASSISTANT, state.entity_id)
        ]
        return keyterms_from_names(areas, entities)
