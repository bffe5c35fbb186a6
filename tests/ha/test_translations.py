"""Every string of the integration goes through Home Assistant's own translation loader intact.

Home Assistant 2026.11's loader parses each string's placeholders with Python's formatter and drops the ones it
cannot parse (ICU plurals and dates among them), logging "Error while parsing localized (en) string": the form
or repair then shows a bare field or an empty alert. Older releases keep such strings, so beside what the
harness's loader returns the test applies that parse itself: it fails on every release."""

from __future__ import annotations

import json
import logging
import string
from pathlib import Path

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers.translation import async_get_translations, recursive_flatten

from custom_components.deepgram_flux.const import DOMAIN

TRANSLATIONS = Path(__file__).parents[2] / "custom_components" / DOMAIN / "translations" / "en.json"


def unparsable(text: str) -> str | None:
    """Why Home Assistant's loader would drop this string, or None."""
    try:
        list(string.Formatter().parse(text))
    except ValueError as err:
        return str(err)
    return None


async def test_every_string_loads_through_home_assistants_translation_helper(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="homeassistant.helpers.translation")
    strings = json.loads(TRANSLATIONS.read_text())
    for category, tree in strings.items():
        expected = recursive_flatten(f"component.{DOMAIN}.{category}.", tree)
        loaded = await async_get_translations(hass, "en", category, [DOMAIN])
        assert sorted(set(expected) - set(loaded)) == [], f"dropped by Home Assistant's loader ({category})"
        assert {key: loaded[key] for key in expected} == expected
        assert {key: why for key, text in expected.items() if (why := unparsable(text))} == {}
    assert "deepgram_flux" not in caplog.text  # no "Error while parsing" or placeholder mismatch of ours


def test_the_parse_refuses_what_home_assistant_drops() -> None:
    """The check above is the loader's: an ICU plural is refused, plain placeholders pass."""
    assert unparsable("{title} has sent {cap, plural, one {# audio minute} other {# audio minutes}}") is not None
    assert unparsable("{title} has sent its monthly cap of {cap} until {reset}.") is None
