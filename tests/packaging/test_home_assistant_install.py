"""The integration's requirements, installed into Home Assistant's environment the way Home Assistant itself
installs them (its own `install_package`, under its `package_constraints.txt`), for the oldest release
hacs.json claims and the newest release: nothing Home Assistant installed or pins moves, its built-in Wyoming
integration keeps its `wyoming`, and the integration imports there with the core from the built wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.packaging.conftest import ROOT, Built, find_python, make_venv, uv

OLDEST = json.loads((ROOT / "hacs.json").read_text())["homeassistant"]
NEWEST = "2026.11.0"  # the newest Home Assistant release

INSTALL = """
import logging, sys
from homeassistant.util.package import install_package
logging.basicConfig(level=logging.INFO)
sys.exit(0 if all(install_package(r, constraints=sys.argv[1]) for r in sys.argv[2:]) else 1)
"""
IS_INSTALLED = """
import sys
from homeassistant.util.package import is_installed
sys.exit(0 if all(is_installed(r) for r in sys.argv[1:]) else 1)
"""


def freeze(python: Path) -> dict[str, str]:
    out = subprocess.run([uv(), "pip", "freeze", "-p", str(python)], capture_output=True, text=True, check=True)
    return dict(line.split("==", 1) for line in out.stdout.splitlines() if "==" in line)


def ha_file(python: Path, *parts: str) -> Path:
    out = subprocess.run([str(python), "-c", "import homeassistant; print(homeassistant.__path__[0])"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip()).joinpath(*parts)


@pytest.mark.parametrize("release", [OLDEST, NEWEST])
def test_requirements_install_into_home_assistant_without_moving_anything(
    built: Built, tmp_path: Path, release: str
) -> None:
    python = make_venv(tmp_path / "ha", find_python("3.14"), f"homeassistant=={release}") / "python"
    constraints = ha_file(python, "package_constraints.txt")
    env = {**os.environ, "UV_FIND_LINKS": str(built.wheel.parent)}  # our wheel, not yet on PyPI
    # Home Assistant's built-in Wyoming integration, set up first, with the wyoming it pins.
    builtin = json.loads(ha_file(python, "components", "wyoming", "manifest.json").read_text())["requirements"]
    subprocess.run([str(python), "-c", INSTALL, str(constraints), *builtin], env=env, check=True)
    before = freeze(python)

    ours = json.loads((ROOT / "custom_components" / "deepgram_flux" / "manifest.json").read_text())["requirements"]
    result = subprocess.run([str(python), "-c", INSTALL, str(constraints), *ours], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    after = freeze(python)

    moved = {name: (version, after.get(name)) for name, version in before.items() if after.get(name) != version}
    assert moved == {}, f"installing {ours} into Home Assistant {release} moved {moved}"
    assert set(after) - set(before) <= {"wyoming-flux", "numpy"}
    wyoming_pin = builtin[0].split("==")[1]
    assert after["wyoming"] == wyoming_pin
    # Home Assistant checks requirements at every start: satisfied now, so it installs nothing again.
    assert subprocess.run([str(python), "-c", IS_INSTALLED, *ours, *builtin], check=False).returncode == 0

    # The integration imports in that environment, with the core from the wheel, not from a checkout.
    config = tmp_path / "config"
    shutil.copytree(ROOT / "custom_components", config / "custom_components",
                    ignore=shutil.ignore_patterns("__pycache__"))
    probe = subprocess.run(
        [str(python), "-c", "import custom_components.deepgram_flux.stt, custom_components.deepgram_flux.config_flow,"
         " wyoming_flux; print(wyoming_flux.__file__)"],
        cwd=config, capture_output=True, text=True, check=False,
    )
    assert probe.returncode == 0, probe.stderr
    assert "site-packages" in probe.stdout
