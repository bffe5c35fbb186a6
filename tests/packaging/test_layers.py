"""The package's layers are held by import-linter's contracts (pyproject.toml): they pass on the tree as it is
and fail, naming the contract, when a module imports the wrong way. Each break is made in a throwaway copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    return subprocess.run([tool, "--config", str(tree / "pyproject.toml"), "--no-cache"], cwd=tree,
                          capture_output=True, text=True, timeout=120, env={"PATH": str(Path(sys.executable).parent),
                                                                            "PYTHONPATH": str(tree)})


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The checkout's package, integration and configuration, copied."""
    for name in ("wyoming_flux", "custom_components"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_layers_hold_as_the_tree_is(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


def add_import(tree: Path, module: str, line: str) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}\n")


@pytest.mark.parametrize(("module", "line", "contract"), [
    # A lower layer reaching up: the Deepgram client importing the Wyoming server.
    ("wyoming_flux/deepgram/flux.py", "from ..server.protocol import wire", "Layers: cli -> server -> turn"),
    ("wyoming_flux/common/tasks.py", "from ..turn import state", "Layers: cli -> server -> turn"),
    # The core importing what only the server extra installs.
    ("wyoming_flux/turn/audio.py", "import wyoming.event", "never imports the server's dependencies"),
    ("wyoming_flux/deepgram/models.py", "import prometheus_client", "never imports the server's dependencies"),
    # A cycle inside one layer: the state machine importing the session that imports it.
    ("wyoming_flux/turn/state.py", "from . import session", "No import cycles"),
    # One of the server's groups reaching into another: the Wyoming side importing the metrics registry.
    ("wyoming_flux/server/protocol/command.py", "from ..monitoring import metrics", "Server groups"),
    # A cycle inside the integration: the usage tracker importing the repairs that import it.
    ("custom_components/deepgram_flux/usage.py", "from . import repairs", "No import cycles"),
    # The integration going around the public API.
    ("custom_components/deepgram_flux/stt.py", "from wyoming_flux.turn.session import TurnSession",
     "imports the public core API only"),
])
def test_a_wrong_import_breaks_its_contract(tree: Path, module: str, line: str, contract: str) -> None:
    add_import(tree, module, line)
    result = lint_imports(tree)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if row.rstrip().endswith("BROKEN")]
    assert any(contract in row for row in broken), result.stdout  # (a layer broken upwards is a cycle too)
