"""Usage of one config entry this month: audio sent to Deepgram, commands, the last command's latency, the
estimated cost, and the optional monthly cap. Stored (not only in memory), so a restart keeps the month's
figures; a new month starts from zero, at the month's start in Home Assistant's time zone."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_point_in_time
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from wyoming_flux import TurnResult

from .const import DOMAIN

STORAGE_VERSION = 1
SAVE_DELAY = 10.0  # seconds: a burst of commands is one write; unload and shutdown write at once
CAP_ISSUE = "monthly_cap"
CAP_ISSUE_KEY = "monthly_cap_reached"

_LOGGER = logging.getLogger(__name__)


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now: datetime) -> datetime:
    start = month_start(now)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def _month_key(now: datetime) -> str:
    return f"{now.year:04d}-{now.month:02d}"


class UsageTracker:
    """This month's usage of one entry, with its price per minute and optional cap in minutes."""

    def __init__(self, hass: HomeAssistant, entry_id: str, title: str, price_per_minute: float | None,
                 cap_minutes: float | None, default_price: float = 0.0) -> None:
        self._hass, self._entry_id, self._title = hass, entry_id, title
        self.price_per_minute = price_per_minute  # the user's price for every command; None: each model's rate
        self.default_price = default_price  # for a month stored before its cost was: the entry's model's rate
        self.cap_minutes = cap_minutes
        self.cost = 0.0  # USD this month: each command's minutes at its own model's price
        self._store: Store[dict[str, Any]] = Store(hass, STORAGE_VERSION, f"{DOMAIN}.usage.{entry_id}")
        self.month = _month_key(dt_util.now())
        self.audio_seconds = 0.0
        self.commands = 0
        self.last_latency: float | None = None
        self._listeners: list[Callable[[], None]] = []
        self._cap_told: str | None = None  # the month whose cap the log has already told about

    # ------------------------------------------------------------ figures

    @property
    def minutes(self) -> float:
        return self.audio_seconds / 60

    @property
    def month_started(self) -> datetime:
        return month_start(dt_util.now())

    def cap_reached(self) -> bool:
        self._roll()
        return self.cap_minutes is not None and self.minutes >= self.cap_minutes

    def log_capped(self, fallback: bool) -> None:
        """A command met the cap: reaching it is the intended outcome, so one warning a month, then debug."""
        cap = self.cap_minutes or 0
        level = logging.DEBUG if self._cap_told == self.month else logging.WARNING
        self._cap_told = self.month
        _LOGGER.log(level, "Deepgram: the monthly cap of %g audio minute%s is reached; %s until the month's end or a "
                    "higher cap in the options", cap, "" if cap == 1 else "s",
                    "the fallback answers" if fallback else "commands fail")

    # ------------------------------------------------------------ life

    async def async_load(self) -> None:
        stored = await self._store.async_load()
        if stored and stored.get("month") == self.month:  # last month's figures do not carry over
            self.audio_seconds = float(stored.get("audio_seconds", 0.0))
            self.commands = int(stored.get("commands", 0))
            cost = stored.get("cost")
            self.cost = (float(cost) if cost is not None
                         else self.minutes * (self.price_per_minute if self.price_per_minute is not None
                                              else self.default_price))
            latency = stored.get("last_latency")
            self.last_latency = None if latency is None else float(latency)
        self._update_issue()

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Roll over at each month's start, even with no command; returns the stop callback."""
        cancel: CALLBACK_TYPE | None = None

        @callback
        def new_month(_now: datetime) -> None:
            nonlocal cancel
            self._roll()
            cancel = async_track_point_in_time(self._hass, new_month, next_month_start(dt_util.now()))

        cancel = async_track_point_in_time(self._hass, new_month, next_month_start(dt_util.now()))

        def stop() -> None:
            if cancel is not None:
                cancel()

        return stop

    async def async_flush(self) -> None:
        await self._store.async_save(self._data())

    async def async_remove(self) -> None:
        await async_remove_usage(self._hass, self._entry_id)

    @callback
    def add_listener(self, listener: Callable[[], None]) -> CALLBACK_TYPE:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # ------------------------------------------------------------ commands

    @callback
    def record(self, result: TurnResult | None, model_price: float = 0.0) -> None:
        """A command ran: what Deepgram received (none if no stream opened), at `model_price` per minute (the
        rate of the command's model, unless the user set a price), and how fast the words came back.

        Every command the entity is asked to transcribe counts, whatever became of it: answered, failed (a
        refused handshake too), answered by the fallback, or refused at once by the cap (`result` None). Audio
        minutes count only the audio that reached Flux."""
        self._roll()
        self.commands += 1
        if result is None:
            self._changed()
            return
        self.audio_seconds += result.billed_seconds
        price = self.price_per_minute if self.price_per_minute is not None else model_price
        self.cost += result.billed_seconds / 60 * price
        if result.speech_end_seconds is not None:
            self.last_latency = result.speech_end_seconds
        self._changed()

    def _roll(self) -> None:
        month = _month_key(dt_util.now())
        if month != self.month:
            self.month, self.audio_seconds, self.commands, self.cost = month, 0.0, 0, 0.0
            self._changed()

    def _changed(self) -> None:
        self._store.async_delay_save(self._data, SAVE_DELAY)
        self._update_issue()
        for listener in list(self._listeners):
            listener()

    def _data(self) -> dict[str, Any]:
        return {"month": self.month, "audio_seconds": round(self.audio_seconds, 3), "commands": self.commands,
                "last_latency": self.last_latency, "cost": round(self.cost, 6)}

    # ------------------------------------------------------------ the cap's repair issue

    @property
    def _issue_id(self) -> str:
        return _issue_id(self._entry_id)

    def _update_issue(self) -> None:
        if self.cap_minutes is not None and self.minutes >= self.cap_minutes:
            ir.async_create_issue(
                self._hass, DOMAIN, self._issue_id, is_fixable=True, is_persistent=False,
                severity=ir.IssueSeverity.WARNING, translation_key=CAP_ISSUE_KEY,
                translation_placeholders={"title": self._title, **cap_placeholders(self)},
                data={"entry_id": self._entry_id},
            )
        else:
            ir.async_delete_issue(self._hass, DOMAIN, self._issue_id)


def cap_placeholders(usage: UsageTracker) -> dict[str, str]:
    """The cap, this month's minutes and the reset date, as plain text: Home Assistant's translation loader
    parses a string's {placeholders} with Python's formatter and drops any string with ICU plurals or dates in
    it, so the plural and the date are made here. English, as the integration's strings are."""
    reset = next_month_start(dt_util.now()).date()
    return {"cap": audio_minutes(usage.cap_minutes or 0), "used": audio_minutes(math.floor(usage.minutes * 10) / 10),
            "reset": f"{reset:%B} {reset.day}, {reset.year}"}


def audio_minutes(minutes: float) -> str:
    """1 -> "1 audio minute", 2.5 -> "2.5 audio minutes"."""
    return f"{minutes:g} audio minute{'' if minutes == 1 else 's'}"


def _issue_id(entry_id: str) -> str:
    return f"{entry_id}_{CAP_ISSUE}"


async def async_remove_usage(hass: HomeAssistant, entry_id: str) -> None:
    """The entry is gone: so are its stored figures and its cap issue."""
    await Store[dict[str, Any]](hass, STORAGE_VERSION, f"{DOMAIN}.usage.{entry_id}").async_remove()
    ir.async_delete_issue(hass, DOMAIN, _issue_id(entry_id))
