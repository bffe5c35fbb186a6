"""The built sdist and wheel, installed into fresh venvs on Python 3.11 and 3.14, run as a user runs them:
--version, check, and one transcription through the installed server against the fake Flux."""

from __future__ import annotations

import asyncio
import email
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import API_KEY
from tests.fake_flux import FakeFlux
from tests.helpers import FIXTURES, fixture_text, free_port
from tests.packaging.conftest import Built, find_python, make_venv

KITCHEN = "turn_on_the_kitchen_light"


def test_wheel_metadata_keeps_the_server_behind_an_extra(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(wheel.read(name))
        files = wheel.namelist()
    requires = [Requirement(r) for r in metadata.get_all("Requires-Dist")]
    core = sorted(r.name for r in requires if r.marker is None)
    server = sorted(r.name for r in requires if r.marker and r.marker.evaluate({"extra": "server"}))
    assert core == ["aiohttp", "numpy"]  # all the Home Assistant integration installs
    assert server == ["prometheus-client", "wyoming", "zeroconf"]
    assert "wyoming_flux/turn/session.py" in files and not any(f.startswith(("tests/", "custom_components/")) for f in files)


def test_sdist_has_what_a_build_needs(built: Built) -> None:
    with tarfile.open(built.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "LICENSE", "wyoming_flux/__init__.py", "wyoming_flux/deepgram/flux.py"} <= names


async def run(*args: str | Path, cwd: Path, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*map(str, args), cwd=cwd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(("series", "artifact"), [("3.11", "sdist"), ("3.14", "wheel"), ("3.11", "wheel")])
async def test_installed_server_transcribes(
    built: Built, fake_flux: FakeFlux, tmp_path: Path, series: str, artifact: str
) -> None:
    path = built.sdist if artifact == "sdist" else built.wheel
    bin_dir = await asyncio.to_thread(make_venv, tmp_path / "venv", find_python(series),
                                      f"wyoming-flux[server] @ {path.as_uri()}")
    code, out, _ = await run(bin_dir / "wyoming-flux", "--version", cwd=tmp_path)
    assert (code, out.strip()) == (0, f"wyoming-flux {built.wheel.name.split('-')[1]}")

    key_file = tmp_path / "deepgram.key"
    key_file.write_text(API_KEY + "\n")
    uri = f"tcp://127.0.0.1:{free_port()}"
    server = await asyncio.create_subprocess_exec(
        str(bin_dir / "wyoming-flux"), "--uri", uri, "--api-key-file", str(key_file), "--flux-url", fake_flux.url,
        cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        for _ in range(150):  # the check command itself is the readiness probe
            code, _, _ = await run(bin_dir / "wyoming-flux", "check", "--uri", uri, "--timeout", "1", cwd=tmp_path)
            if code == 0:
                break
            await asyncio.sleep(0.2)
        assert code == 0, "the installed server never answered Describe"
        code, out, err = await run(bin_dir / "wyoming-flux", "transcribe", FIXTURES / f"{KITCHEN}.wav", "--uri", uri,
                                   "--fast", cwd=tmp_path)
        assert code == 0, err
        assert fixture_text(KITCHEN).lower().rstrip(".") in out.lower()
    finally:
        server.terminate()
        _, err = await asyncio.wait_for(server.communicate(), 10)
    assert "Traceback" not in err.decode() and API_KEY not in err.decode()


async def test_core_alone_installs_no_server_and_says_what_to_add(built: Built, tmp_path: Path) -> None:
    bin_dir = await asyncio.to_thread(make_venv, tmp_path / "venv", find_python("3.11"), str(built.wheel))
    code, out, _ = await run(bin_dir / "python", "-c",
                             "import importlib.util as u, wyoming_flux.turn.session, wyoming_flux.deepgram.flux;"
                             "print(u.find_spec('wyoming'), u.find_spec('zeroconf'), u.find_spec('prometheus_client'))",
                             cwd=tmp_path)
    assert (code, out.strip()) == (0, "None None None")  # the core imports without the server's dependencies
    code, out, _ = await run(bin_dir / "wyoming-flux", "--version", cwd=tmp_path)
    assert code == 0 and out.startswith("wyoming-flux ")
    code, out, err = await run(bin_dir / "wyoming-flux", "--api-key", "x", cwd=tmp_path)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "wyoming-flux[server]" in err and "Traceback" not in err
