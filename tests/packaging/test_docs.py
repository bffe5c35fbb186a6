"""The README and docs/ are held to the code: every page reachable from the README, every link and image
present, lines short enough to read in a terminal, and each fact a test can check (flags, variables, defaults,
ranges, error codes, languages, prices, options, the systemd unit, the fake-Flux trial) checked against the code."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wyoming_flux.common.bounds import RANGES
from wyoming_flux.deepgram.errors import KINDS
from wyoming_flux.deepgram.models import FLUX_MODELS, MODEL_NOVA, NOVA, canonical_forms, multi_only

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
MAX_LINE = 120  # every line, tables and code blocks included: reflow a table into a list rather than widen it
FIRST_SCREEN = 40  # lines a newcomer sees without scrolling
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def prose(markdown: str) -> str:
    """The text outside fenced code blocks (a `#` comment in a shell block is not a heading)."""
    return re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} +(.+?) *$", prose(markdown), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        counts[slug] = counts.get(slug, 0) + 1
        found.add(slug if counts[slug] == 1 else f"{slug}-{counts[slug] - 1}")
    return found


def section(path: Path, start: str, end: str | None = None) -> str:
    body = text(path)
    body = body[body.index(start):]
    return body[:body.index(end)] if end else body


def entries(markdown: str) -> dict[str, str]:
    """The list items of a page that start with a flag (`--flag ...`), by that flag, lines joined."""
    found = {}
    for item in re.split(r"\n(?=- )", prose(markdown)):
        if match := re.match(r"- `(--[^`]+)`", item):
            found[match.group(1).split(" ")[0]] = " ".join(item.split())
    return found


def test_every_page_is_linked_from_the_readme() -> None:
    linked = {(ROOT / target).resolve() for target in LINK.findall(text(ROOT / "README.md"))}
    assert [page.name for page in DOCS.glob("*.md") if page.resolve() not in linked] == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_no_line_is_longer_than_120_characters(page: Path) -> None:
    long = [f"{page.name}:{number}: {len(line)}" for number, line in enumerate(text(page).splitlines(), 1)
            if len(line) > MAX_LINE]
    assert long == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_and_image_exists(page: Path) -> None:
    broken = []
    for target in LINK.findall(prose(text(page))):
        if re.match(r"[a-z]+:", target):
            continue  # https://, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(text(file)):
            broken.append(target)
    assert broken == []


def test_the_first_screen_leads() -> None:
    first = "\n".join(text(ROOT / "README.md").splitlines()[:FIRST_SCREEN])
    commands = re.findall(r"^(script/\w+)\b", first, re.M)
    assert commands == ["script/server", "script/test"]  # set up and run the server; set up and run the tests
    assert all(os.access(ROOT / command, os.X_OK) for command in commands)
    assert "(docs/try-without-a-key.md)" in first and "(docs/home-assistant.md" in first
    assert "Wyoming Protocol" in first  # connecting Home Assistant to the server


def codes_in_the_code() -> set[str]:
    """Flux's table, and every code the server's modules put in an Error event."""
    found = set(KINDS)
    for path in (ROOT / "wyoming_flux").rglob("*.py"):
        source = text(path)
        found |= set(re.findall(r'code="([a-z]+(?:-[a-z]+)*)"', source))
        found |= set(re.findall(r'_answer_error\([^)]*?,\s*"([a-z]+(?:-[a-z]+)*)"\)', source, re.S))
        found |= set(re.findall(r'(?:_fail|refuse)\(\s*"([a-z]+(?:-[a-z]+)*)"', source))
    return found


def test_troubleshooting_covers_every_error_code() -> None:
    listed = set(re.findall(r"^### `([a-z-]+)`$", section(DOCS / "troubleshooting.md", "## Error codes"), re.M))
    codes = codes_in_the_code()
    assert {"flux-auth", "bad-event", "server-busy", "server-full", "timeout", "internal-error"} <= codes  # the scan works
    assert codes - listed == set(), "codes missing from docs/troubleshooting.md"
    assert listed - codes == set(), "docs/troubleshooting.md lists codes nothing sends"


def flags() -> dict[str, object]:
    from wyoming_flux.cli.main import build_parser

    return {action.option_strings[-1]: action for action in build_parser()._actions
            if action.option_strings[-1] not in ("--help", "--version")}


def numbers(value: float) -> set[str]:
    """How a page may write a number: 1048576, 8 (for 8.0), 1.0 or 1, 0.08."""
    return {f"{value:g}", str(value), str(int(value)) if float(value).is_integer() else str(value)}


def test_every_flag_is_in_configuration_with_its_variable_and_default() -> None:
    from wyoming_flux.deepgram.flux import REGIONS

    listed = entries(text(DOCS / "configuration.md"))
    assert set(flags()) - set(listed) == set(), "flags missing from docs/configuration.md"
    assert set(listed) - set(flags()) == set(), "docs/configuration.md lists flags the command lacks"
    for flag, action in flags().items():
        entry = listed[flag]
        variable = re.search(r"\b((?:WYOMING_FLUX|DEEPGRAM)_[A-Z_]+)", action.help).group(1)  # type: ignore[attr-defined]
        assert f"(`{variable}" in entry, (flag, variable)
        default = action.default  # type: ignore[attr-defined]
        if flag == "--flux-url":
            region = re.search(r"default `(\w+)`", entry).group(1)  # type: ignore[union-attr]
            assert REGIONS[region] == default and all(f"`{name}`" in entry for name in REGIONS)
        elif isinstance(default, str):
            assert f"default `{default}`" in entry, (flag, default)
        elif default not in (None, False):
            assert any(f"default {number}" in entry for number in numbers(default)), (flag, default)


def test_ranges_in_configuration_are_the_code_ranges() -> None:
    listed = entries(text(DOCS / "configuration.md"))
    for name, (low, high) in RANGES.items():
        entry = listed["--" + name.replace("_", "-")]
        assert any(f"{a}–{b}" in entry for a in numbers(low) for b in numbers(high)), name


def test_every_metric_is_in_configuration() -> None:
    source = text(ROOT / "wyoming_flux" / "server" / "metrics.py")
    prefix = re.search(r'PREFIX = "(\w+)"', source).group(1)  # type: ignore[union-attr]
    names = re.findall(r'(Counter|Histogram|Gauge)\(f"\{PREFIX\}_(\w+)"', source)
    assert len(names) >= 10  # the scan works
    page = section(DOCS / "configuration.md", "## Metrics")
    for kind, name in names:
        metric = f"{prefix}_{name}" + ("_total" if kind == "Counter" else "")
        assert re.search(rf"`{metric}[`{{]", page), metric


def test_languages_and_prices_are_the_code_ones() -> None:
    page = text(DOCS / "languages.md")
    names = {"en": "English", "es": "Spanish", "fr": "French", "de": "German", "hi": "Hindi", "ru": "Russian",
             "pt": "Portuguese", "ja": "Japanese", "it": "Italian", "nl": "Dutch"}
    for model in FLUX_MODELS.values():
        row = next(line for line in page.splitlines() if line.startswith(f"| `{model.name}` |"))
        if model.api == NOVA:
            continue  # its languages are the lists below
        bases = {code for code in model.languages if "-" not in code}
        assert set(re.findall(r"\b(" + "|".join(names.values()) + r")\b", row)) == {names[b] for b in bases}
    # Nova-3's lists: monolingual, and language=multi with a hint, as the code routes each language.
    nova = FLUX_MODELS[MODEL_NOVA]
    bullets = {kind: " ".join(re.search(rf"^- \*\*Nova-3 {kind}.+?(?=^- \*\*)", page, re.M | re.S).group(0).split())  # type: ignore[union-attr]
               for kind in ("monolingual", "`language=multi`")}
    listed = {kind: set(re.findall(r"`([a-z]{2,3}(?:-[A-Z]{2})?)`", bullet)) for kind, bullet in bullets.items()}
    # A base code, or a regional one that is a language of its own (zh-HK, Cantonese: never its base's model).
    mono = {c for c in nova.monolingual if "-" not in c or canonical_forms(c)[-1] == c}
    assert listed["monolingual"] - {"nb"} == mono
    assert listed["`language=multi`"] == set(multi_only(nova))
    assert {"he", "fa", "ur", "th", "gu", "kk", "zh-HK"} <= mono  # Deepgram's 2026 models (changelog)
    # Where Deepgram's own pages disagree on a price, the page says so.
    cost = " ".join(section(DOCS / "languages.md", "## Cost").split())
    assert "language-prompting page" in cost and "`flux-general-multi` is priced the same as `flux-general-en`" in cost
    const = ast.parse(text(ROOT / "custom_components" / "deepgram_flux" / "const.py"))
    prices = next(node.value for node in ast.walk(const) if isinstance(node, ast.AnnAssign)
                  and getattr(node.target, "id", "") == "DEFAULT_PRICES")
    # (the model as the prices' row names it, as the integration's page names it)
    names = {"MODEL_EN": ("`flux-general-en`", "`flux-general-en`"),
             "MODEL_MULTI": ("`flux-general-multi`", "`flux-general-multi`"),
             "MODEL_NOVA": ("`nova-3` (monolingual)", "`nova-3` (monolingual)"),
             "NOVA_MULTI": ("`nova-3` (`language=multi`)", "`nova-3` with `language=multi`")}
    assert len(prices.keys) == len(names)  # type: ignore[attr-defined]
    for key, value in zip(prices.keys, prices.values):  # type: ignore[attr-defined]
        row, named = names[key.id]  # type: ignore[union-attr]
        price = value.value  # type: ignore[attr-defined]
        assert re.search(rf"^\| {re.escape(row)} \| \${price} \|", page, re.M), row
        assert f"${price}/min for {named}" in " ".join(text(DOCS / "home-assistant.md").split()), named


def test_the_options_are_the_forms_options() -> None:
    strings = json.loads(text(ROOT / "custom_components" / "deepgram_flux" / "strings.json"))
    labels = [label for part in strings["options"]["step"]["init"]["sections"].values()
              for label in part["data"].values()]
    listed = re.findall(r"^- \*\*(.+?)\*\* \(default", section(DOCS / "home-assistant.md", "## Options", "\n## "),
                        re.M)
    assert sorted(listed) == sorted(labels)


UNIT = DOCS / "wyoming-flux.service"


def exec_start() -> list[str]:
    unit = text(UNIT).replace("\\\n", " ")
    return shlex.split(re.search(r"^ExecStart=(.+)$", unit, re.M).group(1))  # type: ignore[union-attr]


def test_the_unit_file_is_the_one_the_install_page_shows() -> None:
    shown_unit = re.search(r"```ini\n(.+?)```", text(DOCS / "install.md"), re.S).group(1)  # type: ignore[union-attr]
    assert shown_unit in text(UNIT) and "[Install]" in shown_unit


def test_the_unit_runs_what_uv_tool_installs_with_flags_the_server_takes(tmp_path: Path) -> None:
    from wyoming_flux.cli.main import build_parser

    command, *arguments = exec_start()
    assert command == "%h/.local/bin/wyoming-flux"
    env = {key: value for key, value in os.environ.items() if not key.startswith("XDG_") and key != "UV_TOOL_BIN_DIR"}
    uv = str(Path(sys.executable).parent / "uv") if (Path(sys.executable).parent / "uv").exists() else shutil.which("uv")
    assert uv, "uv is needed (Home Assistant depends on it)"
    bin_dir = subprocess.run([uv, "tool", "dir", "--bin"], env={**env, "HOME": str(tmp_path)}, capture_output=True,
                             text=True, check=True).stdout.strip()
    assert command.replace("%h", str(tmp_path)) == f"{bin_dir}/wyoming-flux"
    build_parser().parse_args([argument.replace("%h", str(tmp_path)) for argument in arguments])  # exits on a bad flag


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_verifies_the_unit(tmp_path: Path) -> None:
    home, runtime = tmp_path / "home", tmp_path / "run"
    (home / ".local" / "bin").mkdir(parents=True)
    runtime.mkdir(mode=0o700)
    installed = Path(sys.executable).parent / "wyoming-flux"
    (home / ".local" / "bin" / "wyoming-flux").symlink_to(installed)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    done = subprocess.run(["systemd-analyze", "--user", "verify", str(UNIT)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")


async def test_trying_it_without_a_key_works_as_written(tmp_path: Path) -> None:
    """The three commands of the page, as written: the server (this venv's, as script/server would start it), the
    fake Flux in the Python uv makes for it, and transcribe. Only the ports are changed, to free ones."""
    from tests.helpers import free_port

    block = re.search(r"```sh\n(.+?)```", text(DOCS / "try-without-a-key.md"), re.S).group(1)  # type: ignore[union-attr]
    block = block.replace("\\\n", " ")
    shells = [[shlex.split(line) for line in shell.splitlines() if line and not line.startswith("#")]
              for shell in re.split(r"\n(?=# \d\. )", block.strip())]
    assert [shell[-1][0] for shell in shells] == ["DEEPGRAM_API_KEY=test-key", "uv", "wyoming-flux"]
    for shell in shells[1:]:  # a new shell finds what script/server installed only with ~/.local/bin on PATH
        assert shell[0] == ["export", "PATH=$HOME/.local/bin:$PATH"]
    server_line, fake_line, transcribe_line = (shell[-1] for shell in shells)
    flux_port, wyoming_port = str(free_port()), str(free_port())
    bin_dir = Path(sys.executable).parent
    uv = str(bin_dir / "uv") if (bin_dir / "uv").exists() else shutil.which("uv") or str(Path.home() / ".local/bin/uv")

    def run_as(line: list[str], program: str) -> list[str]:  # this venv's programs, free ports
        return [program, *(arg.replace("8765", flux_port).replace("10300", wyoming_port) for arg in line[1:])]

    assert server_line[1] == "script/server"
    server = await asyncio.create_subprocess_exec(*run_as(server_line[1:], str(bin_dir / "wyoming-flux")), cwd=ROOT,
                                                  env={**os.environ, "DEEPGRAM_API_KEY": "test-key"},
                                                  stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    fake = None
    try:
        fake = await asyncio.create_subprocess_exec(*run_as(fake_line, uv), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        assert fake.stdout is not None
        assert b"listening" in await asyncio.wait_for(fake.stdout.readline(), 180)  # uv may fetch aiohttp, numpy
        uri = f"tcp://127.0.0.1:{wyoming_port}"
        for _ in range(150):
            check = await asyncio.create_subprocess_exec(str(bin_dir / "wyoming-flux"), "check", "--uri", uri,
                                                         "--timeout", "1", stdout=asyncio.subprocess.DEVNULL,
                                                         stderr=asyncio.subprocess.DEVNULL)
            if await asyncio.wait_for(check.wait(), 10) == 0:
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("the server never answered Describe")
        transcribe = await asyncio.create_subprocess_exec(*run_as(transcribe_line, str(bin_dir / "wyoming-flux")),
                                                          cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                          stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(transcribe.communicate(), 60)
        assert transcribe.returncode == 0, err.decode()
        said = re.search(r'--transcript "([^"]+)"', block).group(1)  # type: ignore[union-attr]
        assert out.decode().splitlines()[0] == said  # the text on stdout, the timings on stderr
        assert "end of speech -> transcript" in err.decode()
    finally:
        for process in (server, fake):
            if process is not None and process.returncode is None:
                process.terminate()
                await asyncio.wait_for(process.communicate(), 10)
