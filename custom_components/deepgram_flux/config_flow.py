"""Config flow for Deepgram Flux: key, model and endpoint, then (for a Flux model only: Nova-3 hears every
language itself) whether the languages that model does not speak go to Nova-3; checked by a real handshake for
each model used."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    ConfigFlow,
    ConfigFlowResult,
)
from homeassistant.const import CONF_API_KEY
from homeassistant.core import callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    BooleanSelector,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)

from wyoming_flux import MODEL_NOVA, Api, DeepgramError, check_deepgram_url, verify_model

from .entry import MODEL_NAMES, DeepgramFluxConfigEntry, endpoint_url, entry_models, entry_name
from .const import (
    CONF_CUSTOM_URL,
    CONF_ENDPOINT,
    CONF_MODEL,
    CONF_NOVA,
    DOMAIN,
    ENDPOINT_CUSTOM,
    ENDPOINT_GLOBAL,
    ENDPOINTS,
    MODELS,
)
from .options_flow import DeepgramFluxOptionsFlow

# Handshake error code -> the form's error key; every other DeepgramError is "unknown" (and logged).
_FORM_ERRORS = {
    "flux-auth": "invalid_auth", "flux-forbidden": "model_forbidden", "flux-no-credit": "no_credit",
    "flux-not-found": "not_found", "flux-unavailable": "cannot_connect", "flux-timeout": "cannot_connect",
    "flux-request-timeout": "cannot_connect", "flux-rate-limited": "rate_limited",
}

_LOGGER = logging.getLogger(__name__)


def unique_id(data: Mapping[str, Any]) -> str:
    """Same key on the same endpoint = same entry. Hashed: the key itself must not be stored as an id."""
    return hashlib.sha256(f"{endpoint_url(dict(data))}\n{data[CONF_API_KEY]}".encode()).hexdigest()[:24]


def _connection_schema(defaults: Mapping[str, Any], key_required: bool) -> vol.Schema:
    key = vol.Required(CONF_API_KEY) if key_required else vol.Optional(CONF_API_KEY)
    return vol.Schema(
        {
            key: TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD)),
            vol.Required(CONF_MODEL, default=defaults.get(CONF_MODEL, MODELS[0])): SelectSelector(
                SelectSelectorConfig(options=MODELS, translation_key=CONF_MODEL, mode=SelectSelectorMode.LIST)
            ),
            vol.Required(CONF_ENDPOINT, default=defaults.get(CONF_ENDPOINT, ENDPOINT_GLOBAL)): SelectSelector(
                SelectSelectorConfig(
                    options=ENDPOINTS,
                    translation_key=CONF_ENDPOINT,
                    mode=SelectSelectorMode.LIST,
                )
            ),
            vol.Optional(CONF_CUSTOM_URL, description={"suggested_value": defaults.get(CONF_CUSTOM_URL)}): TextSelector(
                TextSelectorConfig(type=TextSelectorType.URL)
            ),
        }
    )


def _check_custom_url(data: dict[str, Any]) -> str | None:
    if data.get(CONF_ENDPOINT) != ENDPOINT_CUSTOM:
        data.pop(CONF_CUSTOM_URL, None)
        return None
    try:
        check_deepgram_url(str(data.get(CONF_CUSTOM_URL) or ""))  # the server's own rule for --flux-url
    except ValueError:
        return "invalid_url"
    return None


class DeepgramFluxConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up, re-authenticate and reconfigure a Deepgram Flux connection."""

    VERSION = 1
    MINOR_VERSION = 2  # "us" is the US data-residency host (async_migrate_entry)

    async def _validate(self, data: dict[str, Any]) -> dict[str, str]:
        """A real handshake for each model the entry would use (Flux's, and Nova-3's unless turned off) with
        these values: errors for the form, or none."""
        if (error := _check_custom_url(data)) is not None:
            return {CONF_CUSTOM_URL: error}
        models = entry_models(data)
        try:
            for model in models:
                await verify_model(async_get_clientsession(self.hass), endpoint_url(data), data[CONF_API_KEY],
                                   model.name)
        except DeepgramError as err:
            if err.code == "flux-not-found" and model.api == Api.NOVA:
                # Flux is there (checked first) but Nova-3 is not: a self-hosted Flux-only deployment. Said on
                # the switch, which may then be turned off; with Nova-3 as the entry's model, on the form.
                return {CONF_NOVA: "nova_not_found"} if len(models) > 1 else {"base": "nova_model_not_found"}
            if err.code in _FORM_ERRORS:
                return {"base": _FORM_ERRORS[err.code]}
            _LOGGER.error("Unexpected answer from Deepgram while checking the key: %s", err)
            return {"base": "unknown"}
        except Exception:  # anything else must still end in a readable form error
            _LOGGER.exception("Unexpected error while checking the key")
            return {"base": "unknown"}
        return {}

    _pending: dict[str, Any]  # the connection step's values, while the languages step asks about Nova-3
    _origin = "user"  # the connection step they came from: user or reconfigure

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Key, model and endpoint."""
        if user_input is None:
            return self._connection_form("user", {}, {})
        # pasted keys carry newlines
        return await self._connected({**user_input, CONF_API_KEY: user_input[CONF_API_KEY].strip()}, "user")

    async def _connected(self, data: dict[str, Any], origin: str) -> ConfigFlowResult:
        """The connection step's values: on to the languages step for a Flux model; Nova-3 hears every language
        itself, so its entry is checked and saved at once."""
        if (error := _check_custom_url(data)) is not None:
            return self._connection_form(origin, data, {CONF_CUSTOM_URL: error})
        if data[CONF_MODEL] == MODEL_NOVA:
            data.pop(CONF_NOVA, None)
            return await self._finish(data, origin)
        self._pending, self._origin = data, origin
        return await self.async_step_languages()

    async def async_step_languages(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Whether the languages the Flux model does not speak go to Nova-3."""
        if user_input is None:
            return self._languages_form({})
        return await self._finish({**self._pending, CONF_NOVA: user_input[CONF_NOVA]}, self._origin)

    def _languages_form(self, errors: dict[str, str]) -> ConfigFlowResult:
        data = self._pending
        return self.async_show_form(
            step_id="languages",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema({vol.Required(CONF_NOVA): BooleanSelector()}), {CONF_NOVA: data.get(CONF_NOVA, True)}),
            errors=errors,
            description_placeholders={"model": MODEL_NAMES[data[CONF_MODEL]]},
        )

    async def _finish(self, data: dict[str, Any], origin: str) -> ConfigFlowResult:
        """Check every model the entry uses, then create or update it; an error goes back to the connection
        step, where the key, model and endpoint are."""
        if errors := await self._validate(data):
            if CONF_NOVA in errors:  # about the switch: back to the step that has it
                self._pending, self._origin = data, origin
                return self._languages_form(errors)
            return self._connection_form(origin, data, errors)
        if origin == "reconfigure":
            return self._update_entry(self._get_reconfigure_entry(), data, title=entry_name(data))
        await self.async_set_unique_id(unique_id(data))
        self._abort_if_unique_id_configured()
        return self.async_create_entry(title=entry_name(data), data=data)

    def _connection_form(self, origin: str, values: dict[str, Any], errors: dict[str, str]) -> ConfigFlowResult:
        if origin == "reconfigure":  # the key stays empty: empty keeps the entry's
            schema = _connection_schema(values or self._get_reconfigure_entry().data, key_required=False)
        else:
            schema = self.add_suggested_values_to_schema(_connection_schema(values, True), values)
        return self.async_show_form(step_id=origin, data_schema=schema, errors=errors)

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Deepgram refused the key at run time."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for a new key for the same model and endpoint."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**entry.data, CONF_API_KEY: user_input[CONF_API_KEY].strip()}
            errors = await self._validate(data)
            if CONF_NOVA in errors:  # the switch is not on this form
                errors = {"base": errors[CONF_NOVA]}
            if not errors:
                return self._update_entry(entry, data)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema({vol.Required(CONF_API_KEY): TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))}),
            errors=errors,
            description_placeholders={"title": entry.title},
        )

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Change key (optional: empty keeps it), model or endpoint."""
        if user_input is None:
            return self._connection_form("reconfigure", {}, {})
        entry = self._get_reconfigure_entry()
        data = {**entry.data, **user_input}
        data[CONF_API_KEY] = (user_input.get(CONF_API_KEY) or "").strip() or entry.data[CONF_API_KEY]
        return await self._connected(data, "reconfigure")

    def _update_entry(self, entry: DeepgramFluxConfigEntry, data: dict[str, Any], **changes: Any) -> ConfigFlowResult:
        new_id = unique_id(data)
        if any(other.unique_id == new_id for other in self._async_current_entries() if other.entry_id != entry.entry_id):
            return self.async_abort(reason="already_configured")
        return self.async_update_reload_and_abort(entry, unique_id=new_id, data=data, **changes)

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: DeepgramFluxConfigEntry) -> DeepgramFluxOptionsFlow:
        return DeepgramFluxOptionsFlow()
