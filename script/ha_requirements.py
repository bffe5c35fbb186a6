"""Print the Python requirements of the Home Assistant integrations our tests load, read from the installed
Home Assistant's own manifests (dependencies followed), one per line.

The Home Assistant test harness installs Home Assistant but not its integrations' requirements; taking them
from the manifests gives each supported Home Assistant release exactly the versions it ships with.
Usage: python script/ha_requirements.py [domain ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import homeassistant.components

# What the integration tests set up: the assist pipeline (with its VAD), conversation, HA's Wyoming client.
DEFAULT_DOMAINS = ("assist_pipeline", "conversation", "wyoming", "homeassistant", "intent")


def requirements(domains: list[str]) -> list[str]:
    components = Path(homeassistant.components.__path__[0])
    seen: set[str] = set()
    found: dict[str, None] = {}
    todo = list(domains)
    while todo:
        domain = todo.pop()
        if domain in seen:
            continue
        seen.add(domain)
        manifest = json.loads((components / domain / "manifest.json").read_text())
        found.update(dict.fromkeys(manifest.get("requirements", [])))
        todo.extend(manifest.get("dependencies", []))
    return sorted(found, key=str.lower)


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1:] or list(DEFAULT_DOMAINS))))
