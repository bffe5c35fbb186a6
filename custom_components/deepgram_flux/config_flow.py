"""Config flow for Deepgram Flux: key, model and endpoint, checked by a real Flux handshake."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import voluptuous as vol
from homeassistant.config_entries import (
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlowWithReload,
)
from homeassistant.const import CONF_API_KEY
from homeassistant.core import callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)

from wyoming_flux import RANGES, FluxError, validate_thresholds, verify_access

from . import DeepgramFluxConfigEntry, endpoint_url, options_with_defaults
from .const import (
    CONF_BOOST_EXPOSED,
    CONF_CUSTOM_URL,
    CONF_EAGER_EOT_THRESHOLD,
    CONF_END_OF_SPEECH,
    CONF_ENDPOINT,
    CONF_EOT_THRESHOLD,
    CONF_EOT_TIMEOUT_MS,
    CONF_FALLBACK_ENTITY,
    CONF_KEYTERMS,
    CONF_MAX_COMMAND_SECONDS,
    CONF_MIP_OPT_OUT,
    CONF_MODEL,
    CONF_MONTHLY_CAP_MINUTES,
    CONF_NO_SPEECH_TIMEOUT,
    CONF_PRICE_PER_MINUTE,
    CONF_TAGS,
    DOMAIN,
    END_OF_SPEECH_FLUX,
    END_OF_SPEECH_HA_VAD,
    ENDPOINT_CUSTOM,
    ENDPOINT_US,
    ENDPOINTS,
    MODELS,
)
from .fallback import fallback_schema, valid_fallback

# Handshake error code -> the form's error key; every other FluxError is "unknown" (and logged).
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
            vol.Required(CONF_ENDPOINT, default=defaults.get(CONF_ENDPOINT, ENDPOINT_US)): SelectSelector(
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
    url = urlparse(str(data.get(CONF_CUSTOM_URL) or ""))
    if url.scheme not in ("ws", "wss") or not url.netloc:
        return "invalid_url"
    return None


class DeepgramFluxConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up, re-authenticate and reconfigure a Deepgram Flux connection."""

    VERSION = 1

    async def _validate(self, data: dict[str, Any]) -> dict[str, str]:
        """A real Flux handshake with these values: errors for the form, or none."""
        if (error := _check_custom_url(data)) is not None:
            return {CONF_CUSTOM_URL: error}
        try:
            await verify_access(
                async_get_clientsession(self.hass), endpoint_url(data), data[CONF_API_KEY], data[CONF_MODEL]
            )
        except FluxError as err:
            if err.code in _FORM_ERRORS:
                return {"base": _FORM_ERRORS[err.code]}
            _LOGGER.error("Unexpected answer from Flux while checking the key: %s", err)
            return {"base": "unknown"}
        except Exception:  # anything else must still end in a readable form error
            _LOGGER.exception("Unexpected error while checking the key")
            return {"base": "unknown"}
        return {}

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Key, model and endpoint."""
        errors: dict[str, str] = {}
        if user_input is not None:
            user_input = {**user_input, CONF_API_KEY: user_input[CONF_API_KEY].strip()}  # pasted keys carry newlines
            errors = await self._validate(user_input)
            if not errors:
                await self.async_set_unique_id(unique_id(user_input))
                self._abort_if_unique_id_configured()
                return self.async_create_entry(title=f"Deepgram Flux ({user_input[CONF_MODEL]})", data=user_input)
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(_connection_schema(user_input or {}, True), user_input),
            errors=errors,
        )

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
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**entry.data, **user_input}
            data[CONF_API_KEY] = (user_input.get(CONF_API_KEY) or "").strip() or entry.data[CONF_API_KEY]
            errors = await self._validate(data)
            if not errors:
                return self._update_entry(entry, data, title=f"Deepgram Flux ({data[CONF_MODEL]})")
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=_connection_schema(user_input or entry.data, key_required=False),
            errors=errors,
        )

    def _update_entry(self, entry: DeepgramFluxConfigEntry, data: dict[str, Any], **changes: Any) -> ConfigFlowResult:
        new_id = unique_id(data)
        if any(other.unique_id == new_id for other in self._async_current_entries() if other.entry_id != entry.entry_id):
            return self.async_abort(reason="already_configured")
        return self.async_update_reload_and_abort(entry, unique_id=new_id, data=data, **changes)

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: DeepgramFluxConfigEntry) -> DeepgramFluxOptionsFlow:
        return DeepgramFluxOptionsFlow()


def _number(low: float, high: float, step: float | str, unit: str | None = None) -> NumberSelector:
    config = NumberSelectorConfig(min=low, max=high, step=step, mode=NumberSelectorMode.BOX)
    if unit is not None:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


OPTIONS_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_END_OF_SPEECH): SelectSelector(
            SelectSelectorConfig(options=[END_OF_SPEECH_FLUX, END_OF_SPEECH_HA_VAD], translation_key=CONF_END_OF_SPEECH,
                                 mode=SelectSelectorMode.LIST)
        ),
        vol.Required(CONF_EOT_THRESHOLD): _number(*RANGES["eot_threshold"], 0.01),
        vol.Optional(CONF_EAGER_EOT_THRESHOLD): _number(*RANGES["eager_eot_threshold"], 0.01),
        vol.Required(CONF_EOT_TIMEOUT_MS): _number(*RANGES["eot_timeout_ms"], 100, "ms"),
        vol.Required(CONF_BOOST_EXPOSED): BooleanSelector(),
        vol.Optional(CONF_KEYTERMS): TextSelector(TextSelectorConfig(multiple=True)),
        vol.Required(CONF_NO_SPEECH_TIMEOUT): _number(*RANGES["no_speech_timeout"], 0.5, "s"),
        vol.Required(CONF_MAX_COMMAND_SECONDS): _number(*RANGES["max_command_seconds"], 1, "s"),
        vol.Optional(CONF_MIP_OPT_OUT, default=False): BooleanSelector(),
        vol.Optional(CONF_TAGS): TextSelector(TextSelectorConfig(multiple=True)),
        # "any": rates like 0.0065 USD are finer than the smallest step a number selector takes
        vol.Optional(CONF_PRICE_PER_MINUTE): _number(0, 1, "any", "USD/min"),
        vol.Optional(CONF_MONTHLY_CAP_MINUTES): _number(1, 1_000_000, 1, "min"),
    }
)


class DeepgramFluxOptionsFlow(OptionsFlowWithReload):
    """How Flux decides the end of a turn, what it should expect to hear, and the bounds of a command."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {"error": ""}
        if user_input is not None:
            options = dict(user_input)
            options[CONF_KEYTERMS] = [t.strip() for t in options.get(CONF_KEYTERMS) or [] if t.strip()]
            options[CONF_TAGS] = [t.strip()[:128] for t in options.get(CONF_TAGS) or [] if t.strip()]
            options[CONF_EOT_TIMEOUT_MS] = int(options[CONF_EOT_TIMEOUT_MS])
            if not valid_fallback(self.hass, self.config_entry.entry_id, options.get(CONF_FALLBACK_ENTITY)):
                errors[CONF_FALLBACK_ENTITY] = "invalid_fallback"
            try:
                validate_thresholds(
                    options[CONF_EOT_THRESHOLD], options.get(CONF_EAGER_EOT_THRESHOLD), options[CONF_EOT_TIMEOUT_MS]
                )
            except ValueError as err:  # the same ranges the server enforces, from the shared core
                errors[CONF_EAGER_EOT_THRESHOLD if CONF_EAGER_EOT_THRESHOLD in str(err) else "base"] = "invalid_threshold"
                placeholders["error"] = str(err)
            else:
                if not errors:
                    return self.async_create_entry(data=options)
        schema = OPTIONS_SCHEMA.extend(fallback_schema(self.hass, self.config_entry.entry_id))
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or options_with_defaults(self.config_entry)),
            errors=errors,
            description_placeholders=placeholders,
        )
