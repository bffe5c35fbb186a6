"""Repair issues for the Flux failures only the user can fix (no credit, model not enabled, wrong endpoint,
bad key); raised by a failed command, cleared by the next successful one."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from wyoming_flux import KINDS, FluxError

from .const import DOMAIN

_USER_CODES = [code for code, kind in KINDS.items() if kind.user_action]


def _issue_id(entry_id: str, code: str) -> str:
    return f"{entry_id}_{code}"


def raise_issue(hass: HomeAssistant, entry_id: str, title: str, error: FluxError) -> None:
    if not error.kind.user_action:
        return
    ir.async_create_issue(
        hass, DOMAIN, _issue_id(entry_id, error.code), is_fixable=False, is_persistent=False,
        severity=ir.IssueSeverity.ERROR, translation_key=error.code.replace("-", "_"),
        translation_placeholders={"title": title, "detail": error.dg_error or str(error)},
    )


def clear_issues(hass: HomeAssistant, entry_id: str) -> None:
    for code in _USER_CODES:
        ir.async_delete_issue(hass, DOMAIN, _issue_id(entry_id, code))
