"""Names as keyterms (shared with the integration), Home Assistant addresses, and the server's --hass flags."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from wyoming_flux.cli.main import ConfigError, build_parser, main, settings_from_args
from wyoming_flux.deepgram.flux import estimate_tokens
from wyoming_flux.server.hass.names import _aliases, _area, _exposed, _exposed_state, websocket_url
from wyoming_flux.turn.names import Named, keyterms_from_names


def test_areas_come_first_then_entities_each_with_aliases_within_the_budget() -> None:
    areas = [Named("Kitchen", ("Cuisine", "Cooking area")), Named("Léa's Room")]
    entities = [Named("Kitchen", ("kitchen",)), Named("Hue Strip", ("Rainbow",))]
    entities += [Named(f"Garage outlet number {i}") for i in range(300)]
    terms = keyterms_from_names(areas, entities)
    # Aliases of an area sorted (a set in HA), duplicates dropped whatever their case, the tail cut at the budget.
    assert terms[:5] == ["Kitchen", "Cooking area", "Cuisine", "Léa's Room", "Hue Strip"]
    assert terms[5] == "Rainbow" and "Garage outlet number 0" in terms and "Garage outlet number 299" not in terms
    assert sum(estimate_tokens(t) for t in terms) <= 500
    assert keyterms_from_names(areas, entities, budget=5) == ["Kitchen", "Cooking area"]


def test_registry_oddities_keep_only_text() -> None:
    # Among an entity's aliases HA stores None for "its own name"; a missing name is no keyterm.
    assert Named.of("Lamp", [None, "Light", 3]) == Named("Lamp", ("Light",))
    assert keyterms_from_names([Named.of(None, [])], [Named.of("Lamp", [None])]) == ["Lamp"]


def names_from(areas: list[Any], exposed: dict[str, Any], states: list[Any],
               entries: dict[str, Any]) -> tuple[list[Named], list[Named]]:
    """HA's answers -> areas and exposed entities, as the names reader keeps them element by element."""
    exposed_ids = {key: True for key, value in exposed.items() if _exposed(key, value)}
    keep = _exposed_state(exposed_ids)
    kept = [item for state in states if (item := keep(None, state)) is not None]
    aliases = {key: item for key, value in entries.items() if (item := _aliases(key, value)) is not None}
    entities = [Named.of(name, aliases.get(entity_id, ())) for entity_id, name in kept]
    return [item for area in areas if (item := _area(None, area)) is not None], entities


def test_names_from_home_assistants_answers() -> None:
    areas = [{"area_id": "k", "name": "Kitchen", "aliases": ["Cuisine"]}, "junk"]
    exposed = {"light.a": {"conversation": True}, "light.b": {"cloud.alexa": True}}
    states = [
        {"entity_id": "light.a", "attributes": {"friendly_name": "Ceiling"}},
        {"entity_id": "light.b", "attributes": {"friendly_name": "Alexa only"}},
        {"entity_id": "switch.c", "attributes": {}},
        {"entity_id": 5},
    ]
    exposed["switch.c"] = {"conversation": True}
    got_areas, got_entities = names_from(areas, exposed, states, {"light.a": {"aliases": ["Top light", None]}})
    assert got_areas == [Named("Kitchen", ("Cuisine",))]
    # No friendly name: HA's own fallback, the object id with spaces.
    assert got_entities == [Named("Ceiling", ("Top light",)), Named("c")]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://homeassistant.local:8123", "ws://homeassistant.local:8123/api/websocket"),
        ("https://ha.example.org/", "wss://ha.example.org/api/websocket"),
        ("http://supervisor/core", "ws://supervisor/core/websocket"),  # the add-on's proxy
        ("ws://10.0.0.2:8123/api/websocket", "ws://10.0.0.2:8123/api/websocket"),
    ],
)
def test_websocket_url(url: str, expected: str) -> None:
    assert websocket_url(url) == expected


@pytest.mark.parametrize("url", ["homeassistant.local:8123", "ftp://ha", "http://"])
def test_a_url_that_is_no_home_assistant_address_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="is not an http"):
        websocket_url(url)


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["--api-key", "k", *argv])


@pytest.mark.parametrize(
    ("argv", "token", "message"),
    [
        (["--hass-url", "http://ha:8123"], None, "--hass-url needs a long-lived access token"),
        (["--hass-url", "ha:8123"], "t", "--hass-url: ha:8123 is not an http"),
        (["--hass-url", "http://ha:8123", "--hass-token-file", "/nonexistent/token"], None,
         "cannot read --hass-token-file"),
        (["--hass-token-file", "/nonexistent/token"], None, "--hass-token-file needs --hass-url"),
    ],
)
def test_bad_home_assistant_settings_are_one_clear_line(
    argv: list[str], token: str | None, message: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HASS_TOKEN", raising=False)
    if token is not None:
        monkeypatch.setenv("HASS_TOKEN", token)
    assert main(["--api-key", "k", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "Traceback" not in err


def test_the_token_comes_from_a_file_or_the_environment_never_a_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HASS_TOKEN", "from-env")
    settings = settings_from_args(args("--hass-url", "http://ha:8123"))
    assert (settings.hass_url, settings.hass_token) == ("http://ha:8123", "from-env")
    (tmp_path / "token").write_text("from-file\n")
    settings = settings_from_args(args("--hass-url", "http://ha:8123", "--hass-token-file", str(tmp_path / "token")))
    assert settings.hass_token == "from-file" and "from-file" not in repr(settings)
    assert not any(a.dest == "hass_token" for a in build_parser()._actions)
    monkeypatch.delenv("HASS_TOKEN")
    assert settings_from_args(args()).hass_url is None  # off unless asked for
    with pytest.raises(ConfigError):
        settings_from_args(args("--hass-url", "http://ha:8123"))
