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
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from wyoming_flux.common.bounds import RANGES
from wyoming_flux.deepgram.errors import KINDS
from wyoming_flux.deepgram.models import Api, DEEPGRAM_MODELS, MODEL_NOVA, canonical_forms, multi_only

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), ROOT / "addon" / "DOCS.md"]  # (the add-on's, in its store)
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


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_no_line_is_longer_than_120_characters(page: Path) -> None:
    long = [f"{page.name}:{number}: {len(line)}" for number, line in enumerate(text(page).splitlines(), 1)
            if len(line) > MAX_LINE]
    assert long == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
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


def flat(markdown: str) -> str:
    return " ".join(markdown.split())


def default_prices() -> dict[str, float]:
    """The integration's prices per minute, by the name of the model's constant (MODEL_EN, ...)."""
    const = ast.parse(text(ROOT / "custom_components" / "deepgram_flux" / "const.py"))
    prices = next(node.value for node in ast.walk(const) if isinstance(node, ast.AnnAssign)
                  and getattr(node.target, "id", "") == "DEFAULT_PRICES")
    return {key.id: value.value for key, value in zip(prices.keys, prices.values)}  # type: ignore[attr-defined]


def test_the_first_screen_says_what_the_server_needs_and_what_its_command_prints() -> None:
    from wyoming_flux.cli.main import build_parser, exposure_warning

    first = "\n".join(text(ROOT / "README.md").splitlines()[:FIRST_SCREEN])
    # Internet, a paid key and where to get one, and what it costs: the figure from the English model's price.
    assert "internet" in first and "(docs/install.md#a-deepgram-api-key)" in first
    commands, length, cost = re.search(r"(\d+) (\w+)-second commands a day cost about \$(\d+\.\d\d) a month",
                                       flat(first)).groups()  # type: ignore[union-attr]
    seconds = {"two": 2, "three": 3, "five": 5}[length]
    assert abs(int(commands) * seconds * 30 / 60 * default_prices()["MODEL_EN"] - float(cost)) < 0.05
    assert f"{commands} {length}-second commands a day cost about ${cost} a month" in flat(text(DOCS / "languages.md"))
    # The Wyoming route's early end of command: the Home Assistant release its tests need.
    release = re.search(r'needs_home_assistant\("(\d+\.\d+)\.\d+", "the Wyoming client\'s early end',
                        text(ROOT / "tests" / "ha" / "test_wyoming_integration.py")).group(1)  # type: ignore[union-attr]
    assert f"Home Assistant ≥ {release} ends the command" in flat(first)
    # The first command's warning, said before it is seen, with the flag that ends it.
    line = next(shlex.split(line) for line in first.splitlines() if line.startswith("script/server"))
    args = build_parser().parse_args(line[1:])
    if exposure_warning(args.uri, tuple(args.allow or ())) is not None:
        comment = flat(" ".join(line for line in first.splitlines() if line.startswith("# ")))
        assert "It warns that anyone who can reach port" in comment and "--allow" in comment
    # What the test command costs, and what it installs as root (script/test's own help says the same).
    assert re.search(r"about \d+-\d+ min\s+# on 2 cores and [\d.]+ GB", first.replace("\n", " "))
    assert "as root it also installs Debian's chromium" in flat(first) and "apt-get install" in text(ROOT / "script" / "lib.sh")


def test_the_integration_comes_after_what_works_before_the_first_release() -> None:
    listed = re.findall(r"^- \[[^\]]+\]\(docs/([\w-]+)\.md\)(.*)$", section(ROOT / "README.md", "## Documentation"),
                        re.M)
    order = [page for page, _ in listed]
    assert order.index("home-assistant") > max(order.index(page) for page in ("try-without-a-key", "install",
                                                                               "configuration", "troubleshooting"))
    assert "first release" in dict(listed)["home-assistant"]  # it cannot install before


def codes_in_the_code() -> set[str]:
    """Flux's table, and every code the server's modules put in an Error event."""
    found = set(KINDS)
    for path in (ROOT / "wyoming_flux").rglob("*.py"):
        source = text(path)
        found |= set(re.findall(r'code="([a-z]+(?:-[a-z]+)*)"', source))
        found |= set(re.findall(r'_answer_error\([^)]*?,\s*"([a-z]+(?:-[a-z]+)*)"\)', source, re.S))
        found |= set(re.findall(r'(?:_fail|refuse)\(\s*"([a-z]+(?:-[a-z]+)*)"', source))
        found |= set(re.findall(r'^[A-Z_]+ = "([a-z]+(?:-[a-z]+)+)"  # a refusal', source, re.M))
    return found


def test_troubleshooting_covers_every_error_code() -> None:
    listed = set(re.findall(r"^### `([a-z-]+)`$", section(DOCS / "troubleshooting.md", "## Error codes"), re.M))
    codes = codes_in_the_code()
    assert {"flux-auth", "bad-event", "server-busy", "server-full", "timeout", "internal-error"} <= codes  # the scan works
    assert codes - listed == set(), "codes missing from docs/troubleshooting.md"
    assert listed - codes == set(), "docs/troubleshooting.md lists codes nothing sends"


# A page saying a language is transcribed as another one, the opposite of what the code does.
WRONG_LANGUAGE = re.compile(r"(?<!never )(?<!not )transcribed (?:as|in) (?:the model's|another|its)", re.I)


def test_no_page_says_a_language_no_model_speaks_is_transcribed() -> None:
    from wyoming_flux.deepgram.models import MODEL_EN, choose_model

    assert choose_model([DEEPGRAM_MODELS[MODEL_EN]], None, "de") is None  # the code: no model, so no transcript
    said = [f"{page.name}: {match.group(0)}" for page in PAGES for match in WRONG_LANGUAGE.finditer(flat(text(page)))]
    assert said == []
    for page in ("how-it-works.md", "languages.md", "troubleshooting.md", "configuration.md"):  # and it is said
        assert "`unsupported-language`" in text(DOCS / page), page


def test_troubleshooting_says_where_each_routes_log_is_and_what_picks_the_language() -> None:
    page = flat(section(DOCS / "troubleshooting.md", "## Where the logs are", "\n## "))
    assert f"`journalctl --user -u {UNIT.stem} -f`" in page  # the unit the install page installs
    service = re.search(r"^services:\n  ([\w-]+):", text(ROOT / "docker-compose.yml"), re.M).group(1)  # type: ignore[union-attr]
    assert f"`docker compose logs -f {service}`" in page and "`docker logs -f`" in page
    addon = re.search(r"^name: (.+)$", text(ROOT / "addon" / "config.yaml"), re.M).group(1)  # type: ignore[union-attr]
    assert f"Settings → Add-ons → *{addon}* → the **Log** tab" in page and "**Log** tab" in text(ROOT / "addon" / "DOCS.md")
    assert "in a terminal**: that terminal" in page and "Settings → System → Logs" in page
    for path in (DOCS / "troubleshooting.md", DOCS / "languages.md", ROOT / "addon" / "DOCS.md"):
        assert "Settings → Voice assistants → your assistant" in flat(text(path)), path.name
        assert "**Language**" in text(path), path.name


def flags() -> dict[str, object]:
    from wyoming_flux.cli.main import build_parser

    return {action.option_strings[-1]: action for action in build_parser()._actions
            if action.option_strings[-1] not in ("--help", "--version")}


def numbers(value: float) -> set[str]:
    """How a page may write a number: 1048576, 8 (for 8.0), 1.0 or 1, 0.08."""
    return {f"{value:g}", str(value), str(int(value)) if float(value).is_integer() else str(value)}


def test_every_flag_is_in_configuration_with_its_variable_and_default() -> None:
    from wyoming_flux.deepgram.endpoints import REGIONS

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
    source = text(ROOT / "wyoming_flux" / "server" / "monitoring" / "metrics.py")
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
    for model in DEEPGRAM_MODELS.values():
        row = next(line for line in page.splitlines() if line.startswith(f"| `{model.name}` |"))
        if model.api == Api.NOVA:
            continue  # its languages are the lists below
        bases = {code for code in model.languages if "-" not in code}
        assert set(re.findall(r"\b(" + "|".join(names.values()) + r")\b", row)) == {names[b] for b in bases}
    # Nova-3's lists: monolingual, and language=multi with a hint, as the code routes each language.
    nova = DEEPGRAM_MODELS[MODEL_NOVA]
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
    # (the model as the prices' row names it, as the integration's page names it)
    names = {"MODEL_EN": ("`flux-general-en`", "`flux-general-en`"),
             "MODEL_MULTI": ("`flux-general-multi`", "`flux-general-multi`"),
             "MODEL_NOVA": ("`nova-3` (monolingual)", "`nova-3` (monolingual)"),
             "NOVA_MULTI": ("`nova-3` (`language=multi`)", "`nova-3` with `language=multi`")}
    assert len(default_prices()) == len(names)
    for key, price in default_prices().items():
        row, named = names[key]
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
    bin_dir = subprocess.run([uv_command(), "tool", "dir", "--bin"], env={**env, "HOME": str(tmp_path)}, capture_output=True,
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


def test_the_limits_of_a_file_to_transcribe_are_the_code_ones() -> None:
    from wyoming_flux.cli.wav import MAX_BYTES, MAX_SECONDS

    limits = f"at most {MAX_SECONDS:g} s and {MAX_BYTES // 2**20} MiB of audio"
    for page in ("install.md", "reliability-and-security.md"):
        assert limits in flat(text(DOCS / page)), page


def test_the_fake_says_it_serves_nova_3_too() -> None:
    done = subprocess.run([sys.executable, "-m", "tests.fake_flux", "--help"], cwd=ROOT, capture_output=True,
                          text=True, check=True, timeout=60)
    assert "Flux at /v2/listen and Nova-3 at /v1/listen" in flat(done.stdout)


def fresh_home(home: Path) -> dict[str, str]:
    """The environment of a newcomer on a fresh machine: a new home folder (no uv, no command installed, no
    configuration in it) and PATH=/usr/bin:/bin (no venv, no uv of ours). The machine's own settings stay (its
    certificates, package indexes and proxies); uv's and pip's download caches are shared, which changes nothing but
    the time a run takes."""
    uv_cache = subprocess.run([uv_command(), "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("XDG_", "UV_TOOL", "UV_PYTHON", "UV_PROJECT", "VIRTUAL_ENV", "WYOMING_FLUX_",
                                  "DEEPGRAM_", "PYTHON", "PYENV", "CONDA"))}
    return env | {"HOME": str(home), "PATH": "/usr/bin:/bin", "UV_CACHE_DIR": uv_cache,
                  "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))}


def uv_command() -> str:
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.exists() else shutil.which("uv")
    assert found, "uv is needed (Home Assistant depends on it)"
    return found


def shape(output: str) -> list[str]:
    """Lines with every figure replaced: what the page's example output and a run have in common."""
    return [re.sub(r"\d+(?:\.\d+)?", "N", line) for line in output.strip().splitlines()]


@pytest.mark.timeout(900)  # script/server installs uv and the command into the new home folder first
async def test_trying_it_without_a_key_works_as_written(tmp_path: Path) -> None:
    """The page's three shells as written, each in bash from the checkout, from a fresh home folder with
    PATH=/usr/bin:/bin: script/server installs uv and the command (on Debian 12 pip refuses --user, so uv goes into
    a venv of its own, which script/server links into ~/.local/bin), the second shell finds uv there, the third
    the command. Only the ports are changed, to free ones. The output has the form the page shows."""
    from tests.helpers import free_port

    page = text(DOCS / "try-without-a-key.md")
    block = re.search(r"```sh\n(.+?)```", page, re.S).group(1).replace("\\\n", " ")  # type: ignore[union-attr]
    shells = [[line for line in shell.splitlines() if line and not line.startswith("#")]
              for shell in re.split(r"\n(?=# \d\. )", block.strip())]
    assert [shlex.split(shell[-1])[0] for shell in shells] == ["DEEPGRAM_API_KEY=test-key", "uv", "wyoming-flux"]
    assert shlex.split(shells[0][-1])[1] == "script/server"
    for shell in shells[1:]:  # a new shell finds what script/server installed only with ~/.local/bin on PATH
        assert shell[0] == 'export PATH="$HOME/.local/bin:$PATH"'
    flux_port, wyoming_port = str(free_port()), str(free_port())
    home = tmp_path / "home"
    home.mkdir()
    env = fresh_home(home)

    async def start(shell: list[str], log: Path) -> asyncio.subprocess.Process:
        script = "\n".join(shell).replace("8765", flux_port).replace("10300", wyoming_port)
        with log.open("wb") as err:
            return await asyncio.create_subprocess_exec("bash", "-c", script, cwd=ROOT, env=env, stderr=err,
                                                        stdout=asyncio.subprocess.PIPE, start_new_session=True)

    server = await start(shells[0], tmp_path / "server.log")
    fake = None
    try:
        uri = f"tcp://127.0.0.1:{wyoming_port}"
        while True:  # script/server installs first (uv, the command, its dependencies), then serves
            if server.returncode is not None:
                pytest.fail(f"script/server ended: {(tmp_path / 'server.log').read_text()}")
            check = await asyncio.create_subprocess_exec(str(Path(sys.executable).parent / "wyoming-flux"), "check",
                                                         "--uri", uri, "--timeout", "1",
                                                         stdout=asyncio.subprocess.DEVNULL,
                                                         stderr=asyncio.subprocess.DEVNULL)
            if await asyncio.wait_for(check.wait(), 10) == 0:
                break
            await asyncio.sleep(0.5)
        assert (home / ".local" / "bin" / "wyoming-flux").exists()  # where the README and the page say
        assert shutil.which("uv", path=f"{home}/.local/bin:/usr/bin:/bin"), "no uv for the second shell"
        fake = await start(shells[1], tmp_path / "fake.log")
        assert fake.stdout is not None
        banner = (await asyncio.wait_for(fake.stdout.readline(), 300)).decode()  # uv may fetch aiohttp, numpy
        assert "listening" in banner and "Nova-3" in banner, (tmp_path / "fake.log").read_text()
        script = "\n".join(shells[2]).replace("10300", wyoming_port)
        transcribe = await asyncio.create_subprocess_exec("bash", "-c", script, cwd=ROOT, env=env,
                                                          stdout=asyncio.subprocess.PIPE,
                                                          stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(transcribe.communicate(), 60)
        assert transcribe.returncode == 0, err.decode()
        said = re.search(r'--transcript "([^"]+)"', block).group(1)  # type: ignore[union-attr]
        assert out.decode().splitlines() == [said]  # the text on stdout, the figures on stderr
        shown = re.search(r"shows the partial text live.+?```\n(.+?)```", page, re.S).group(1)  # type: ignore[union-attr]
        assert shape(shown) == shape(said + "\n" + err.decode())
    finally:
        for process in (server, fake):
            if process is not None and process.returncode is None:
                os.killpg(process.pid, signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 10)
