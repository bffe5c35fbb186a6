"""The package as a user gets it: sdist and wheel built from this checkout, installed into fresh venvs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def uv() -> str:
    """uv: beside this interpreter (Home Assistant depends on it) or on PATH."""
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.exists() else shutil.which("uv")
    assert found, "uv is needed for the packaging tests (pip install uv)"
    return found


def find_python(series: str) -> str:
    """An interpreter of that series: this one, WYOMING_FLUX_PYTHON314 for 3.14, or one uv knows."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == series:
        return sys.executable
    if series == "3.14" and os.environ.get("WYOMING_FLUX_PYTHON314"):
        return os.environ["WYOMING_FLUX_PYTHON314"]
    found = subprocess.run([uv(), "python", "find", series], capture_output=True, text=True, check=False)
    assert found.returncode == 0, f"no Python {series}: {found.stderr.strip()}"
    return found.stdout.strip()


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([uv(), "build", "-q", "--out-dir", str(out), str(ROOT)], check=True)
    (sdist,), (wheel,) = out.glob("*.tar.gz"), out.glob("*.whl")
    return Built(sdist, wheel)


def make_venv(path: Path, python: str, *requirements: str) -> Path:
    """A fresh venv with these requirements; returns its bin directory."""
    subprocess.run([uv(), "venv", "-q", "-p", python, str(path)], check=True)
    if requirements:
        subprocess.run([uv(), "pip", "install", "-q", "-p", str(path / "bin" / "python"), *requirements], check=True)
    return path / "bin"
