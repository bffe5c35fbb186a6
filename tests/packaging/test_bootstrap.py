"""A first run that cannot break: script/lib.sh (behind script/test and script/server) rebuilds a venv made
with the wrong Python, and stops with one clear line, leaving nothing half-made, when it cannot get a Python
or uv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.packaging.conftest import ROOT, find_python, uv

LIB = ROOT / "script" / "lib.sh"


def bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", f"set -euo pipefail; source {LIB}; {script}"], env=env, cwd=cwd,
                          capture_output=True, text=True, check=False, timeout=300)


def version_of(python: Path) -> str:
    return subprocess.run([str(python), "-c", "import sys; print(sys.version_info[:2])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def bare_env(tmp_path: Path, *tools: str) -> dict[str, str]:
    """A machine with no Python 3.14 anywhere uv or PATH would look, and only these tools added."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, target in (t.split("=", 1) for t in tools):
        (bin_dir / name).symlink_to(target)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "WYOMING_FLUX_", "VIRTUAL_ENV"))}
    return env | {
        "PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path / "home"),
        "UV_PYTHON_INSTALL_DIR": str(tmp_path / "uv-pythons"), "UV_PYTHON_DOWNLOADS": "never",
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv")),
    }


def test_a_venv_of_the_wrong_python_is_rebuilt(tmp_path: Path) -> None:
    venv = tmp_path / ".venv"
    subprocess.run([uv(), "venv", "-q", "-p", find_python("3.11"), str(venv)], check=True)
    assert version_of(venv / "bin" / "python") == "(3, 11)"
    env = os.environ | {"WYOMING_FLUX_PYTHON314": find_python("3.14")}
    result = bash(f'ensure_uv; py=$(find_python 3.14.2 WYOMING_FLUX_PYTHON314); ensure_venv "{venv}" "$py"',
                  env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "has Python 3.11" in result.stderr and "rebuilding" in result.stderr
    assert version_of(venv / "bin" / "python") == "(3, 14)"
    again = bash(f'ensure_uv; py=$(find_python 3.14.2 WYOMING_FLUX_PYTHON314); ensure_venv "{venv}" "$py"',
                 env, tmp_path)
    assert again.returncode == 0 and again.stderr == ""  # a good venv is kept as it is


def test_a_venv_whose_python_no_longer_runs_is_rebuilt(tmp_path: Path) -> None:
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(tmp_path / "gone" / "python3.14")  # its interpreter was removed
    result = bash(f'ensure_uv; ensure_venv "{venv}" "{sys.executable}"', os.environ.copy(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rebuilding" in result.stderr
    assert version_of(venv / "bin" / "python") == version_of(Path(sys.executable))


def test_no_python_314_stops_the_test_command_with_one_line_and_no_venv(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, checkout / name)
    env = bare_env(tmp_path, f"uv={uv()}")
    result = subprocess.run([str(checkout / "script" / "test"), "--only", "newest"], cwd=checkout, env=env,
                            capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("wyoming-flux setup: no Python >= 3.14.2 found") and "uv python install 3.14" in last
    assert "Traceback" not in result.stderr
    assert not (checkout / ".venv").exists()  # nothing half-made for the next run to trip on


def test_a_wrong_python_named_by_the_environment_is_refused(tmp_path: Path) -> None:
    env = os.environ | {"WYOMING_FLUX_PYTHON314": find_python("3.11")}
    result = bash("ensure_uv; find_python 3.14.2 WYOMING_FLUX_PYTHON314", env, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().endswith("is not a Python >= 3.14.2.")


def test_no_uv_and_no_way_to_install_it_says_what_to_install(tmp_path: Path) -> None:
    fail = tmp_path / "fail"
    fail.write_text("#!/bin/sh\nexit 6\n")  # curl and wget with no network
    fail.chmod(0o755)
    env = bare_env(tmp_path, f"curl={fail}", f"wget={fail}", "python3=/usr/bin/python3") | {
        "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": "/dev/null",  # pip can reach no index either
    }
    result = bash("ensure_uv", env, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("wyoming-flux setup: could not install uv.")
    assert not (tmp_path / "home" / ".local" / "share" / "wyoming-flux" / "uv").exists()


def test_the_server_takes_the_systems_python3_when_it_is_recent_enough(tmp_path: Path) -> None:
    newest = find_python("3.14")
    env = bare_env(tmp_path, f"python3={newest}")  # e.g. Ubuntu 24.04 or Debian 13: python3 is newer than 3.11
    result = bash("ensure_uv; find_python 3.11 WYOMING_FLUX_PYTHON newer", env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "bin" / "python3")
    too_old = bash("ensure_uv; find_python 3.15 WYOMING_FLUX_PYTHON newer", env, tmp_path)  # not good enough
    assert too_old.returncode == 1 and str(tmp_path / "bin" / "python3") not in too_old.stdout


def test_the_server_starts_where_it_was_called_so_relative_paths_are_the_callers(tmp_path: Path) -> None:
    # A stand-in uv: `tool install` succeeds, `tool dir --bin` names a folder whose wyoming-flux prints where it
    # runs and what it got. script/server must start it in the caller's folder, not the checkout's.
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "wyoming-flux").write_text('#!/bin/sh\necho "$PWD" "$@"\n')
    (tools / "uv").write_text(f'#!/bin/sh\n[ "$1 $2" = "tool dir" ] && echo {tools}\nexit 0\n')
    for tool in ("wyoming-flux", "uv"):
        (tools / tool).chmod(0o755)
    caller = tmp_path / "caller"
    caller.mkdir()
    env = bare_env(tmp_path, f"python3={sys.executable}") | {"PATH": f"{tools}:{tmp_path / 'bin'}:/usr/bin:/bin"}
    result = subprocess.run([str(ROOT / "script" / "server"), "--api-key-file", "deepgram.key"], cwd=caller, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{caller} --api-key-file deepgram.key"


def test_the_server_links_a_uv_it_had_to_install_privately_beside_the_command(tmp_path: Path) -> None:
    # Where pip refuses --user (PEP 668: Debian 12, Raspberry Pi OS), uv lives in a venv of ours: a new shell
    # with ~/.local/bin on PATH (the docs' second shell) must find it there, as it finds wyoming-flux.
    home, tools = tmp_path / "home", tmp_path / "home" / ".local" / "bin"
    private = home / ".local" / "share" / "wyoming-flux" / "uv" / "bin"
    for folder in (tools, private):
        folder.mkdir(parents=True)
    (tools / "wyoming-flux").write_text("#!/bin/sh\nexit 0\n")
    (private / "uv").write_text(f'#!/bin/sh\n[ "$1 $2" = "tool dir" ] && echo {tools}\nexit 0\n')
    for tool in (tools / "wyoming-flux", private / "uv"):
        tool.chmod(0o755)
    env = bare_env(tmp_path, f"python3={sys.executable}")  # no uv on PATH
    for _ in range(2):  # and a second start leaves the link as it is
        result = subprocess.run([str(ROOT / "script" / "server")], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert (tools / "uv").resolve() == (private / "uv").resolve()


def test_without_curl_astrals_installer_comes_with_wget(tmp_path: Path) -> None:
    # A minimal Debian 12: no pip, no venv module, no curl; wget fetches Astral's installer (here: one that puts
    # a uv in ~/.local/bin, where the real one does).
    fail, wget = tmp_path / "fail", tmp_path / "wget"
    fail.write_text("#!/bin/sh\nexit 1\n")
    installer = 'mkdir -p "$HOME/.local/bin" && printf "#!/bin/sh\\n" > "$HOME/.local/bin/uv" && chmod +x "$HOME/.local/bin/uv"'
    wget.write_text(f"#!/bin/sh\n[ \"$*\" = \"-qO- https://astral.sh/uv/install.sh\" ] || exit 1\necho '{installer}'\n")
    for stub in (fail, wget):
        stub.chmod(0o755)
    env = bare_env(tmp_path, f"curl={fail}", f"python3={fail}", f"wget={wget}")
    result = bash('ensure_uv; echo "$UV"', env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "home" / ".local" / "bin" / "uv")


def test_the_test_commands_help_builds_and_runs_nothing(tmp_path: Path) -> None:
    # Any uv the script would call leaves a mark: --help must print the script's own usage, and call nothing.
    marks = tmp_path / "called"
    (tmp_path / "uv").write_text(f'#!/bin/sh\necho "$@" >> {marks}\nexit 1\n')
    (tmp_path / "uv").chmod(0o755)
    env = bare_env(tmp_path, f"uv={tmp_path / 'uv'}")
    for argv in (["--help"], ["-h"], ["--only", "newest", "-x", "--help"]):
        result = subprocess.run([str(ROOT / "script" / "test"), *argv], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=30)
        assert (result.returncode, result.stderr) == (0, ""), argv
        assert result.stdout.startswith("Sets up the test environments") and "Usage: script/test" in result.stdout
        assert "20-25 minutes on 2 cores" in result.stdout and "chromium" in result.stdout
        assert len(result.stdout.splitlines()) < 30
    assert not marks.exists()

