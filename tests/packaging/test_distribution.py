"""Packaging checks that can run here: add-on config against the Supervisor's schema rules, Docker files,
HACS/hassfest manifest rules, translations, icons, and one version everywhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from PIL import Image

from wyoming_flux import __version__
from wyoming_flux.cli.main import build_parser

ROOT = Path(__file__).parents[2]
ADDON = ROOT / "addon"
INTEGRATION = ROOT / "custom_components" / "deepgram_flux"

# The Supervisor's grammar for one option's schema (supervisor/addons/validate.py).
SCHEMA_ELEMENT = re.compile(
    r"^(?:|bool|email|url|port|device(?:\((?P<filter>subsystem=[a-z]+)\))?"
    r"|str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?|password(?:\((?P<p_min>\d+)?,(?P<p_max>\d+)?\))?"
    r"|int(?:\((?P<i_min>\d+)?,(?P<i_max>\d+)?\))?|float(?:\((?P<f_min>[\d.]+)?,(?P<f_max>[\d.]+)?\))?"
    r"|match\((?P<match>.*)\)|list\((?P<list>.+)\))\??$"
)
ARCHES = {"aarch64", "amd64", "armhf", "armv7", "i386"}


def addon_config() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ADDON / "config.yaml").read_text())


def env_names_of_cli() -> set[str]:
    return set(re.findall(r"\b((?:WYOMING_FLUX|DEEPGRAM)_[A-Z_]+)\b", build_parser().format_help().replace("\n", " ")))


def check_value(schema: str, value: object) -> None:
    match = SCHEMA_ELEMENT.match(schema)
    assert match, schema
    kind = schema.split("(")[0].rstrip("?")
    if kind in ("int", "float"):
        assert isinstance(value, (int, float)) and not isinstance(value, bool)
        low, high = (match.group("i_min"), match.group("i_max")) if kind == "int" else (match.group("f_min"), match.group("f_max"))
        assert (low is None or value >= float(low)) and (high is None or value <= float(high)), (schema, value)
    elif kind == "list":
        assert value in match.group("list").split("|"), (schema, value)
    elif kind == "bool":
        assert isinstance(value, bool)
    else:
        assert isinstance(value, str)


def test_addon_config_follows_the_supervisor_rules() -> None:
    config = addon_config()
    for key in ("name", "version", "slug", "description", "arch"):
        assert config.get(key), key
    assert isinstance(config["version"], str) and config["version"] == __version__
    assert re.fullmatch(r"[a-z0-9_]+", config["slug"])
    assert set(config["arch"]) <= ARCHES
    assert config["discovery"] == ["wyoming"]  # Home Assistant offers the Wyoming integration itself
    assert config["homeassistant_api"] is True  # names for keyterms through the Supervisor, no user step
    assert all(re.fullmatch(r"\d+/(tcp|udp)", port) for port in config["ports"])
    schema, options = config["schema"], config["options"]
    assert set(options) <= set(schema)
    for key, rule in schema.items():
        rules = rule if isinstance(rule, list) else [rule]
        assert all(isinstance(r, str) and SCHEMA_ELEMENT.match(r) for r in rules), (key, rule)
        if key in options and not isinstance(rule, list):
            check_value(rule, options[key])
        if not isinstance(rule, list) and not rule.endswith("?"):
            assert key in options, f"required option {key} has no default"
    build = yaml.safe_load((ADDON / "build.yaml").read_text())
    assert set(build["build_from"]) == set(config["arch"])
    assert f'"wyoming-flux[server]=={__version__}"' in (ADDON / "Dockerfile").read_text()
    # The Supervisor pulls the image the release workflow pushes, tagged with the add-on's version.
    assert config["image"] == "ghcr.io/wyoming-flux/{arch}-addon-wyoming-flux"


def test_addon_run_script_maps_every_option_onto_a_real_setting() -> None:
    run = (ADDON / "run.sh").read_text()
    for key in addon_config()["schema"]:
        assert f"'{key}" in run, f"option {key} is not used by run.sh"
    used = set(re.findall(r"(?:export|option) ((?:WYOMING_FLUX|DEEPGRAM)_[A-Z_]+)", run))
    assert used and used <= env_names_of_cli()
    assert 'bashio::discovery "wyoming"' in run
    # Names from Home Assistant with the add-on's own token, through the Supervisor's proxy of Core's API.
    assert 'WYOMING_FLUX_HASS_URL="http://supervisor/core"' in run and 'HASS_TOKEN="$SUPERVISOR_TOKEN"' in run
    assert subprocess.run(["bash", "-n", str(ADDON / "run.sh")], check=False).returncode == 0  # valid shell


def test_every_cli_flag_can_be_set_from_the_environment() -> None:
    for action in build_parser()._actions:
        if action.dest in ("help", "version"):
            continue
        assert "env " in (action.help or ""), f"--{action.dest} has no environment variable"


def test_repository_and_docker_files() -> None:
    repo = yaml.safe_load((ROOT / "repository.yaml").read_text())
    assert {"name", "url", "maintainer"} <= set(repo)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert re.search(r'HEALTHCHECK .*\n?.*"wyoming-flux", "check"', dockerfile)
    assert 'ENTRYPOINT ["wyoming-flux"]' in dockerfile
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["wyoming-flux"]
    assert set(service["environment"]) <= env_names_of_cli()
    assert "deepgram_api_key" in compose["secrets"]


def test_manifest_follows_hassfest_and_hacs() -> None:
    text = (INTEGRATION / "manifest.json").read_text()
    manifest = json.loads(text)
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"] and keys[2:] == sorted(keys[2:])
    assert manifest["domain"] == INTEGRATION.name and manifest["config_flow"] is True
    assert (manifest["iot_class"], manifest["integration_type"]) == ("cloud_push", "service")
    for key in ("documentation", "issue_tracker", "codeowners", "version"):
        assert manifest[key]
    assert manifest["version"] == __version__ and manifest["requirements"] == [f"wyoming-flux=={__version__}"]
    hacs = json.loads((ROOT / "hacs.json").read_text())
    known = {"name", "content_in_root", "zip_release", "filename", "hide_default_branch", "country",
             "homeassistant", "hacs", "persistent_directory", "render_readme"}
    assert set(hacs) <= known and hacs["name"] and hacs["homeassistant"] == "2026.5.0"


@pytest.mark.parametrize(("name", "size"), [("icon.png", 256), ("icon@2x.png", 512)])
def test_brand_icons(name: str, size: int) -> None:
    with Image.open(INTEGRATION / "brand" / name) as image:
        assert image.size == (size, size) and image.format == "PNG"


def test_translations_cover_every_error_and_step() -> None:
    strings = json.loads((INTEGRATION / "strings.json").read_text())
    assert strings == json.loads((INTEGRATION / "translations" / "en.json").read_text())
    flow = (INTEGRATION / "config_flow.py").read_text()
    for error in set(re.findall(r'"(invalid_auth|model_forbidden|cannot_connect|invalid_url|unknown)"', flow)):
        assert error in strings["config"]["error"]
    options = (INTEGRATION / "options_flow.py").read_text()
    for error in set(re.findall(r'errors\[[^]]+\] = "(\w+)"', options)):
        assert error in strings["options"]["error"]
    for step in re.findall(r'step_id="(\w+)"', flow):
        assert step in strings["config"]["step"]
    assert "init" in strings["options"]["step"]
    assert "http" not in json.dumps(strings)  # no URLs in strings


BASHIO_STAND_IN = r"""
# Just enough of bashio for run.sh: options come from $OPTIONS (JSON), lists one item per line.
bashio::config() { python3 -c 'import json, os, sys
value = json.loads(os.environ["OPTIONS"]).get(sys.argv[1])
print("\n".join(value) if isinstance(value, list) else ("" if value is None else str(value).lower() if isinstance(value, bool) else value))' "$1"; }
bashio::config.has_value() { [ -n "$(bashio::config "$1")" ]; }
bashio::config.true() { [ "$(bashio::config "$1")" = "true" ]; }
bashio::exit.nok() { echo "$1" >&2; exit 1; }
bashio::var.json() { echo "{}"; }
bashio::discovery() { return 0; }
bashio::log.info() { :; }
bashio::log.warning() { :; }
"""


def test_addon_run_script_passes_list_options_whole(tmp_path: Path) -> None:
    # A keyterm may hold a comma; each list item must reach the server as one value.
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "wyoming-flux"  # records how run.sh starts the server
    fake.write_text('#!/bin/sh\n[ "$1" = check ] && exit 0\nprintf "%s\\n" "$@" > "$RECORD"\n'
                    'env | grep -E "^(WYOMING_FLUX|DEEPGRAM)_" | sort >> "$RECORD"\n')
    fake.chmod(0o755)
    (tmp_path / "bashio.sh").write_text(BASHIO_STAND_IN)
    options = {**addon_config()["options"], "api_key": "k3y", "keyterms": ["Smith, John", "Zoë"],
               "tags": ["kitchen,main"]}
    record = tmp_path / "record"
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "OPTIONS": json.dumps(options), "RECORD": str(record)}
    subprocess.run(["bash", "-c", f'source "{tmp_path / "bashio.sh"}"; source "{ADDON / "run.sh"}"'],
                   env=env, check=True, timeout=60)
    lines = record.read_text().splitlines()
    assert lines[:6] == ["--keyterm", "Smith, John", "--keyterm", "Zoë", "--tag", "kitchen,main"]
    assert "DEEPGRAM_API_KEY=k3y" in lines and not any(line.startswith("WYOMING_FLUX_KEYTERMS") for line in lines)
    from wyoming_flux.cli.main import build_parser, settings_from_args

    argv = lines[: lines.index("DEEPGRAM_API_KEY=k3y")]
    settings = settings_from_args(build_parser().parse_args(["--api-key", "k", *argv]))
    assert settings.session.keyterms == ("Smith, John", "Zoë") and settings.session.tags == ("kitchen,main",)


def test_addon_option_ranges_are_the_servers() -> None:
    # The add-on's YAML cannot import wyoming_flux.common.bounds: the same table, checked here.
    from wyoming_flux.common.bounds import RANGES

    schema = addon_config()["schema"]
    for name, (low, high) in RANGES.items():
        match = re.fullmatch(r"(?:int|float)\(([^,]*),([^)]*)\)\??", schema[name])
        assert match, f"{name}: {schema[name]}"
        assert (float(match[1]), float(match[2])) == (low, high), name
