"""The README's troubleshooting table covers every error code the server or the integration can send."""

from __future__ import annotations

import re
from pathlib import Path

from wyoming_flux.deepgram.errors import KINDS

ROOT = Path(__file__).parents[2]


def codes_in_the_code() -> set[str]:
    """Flux's table, and every code the server's modules put in an Error event."""
    found = set(KINDS)
    for path in (ROOT / "wyoming_flux").rglob("*.py"):
        text = path.read_text()
        found |= set(re.findall(r'code="([a-z]+(?:-[a-z]+)*)"', text))
        found |= set(re.findall(r'_answer_error\([^)]*?,\s*"([a-z]+(?:-[a-z]+)*)"\)', text, re.S))
        found |= set(re.findall(r'(?:_fail|refuse)\(\s*"([a-z]+(?:-[a-z]+)*)"', text))
    return found


def test_troubleshooting_covers_every_error_code() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Troubleshooting"):readme.index("## Tests")]
    listed = set(re.findall(r"^\| `([a-z-]+)` \|", section, re.M))
    codes = codes_in_the_code()
    assert {"flux-auth", "bad-event", "server-busy", "timeout", "internal-error"} <= codes  # the scan works
    assert codes - listed == set(), "codes missing from the README's troubleshooting table"
    assert listed - codes == set(), "the table lists codes nothing sends"


def test_every_server_flag_is_in_the_readme() -> None:
    from wyoming_flux.cli.main import build_parser

    readme = (ROOT / "README.md").read_text()
    flags = {flag for action in build_parser()._actions for flag in action.option_strings
             if flag.startswith("--") and flag not in ("--help", "--version")}
    assert {flag for flag in flags if f"`{flag}" not in readme} == set()
