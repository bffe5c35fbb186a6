"""The container image: static checks of the Dockerfile (always), and a real build and run (on request).

The real one is slow and needs root and podman:
    WYOMING_FLUX_IMAGE_TEST=1 .venv311/bin/python -m pytest tests/test_image.py
It builds with script/build-image (a Debian base made locally when no registry is reachable), runs the
image against the fake Flux on loopback, runs the image's own HEALTHCHECK and transcribes a fixture.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, fixture_text, free_port

ROOT = Path(__file__).parents[1]
DOCKERFILE = ROOT / "Dockerfile"
API_KEY = "dg-image-test-0123456789"
FIXTURE = "turn_on_the_kitchen_light"
IMAGE = "localhost/wyoming-flux:test"
ENABLED = os.environ.get("WYOMING_FLUX_IMAGE_TEST") == "1"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [(m[1].upper(), m[2].strip()) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.M)]


# -- Static checks: cheap, always on ----------------------------------------------------------------


def test_dockerfile_takes_its_base_from_a_build_arg() -> None:
    steps = instructions()
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.12-slim-bookworm")
    froms = [args for kind, args in steps if kind == "FROM"]
    assert froms and all(re.match(r"\$\{BASE_IMAGE\}(\s|$)", f) for f in froms), froms


def test_dockerfile_installs_the_server_extra_in_the_image() -> None:
    runs = " ".join(args for kind, args in instructions() if kind == "RUN")
    assert re.search(r"pip install [^&;]*\"\.\[server\]\"", runs), runs
    extras = re.search(r"^server = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.M | re.S)
    assert extras and "wyoming" in extras[1] and "zeroconf" in extras[1]


def test_dockerfile_runs_unprivileged_with_a_health_check_and_the_cli() -> None:
    steps = instructions()
    final = steps[max(i for i, (kind, _) in enumerate(steps) if kind == "FROM"):]
    users = [args for kind, args in final if kind == "USER"]
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:"), users
    checks = [args for kind, args in final if kind == "HEALTHCHECK"]
    assert len(checks) == 1 and '"wyoming-flux", "check"' in checks[0]
    # The check asks the port the server listens on by default.
    port = re.search(r"WYOMING_FLUX_URI=tcp://[\d.]+:(\d+)", DOCKERFILE.read_text())
    assert port and f"tcp://127.0.0.1:{port[1]}" in checks[0]
    assert ("ENTRYPOINT", '["wyoming-flux"]') in final


def test_build_context_leaves_out_what_the_image_does_not_need() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv*", "tests", "build"} <= ignored


def test_build_script_is_valid_bash() -> None:
    script = ROOT / "script" / "build-image"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0


# -- The real thing: build, run, health check, transcription ------------------------------------------


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=check)


@pytest.fixture
def fake_flux_port() -> Iterator[int]:
    """The fake Flux in a process of its own, on loopback, saying the fixture's text."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_flux", "--port", str(port), "--api-key", API_KEY,
         "--transcript", fixture_text(FIXTURE)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "fake Flux listening" in line, line
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.skipif(not ENABLED, reason="slow, needs root and podman: set WYOMING_FLUX_IMAGE_TEST=1 to build and run the image")
@pytest.mark.timeout(1800)
def test_image_builds_passes_its_health_check_and_transcribes(fake_flux_port: int, tmp_path: Path) -> None:
    build = subprocess.run([str(ROOT / "script" / "build-image")], cwd=ROOT, env={**os.environ, "IMAGE": IMAGE},
                           capture_output=True, text=True, timeout=1500, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    run_flags = (ROOT / "build" / "podman-run-flags").read_text().split()
    user = podman("image", "inspect", "--format", "{{.Config.User}}", IMAGE).stdout.strip()
    assert user and user not in ("root", "0")

    key = tmp_path / "deepgram.key"
    key.write_text(API_KEY)
    key.chmod(0o644)  # the container's user is not root
    port = free_port()
    name = f"wyoming-flux-image-test-{os.getpid()}"
    # Its own network namespace, so the image's HEALTHCHECK asks its default port 10300 as built;
    # published on loopback only. 10.0.2.2 is the host's loopback, where the fake Flux listens.
    container = podman("run", "-d", "--name", name, *run_flags,
           "--network", "slirp4netns:allow_host_loopback=true", "-p", f"127.0.0.1:{port}:10300",
           "-v", f"{key}:/run/secrets/deepgram_api_key:ro", "-e", "DEEPGRAM_API_KEY_FILE=/run/secrets/deepgram_api_key",
           IMAGE, "--flux-url", f"ws://10.0.2.2:{fake_flux_port}/v2/listen").stdout.strip()
    try:
        deadline = time.monotonic() + 60
        while (health := podman("healthcheck", "run", name, timeout=30, check=False)).returncode != 0:
            assert time.monotonic() < deadline, health.stdout + health.stderr + podman("logs", name).stderr
            time.sleep(0.2)
        assert podman("exec", name, "id", "-u").stdout.strip() != "0"

        cli = shutil.which("wyoming-flux", path=str(Path(sys.executable).parent)) or "wyoming-flux"
        result = subprocess.run([cli, "transcribe", str(FIXTURES / f"{FIXTURE}.wav"), "--uri", f"tcp://127.0.0.1:{port}",
                                 "--fast"], capture_output=True, text=True, timeout=60, check=False)
        logs = podman("logs", name)
        assert result.returncode == 0, result.stderr + logs.stdout + logs.stderr
        assert result.stdout.strip() == fixture_text(FIXTURE)
        assert "Command done" in logs.stdout + logs.stderr
    finally:
        podman("rm", "-f", "-t", "2", name, check=False)
    assert podman("container", "exists", name, check=False).returncode == 1
    # conmon and the container's processes are gone (conmon exits on its own just after the removal: bounded wait)
    deadline = time.monotonic() + 15
    while (left := processes_mentioning(container)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left


def processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args)
    return found
