"""The release machinery: workflows that pass actionlint, test what .ci/run tests, publish with trusted
publishing, push the images the add-on names; shell scripts that pass ShellCheck; Dependabot for every
ecosystem the project pins."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


def workflow(name: str) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((WORKFLOWS / name).read_text())


def steps(job: dict) -> list[dict]:  # type: ignore[type-arg]
    return job["steps"]  # type: ignore[no-any-return]


def tool(name: str) -> str:
    found = shutil.which(name) or str(Path(__file__).parents[2] / ".venv" / "bin" / name)
    assert Path(found).exists(), f"{name} is installed by the 'lint' extra"
    return found


def shell_scripts() -> list[str]:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    scripts = []
    for name in tracked:
        path = ROOT / name
        if path.is_file() and path.suffix in ("", ".sh"):
            head = path.read_text(errors="replace").split("\n", 2)[:2]
            if any("bash" in line or line.startswith("#!/bin/sh") for line in head):
                scripts.append(name)
    return sorted(scripts)


def test_workflows_pass_actionlint() -> None:
    result = subprocess.run([tool("actionlint"), "-shellcheck", tool("shellcheck")], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_shell_script_passes_shellcheck_and_ci_checks_them_all() -> None:
    scripts = shell_scripts()
    assert {"script/test", "script/lib.sh", "script/server", ".ci/run", "addon/run.sh"} <= set(scripts)
    result = subprocess.run([tool("shellcheck"), "-x", *scripts], cwd=ROOT, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout
    (lint_step,) = [s for s in steps(workflow("ci.yml")["jobs"]["lint"]) if s.get("name") == "shellcheck"]
    assert sorted(shlex.split(lint_step["run"])[5:]) == scripts


def test_the_ci_test_job_runs_what_ci_run_runs() -> None:
    ci_run = (ROOT / ".ci" / "run").read_text()
    command = next(line.removeprefix("exec ") for line in ci_run.splitlines() if line.startswith("exec "))
    jobs = workflow("ci.yml")["jobs"]
    assert any(step.get("run") == command for step in steps(jobs["test"]))
    packages = jobs["package"]["strategy"]["matrix"]["python"]
    assert packages == ["3.12", "3.13", "3.14"]  # 3.11 is in script/test itself
    assert "--only package" in next(s["run"] for s in steps(jobs["package"]) if "run" in s and "script/test" in s["run"])
    uses = {step.get("uses", "").split("@")[0] for job in jobs.values() for step in steps(job)}
    assert {"home-assistant/actions/hassfest", "hacs/action"} <= uses


def test_script_test_covers_the_oldest_and_newest_home_assistant() -> None:
    script = (ROOT / "script" / "test").read_text()
    assert "pytest-homeassistant-custom-component==0.13.333" in script  # Home Assistant 2026.5.4
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "pytest-homeassistant-custom-component==0.13.375" in pyproject  # Home Assistant 2026.10.4, the newest harness


def test_release_publishes_with_trusted_publishing_and_pushes_the_addon_image() -> None:
    release = workflow("release.yml")
    assert release[True]["push"]["tags"] == ["v*.*.*"]  # YAML reads the key `on` as True
    jobs = release["jobs"]
    assert jobs["pypi"]["permissions"] == {"id-token": "write"}
    (publish,) = [s for s in steps(jobs["pypi"]) if s.get("uses", "").startswith("pypa/gh-action-pypi-publish@")]
    assert "with" not in publish  # no password or token: trusted publishing
    assert any("script/release --check" in s.get("run", "") for s in steps(jobs["build"]))
    addon = yaml.safe_load((ROOT / "addon" / "config.yaml").read_text())
    arches = [entry["arch"] for entry in jobs["addon-image"]["strategy"]["matrix"]["include"]]
    assert sorted(arches) == sorted(addon["arch"])
    assert "pypi" in jobs["addon-image"]["needs"]  # the add-on's Dockerfile installs the published release
    build = next(s for s in steps(jobs["addon-image"]) if s.get("uses", "").startswith("docker/build-push-action@"))
    assert build["with"]["context"] == "addon" and build["with"]["push"] is True
    naming = next(s for s in steps(jobs["addon-image"]) if s.get("id") == "addon")["run"]
    assert "addon/config.yaml" in naming and "addon/build.yaml" in naming  # image and base come from the add-on
    assert any(s.get("run", "").startswith("gh release create") for s in steps(jobs["github-release"]))


def test_dependabot_watches_pip_actions_and_base_images() -> None:
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    ecosystems = {u["package-ecosystem"]: u for u in config["updates"]}
    assert set(ecosystems) == {"pip", "github-actions", "docker"}
    assert set(ecosystems["docker"]["directories"]) == {"/", "/addon"}
