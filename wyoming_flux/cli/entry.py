"""The `wyoming-flux` command's entry point.

The package installs two ways: the Flux core alone (aiohttp + numpy: what the Home Assistant integration
needs, so it never touches Home Assistant's own `wyoming` pin) and with the `server` extra (wyoming, zeroconf)
for the Wyoming server and its client commands. Without the extra the command says what to install instead of
failing with an import traceback.
"""

from __future__ import annotations

import sys

from .. import __version__

SERVER_EXTRA_MISSING = (
    "wyoming-flux: the server and its check/transcribe commands need the 'server' extra ({missing} is not "
    "installed): install 'wyoming-flux[server]=={version}' (pip install, uv pip install or uv tool install)"
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["--version"], ["-V"]):
        print(f"wyoming-flux {__version__}")
        return 0
    try:
        # Ctrl+C while the libraries load (a second or more on a Raspberry Pi) is a quiet exit, as later on.
        # The package's own import (the console script's) loads nothing: its public names come on first use.
        try:
            from .main import main as cli_main
        except ModuleNotFoundError as err:
            if err.name not in ("wyoming", "zeroconf"):
                raise
            print(SERVER_EXTRA_MISSING.format(missing=err.name, version=__version__), file=sys.stderr)
            return 2
        return cli_main(argv)
    except KeyboardInterrupt:
        return 130
