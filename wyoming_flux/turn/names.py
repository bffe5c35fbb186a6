"""Keyterms from a Home Assistant's names: areas and the entities exposed to Assist, with their aliases.

One builder for both paths: the integration reads HA's registries in process, the Wyoming server reads them
over HA's websocket API; both hand the same `Named` items here, so both send Flux the same list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..deepgram.keyterms import KEYTERM_TOKEN_BUDGET, Keyterms


@dataclass(frozen=True)
class Named:
    """An area or an exposed entity: the name people see and the aliases they may say instead."""

    name: str
    aliases: tuple[str, ...] = ()

    @classmethod
    def of(cls, name: object, aliases: Iterable[object] = ()) -> Named:
        """Registries hold odd values (None stands for "the entity's own name" among aliases): keep text only."""
        return cls(name if isinstance(name, str) else "", tuple(a for a in aliases if isinstance(a, str)))


def keyterms_from_names(areas: Iterable[Named], entities: Iterable[Named],
                        budget: int = KEYTERM_TOKEN_BUDGET) -> list[str]:
    """Areas first (few, and said in most commands), each followed by its aliases; then exposed entities in the
    order given, each with its aliases. Duplicates and what does not fit the token budget are dropped, so the
    last entities are the ones left out of a large home."""
    keyterms = Keyterms(budget)
    add_names(keyterms, areas, entities)
    return keyterms.kept


def add_names(keyterms: Keyterms, areas: Iterable[Named] = (), entities: Iterable[Named] = ()) -> None:
    """keyterms_from_names a part at a time: entities are read only until the budget is full, so a caller can
    fetch a large home's entities (and their aliases) in parts and stop early."""
    for area in areas:
        for term in (area.name, *sorted(area.aliases)):
            keyterms.add(term)
    for entity in entities:
        if keyterms.full:
            return
        for term in (entity.name, *entity.aliases):
            keyterms.add(term)
