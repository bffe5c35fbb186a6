"""One version: script/release sets it everywhere a release names it, and its check fails on any drift."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wyoming_flux import __version__

ROOT = Path(__file__).parents[2]
RELEASE = ROOT / "script" / "release"
FILES = ("wyoming_flux/__init__.py", "custom_components/deepgram_flux/manifest.json", "addon/config.yaml",
         "addon/Dockerfile")


def release(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RELEASE), "--root", str(root), *args],
                          capture_output=True, text=True, check=False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_the_checkout_names_one_version() -> None:
    result = release(ROOT, "--check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"release: {__version__} everywhere"


def test_release_sets_every_place(tree: Path) -> None:
    result = release(tree, "7.8.9")
    assert result.returncode == 0, result.stderr
    assert 'version__ = "7.8.9"' in (tree / "wyoming_flux/__init__.py").read_text()
    manifest = json.loads((tree / "custom_components/deepgram_flux/manifest.json").read_text())
    assert manifest["version"] == "7.8.9" and manifest["requirements"] == ["wyoming-flux==7.8.9"]
    assert yaml.safe_load((tree / "addon/config.yaml").read_text())["version"] == "7.8.9"
    assert '"wyoming-flux[server]==7.8.9"' in (tree / "addon/Dockerfile").read_text()
    assert release(tree, "--check").returncode == 0


@pytest.mark.parametrize("name", FILES)
def test_check_names_the_place_that_drifted(tree: Path, name: str) -> None:
    path = tree / name
    path.write_text(path.read_text().replace(__version__, "0.0.99", 1))
    result = release(tree, "--check")
    assert result.returncode == 1
    assert "0.0.99" in result.stderr and "disagree" in result.stderr


def test_release_refuses_a_malformed_version(tree: Path) -> None:
    before = {name: (tree / name).read_text() for name in FILES}
    result = release(tree, "v1.2")
    assert result.returncode == 2 and "MAJOR.MINOR.PATCH" in result.stderr
    assert before == {name: (tree / name).read_text() for name in FILES}
