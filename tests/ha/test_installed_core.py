"""The integration runs here on the core as Home Assistant installs it: the built wheel in site-packages."""

from __future__ import annotations

import json
import sys
from importlib.metadata import distributions
from pathlib import Path

import custom_components.deepgram_flux.stt as entity_module
import wyoming_flux

ROOT = Path(__file__).resolve().parents[2]


def test_the_core_comes_from_the_installed_wheel_not_the_checkout() -> None:
    site = [p for p in sys.path if p.endswith("site-packages")]
    (dist,) = [d for d in distributions(path=site) if d.metadata["Name"] == "wyoming-flux"]
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    assert not direct_url.get("dir_info", {}).get("editable"), "an editable install: run script/test"
    core = Path(wyoming_flux.__file__).resolve()
    assert core == Path(str(dist.locate_file("wyoming_flux/__init__.py"))).resolve()
    assert core.parent != ROOT / "wyoming_flux" and "site-packages" in core.parts
    # ...and the integration's own module is the checkout's (it is not installed anywhere).
    assert ROOT in Path(entity_module.__file__).resolve().parents
