"""Repair issues for the Flux failures only the user can fix (no credit, model not enabled, wrong endpoint),
raised by a failed command and cleared by the next successful one; and the fix flow of the monthly cap's issue
(raised by usage.py), which asks for a new cap.

A rejected key raises no issue of ours: the entity starts Home Assistant's re-authentication, whose own issue
asks for the new key. One issue per problem."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import voluptuous as vol
from homeassistant.components.repairs import RepairsFlow
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from wyoming_flux import KINDS, DeepgramError

from .const import CONF_MONTHLY_CAP_MINUTES, DOMAIN
from .options_flow import CAP_FIELD, range_error  # the options flow's own field, with its range
from .usage import CAP_ISSUE_KEY, cap_placeholders

if TYPE_CHECKING:  # a name of 2026.x's typing only
    from homeassistant.components.repairs import RepairsFlowResult

_REAUTH_CODE = "flux-auth"  # Home Assistant's re-authentication issue covers it
_USER_CODES = [code for code, kind in KINDS.items() if kind.user_action]


def _issue_id(entry_id: str, code: str) -> str:
    return f"{entry_id}_{code}"


def raise_issue(hass: HomeAssistant, entry_id: str, title: str, error: DeepgramError) -> None:
    if not error.kind.user_action or error.code == _REAUTH_CODE:
        return
    ir.async_create_issue(
        hass, DOMAIN, _issue_id(entry_id, error.code), is_fixable=False, is_persistent=False,
        severity=ir.IssueSeverity.ERROR, translation_key=error.code.replace("-", "_"),
        translation_placeholders={"title": title, "detail": error.dg_error or str(error)},
    )


def clear_issues(hass: HomeAssistant, entry_id: str) -> None:
    for code in _USER_CODES:
        ir.async_delete_issue(hass, DOMAIN, _issue_id(entry_id, code))


class CapFlow(RepairsFlow):
    """The cap's issue fixed where it is raised: a new cap above this month's minutes, or none."""

    def __init__(self, entry_id: str) -> None:
        self._entry_id = entry_id

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> RepairsFlowResult:
        # Home Assistant passes {"issue_id": ...} here as if it were the form's input: the form is its own step.
        return await self.async_step_cap()

    async def async_step_cap(self, user_input: dict[str, Any] | None = None) -> RepairsFlowResult:
        entry = self.hass.config_entries.async_get_entry(self._entry_id)
        if entry is None or entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="entry_not_loaded")
        usage = entry.runtime_data.usage
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            cap = user_input.get(CONF_MONTHLY_CAP_MINUTES)
            if (found := range_error(CAP_FIELD, user_input)) is not None:
                errors[CONF_MONTHLY_CAP_MINUTES], placeholders = found
            elif cap is not None and cap <= usage.minutes:
                errors[CONF_MONTHLY_CAP_MINUTES] = "cap_not_above_usage"
            else:
                options = {k: v for k, v in entry.options.items() if k != CONF_MONTHLY_CAP_MINUTES}
                if cap is not None:
                    options[CONF_MONTHLY_CAP_MINUTES] = cap
                self.hass.config_entries.async_update_entry(entry, options=options)
                await self.hass.config_entries.async_reload(entry.entry_id)  # as saving the options does
                return self.async_create_entry(data={})
        return self.async_show_form(
            step_id="cap",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema(CAP_FIELD), {CONF_MONTHLY_CAP_MINUTES: usage.cap_minutes}),
            errors=errors,
            description_placeholders={"title": entry.title, **cap_placeholders(usage), **placeholders},
        )


async def async_create_fix_flow(hass: HomeAssistant, issue_id: str, data: dict[str, Any] | None) -> RepairsFlow:
    """Home Assistant's repairs platform: the flow behind a fixable issue of ours (only the cap's is)."""
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    if issue is None or issue.translation_key != CAP_ISSUE_KEY or not data:
        raise ValueError(f"no fix flow for {issue_id}")
    return CapFlow(str(data["entry_id"]))
