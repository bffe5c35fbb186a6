"""The options flow: the entry's options in Home Assistant form sections, saved flat (as entries store them).

A section is a name, its fields and whether it starts collapsed; a new option goes into the SECTIONS entry it
belongs to (or a new one) and the translations' `sections.<name>`. Errors are keyed by the section: Home
Assistant's frontend draws a form's errors above the item they are keyed to and passes none into a section, so
a field inside one cannot carry its own; each message names its field, and a section with an error (or with
values the user changed) is shown open again, collapsed or not."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import voluptuous as vol
from homeassistant.config_entries import ConfigFlowResult, OptionsFlowWithReload
from homeassistant.data_entry_flow import section
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
)

from wyoming_flux import RANGES

from .entry import options_with_defaults, uses_nova
from .const import (
    CONF_BOOST_EXPOSED,
    CONF_EAGER_EOT_THRESHOLD,
    CONF_EARLY_ANSWER,
    CONF_END_OF_SPEECH,
    CONF_ENDPOINTING_MS,
    CONF_EOT_THRESHOLD,
    CONF_EOT_TIMEOUT_MS,
    CONF_FALLBACK_ENTITY,
    CONF_KEYTERMS,
    CONF_MAX_COMMAND_SECONDS,
    CONF_MIP_OPT_OUT,
    CONF_MONTHLY_CAP_MINUTES,
    CONF_NO_SPEECH_TIMEOUT,
    CONF_PRICE_PER_MINUTE,
    CONF_TAGS,
    CONF_UTTERANCE_END_MS,
    END_OF_SPEECH_FLUX,
    END_OF_SPEECH_HA_VAD,
)
from .fallback import fallback_schema, valid_fallback


class RangedNumber(NumberSelector):
    """A number box whose range the flow checks itself: Home Assistant's own check of a field in a section
    reports it by its internal path ("Value 1.5 is too large at 'turn.eot_threshold'")."""

    def __call__(self, data: Any) -> float:
        return float(vol.Coerce(float)(data))


def _number(low: float, high: float, step: float | Literal["any"], unit: str | None = None) -> RangedNumber:
    config = NumberSelectorConfig(min=low, max=high, step=step, mode=NumberSelectorMode.BOX)
    if unit is not None:
        config["unit_of_measurement"] = unit
    return RangedNumber(config)


def plain(number: float) -> str:
    """A number as a person writes it: 0.7, 1000000 (not 1e+06)."""
    return f"{number:f}".rstrip("0").rstrip(".")


def range_placeholders(low: float, high: float) -> dict[str, str]:
    """A range as the fields' hints write it: "0.5 to 1.0" (a bound of a decimal range keeps one decimal, so the
    sentence does not end in "1."), "500 to 60000"."""
    decimal = any(bound != int(bound) for bound in (low, high))
    return {name: f"{bound:.1f}" if decimal and bound == int(bound) else plain(bound)
            for name, bound in (("low", low), ("high", high))}


def range_error(fields: Mapping[vol.Marker, Any], values: Mapping[str, Any]) -> tuple[str, dict[str, str]] | None:
    """The first value outside its field's range: the error key naming that field, and the range."""
    for marker, selector in fields.items():
        value = values.get(str(marker))
        if isinstance(selector, RangedNumber) and value is not None:
            low, high = selector.config["min"], selector.config["max"]
            if not low <= value <= high:
                return f"out_of_range_{marker}", range_placeholders(low, high)
    return None


CAP_FIELD: dict[vol.Marker, Any] = {vol.Optional(CONF_MONTHLY_CAP_MINUTES): _number(1, 1_000_000, 1, "min")}


@dataclass(frozen=True)
class Section:
    name: str
    fields: dict[vol.Marker, Any]
    collapsed: bool = False


# In the order the form shows them: what a command does first, the rarely changed ones collapsed.
SECTIONS: tuple[Section, ...] = (
    Section("turn", {
        vol.Required(CONF_END_OF_SPEECH): SelectSelector(SelectSelectorConfig(
            options=[END_OF_SPEECH_FLUX, END_OF_SPEECH_HA_VAD], translation_key=CONF_END_OF_SPEECH,
            mode=SelectSelectorMode.LIST)),
        vol.Optional(CONF_EARLY_ANSWER, default=True): BooleanSelector(),
        vol.Required(CONF_EOT_THRESHOLD): _number(*RANGES["eot_threshold"], 0.01),
        vol.Optional(CONF_EAGER_EOT_THRESHOLD): _number(*RANGES["eager_eot_threshold"], 0.01),
        vol.Required(CONF_EOT_TIMEOUT_MS): _number(*RANGES["eot_timeout_ms"], 100, "ms"),
        vol.Required(CONF_NO_SPEECH_TIMEOUT): _number(*RANGES["no_speech_timeout"], 0.5, "s"),
        vol.Required(CONF_MAX_COMMAND_SECONDS): _number(*RANGES["max_command_seconds"], 1, "s"),
    }),
    Section("names", {
        vol.Required(CONF_BOOST_EXPOSED): BooleanSelector(),
        vol.Optional(CONF_KEYTERMS): TextSelector(TextSelectorConfig(multiple=True)),
    }),
    Section("usage", {
        # "any": rates like 0.0065 USD are finer than the smallest step a number selector takes
        vol.Optional(CONF_PRICE_PER_MINUTE): _number(0, 1, "any", "USD/min"),
        **CAP_FIELD,
        vol.Optional(CONF_TAGS): TextSelector(TextSelectorConfig(multiple=True)),
        vol.Optional(CONF_MIP_OPT_OUT, default=False): BooleanSelector(),
    }, collapsed=True),
    Section("fallback", {}, collapsed=True),  # its entity field depends on the entry: see _schema
)
# Only for an entry that uses Nova-3 (its model, or for the other languages): added to "turn" by _schema.
NOVA_FIELDS: dict[vol.Marker, Any] = {  # empty: the default
    vol.Optional(CONF_ENDPOINTING_MS): _number(*RANGES["endpointing_ms"], 10, "ms"),
    vol.Optional(CONF_UTTERANCE_END_MS): _number(*RANGES["utterance_end_ms"], 100, "ms"),
}
NOVA_OPTIONS = tuple(str(marker) for marker in NOVA_FIELDS)


def _schema(extra: Mapping[str, dict[vol.Marker, Any]], opened: Collection[str] = ()) -> vol.Schema:
    return vol.Schema({
        vol.Required(part.name): section(vol.Schema({**part.fields, **extra.get(part.name, {})}),
                                         {"collapsed": part.collapsed and part.name not in opened})
        for part in SECTIONS
    })


def _filled(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in (None, "", [])}


def nest(options: Mapping[str, Any], schema: vol.Schema) -> dict[str, dict[str, Any]]:
    """Flat options -> the form's {section: {field: value}}, for its suggested values."""
    return {name: {key: options[key] for key in (str(marker) for marker in part.schema.schema) if key in options}
            for name, part in ((str(k), v) for k, v in schema.schema.items())}


def flatten(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """The form's {section: {field: value}} -> flat options."""
    return {key: value for fields in user_input.values() for key, value in fields.items()}


class DeepgramFluxOptionsFlow(OptionsFlowWithReload):
    """How Flux decides the end of a turn, what it should expect to hear, cost and cap, and the fallback."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        entry_id = self.config_entry.entry_id
        nova = uses_nova(self.config_entry.data)
        extra = {"fallback": fallback_schema(self.hass, entry_id), "turn": NOVA_FIELDS if nova else {}}
        schema = _schema(extra)
        if user_input is not None:
            # Options the form does not show (Nova-3's, while it is off) keep their values.
            kept = {} if nova else {key: value for key, value in self.config_entry.options.items()
                                    if key in NOVA_OPTIONS}
            options = {**kept, **flatten(user_input)}
            options[CONF_KEYTERMS] = [t.strip() for t in options.get(CONF_KEYTERMS) or [] if t.strip()]
            options[CONF_TAGS] = [t.strip()[:128] for t in options.get(CONF_TAGS) or [] if t.strip()]
            if not valid_fallback(self.hass, entry_id, options.get(CONF_FALLBACK_ENTITY)):
                errors["fallback"] = "invalid_fallback"
            # One range error at a time: the form's placeholders ({low}, {high}) are shared by its sections.
            for part in SECTIONS:
                if (found := range_error({**part.fields, **extra.get(part.name, {})}, options)) is not None:
                    errors[part.name], range_placeholders = found
                    placeholders.update(range_placeholders)
                    break
            eager = options.get(CONF_EAGER_EOT_THRESHOLD)
            if "turn" not in errors and eager is not None and eager > options[CONF_EOT_THRESHOLD]:
                errors["turn"] = "eager_above_eot"  # the one rule between two fields
                placeholders["eot_threshold"] = plain(options[CONF_EOT_THRESHOLD])
            if not errors:
                for key in (CONF_EOT_TIMEOUT_MS, *NOVA_OPTIONS):
                    if options.get(key) is not None:
                        options[key] = int(options[key])
                return self.async_create_entry(data=options)
        saved = nest(options_with_defaults(self.config_entry), schema)
        if user_input is not None:  # shown again: the sections the user was working in stay open
            opened = {*errors, *(name for name, values in user_input.items()
                                 if _filled(values) != _filled(saved.get(name, {})))}
            schema = _schema(extra, opened)
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or saved),
            errors=errors,
            description_placeholders=placeholders,
        )
