"""A newcomer's first hour, in Home Assistant's real frontend in Chromium: add the integration (a wrong key, then
the right one), open the options (an error, then saved), speak a command through the Assist dialog (audio from
a fixture as the microphone), read the device page, and meet and fix repairs (a rotated key; the monthly cap).

It asserts what the user must see — the translated texts, never a raw translation key or an option's internal
name, the field's label in an error, the sensors' values — and writes the screenshots the README shows
(docs/images/). Deepgram is the fake Flux; Home Assistant is a real process on loopback (harness.py).

Needs Chromium (Debian's `chromium`), Playwright and the frontend: `script/test --only browser` installs them.
Elsewhere the test is skipped, unless WYOMING_FLUX_BROWSER_TEST=1 says it must run (CI).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import HomeAssistant, onboarded_home_assistant
from tests.fake_flux import FakeFlux
from tests.helpers import RATE, fixture_text, load_wav, silence

ROOT = Path(__file__).parents[2]
# The docs' screenshots are rewritten only when asked (WYOMING_FLUX_SCREENSHOTS=docs/images): a plain run keeps
# them in a scratch folder, so the tree stays as it was (each run's pictures differ: "7 seconds ago").
IMAGES = Path(os.environ.get("WYOMING_FLUX_SCREENSHOTS") or tempfile.mkdtemp(prefix="wyoming-flux-screens-"))
IMAGES = IMAGES if IMAGES.is_absolute() else ROOT / IMAGES
CHROMIUM = os.environ.get("WYOMING_FLUX_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
STRINGS = json.loads((ROOT / "custom_components" / "deepgram_flux" / "translations" / "en.json").read_text())
KITCHEN = "turn_on_the_kitchen_light"
KEY, ROTATED = "dg-browser-key-0123456789", "dg-rotated-key-9876543210"
TITLE = "Deepgram (Flux English, Nova-3)"  # the entry and its device: what it serves
STT = "stt.deepgram_flux_english_nova_3"
REQUIRED = os.environ.get("WYOMING_FLUX_BROWSER_TEST") == "1"

try:
    from playwright.async_api import Page, async_playwright, expect
except ImportError:  # pragma: no cover - the plain .venv has no Playwright
    if REQUIRED:
        raise
    pytest.skip("Playwright is not installed (script/test --only browser installs it)", allow_module_level=True)
expect.set_options(timeout=30_000)  # a busy machine: Home Assistant and Chromium share two cores
if not Path(CHROMIUM).exists():
    if REQUIRED:
        raise RuntimeError(f"WYOMING_FLUX_BROWSER_TEST=1 but there is no Chromium at {CHROMIUM}")
    pytest.skip("no Chromium (apt-get install chromium)", allow_module_level=True)

# Every option's internal name, and what a translation left untranslated looks like in the frontend.
INTERNAL_NAMES = sorted({key for part in STRINGS["options"]["step"]["init"]["sections"].values()
                         for key in part["data"]} | {"api_key", "custom_url"})
# A key the frontend could not translate shows as itself: snake_case, or dotted.
RAW = re.compile(r"component\.deepgram_flux|\[%key:|ui\.(panel|dialogs|components)\.|Translation error"
                 r"|\{[a-z_]+(, ?\w+[^}]*)?\}|\b[a-z]+(_[a-z]+)+\b|\b(" + "|".join(INTERNAL_NAMES) + r")\b")

# The text of the page, shadow roots included (the frontend is web components all the way down).
DEEP_TEXT = """() => {
  const out = [];
  const walk = (node) => {
    if (node.nodeType === Node.TEXT_NODE) { out.push(node.textContent); return; }
    if (node.nodeType !== Node.ELEMENT_NODE && node.nodeType !== Node.DOCUMENT_FRAGMENT_NODE) return;
    if (node.nodeName === 'STYLE' || node.nodeName === 'SCRIPT') return;
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) walk(child);
  };
  walk(document.body);
  return out.join(' ').replace(/\\s+/g, ' ');
}"""


async def page_text(page: Page) -> str:
    return str(await page.evaluate(DEEP_TEXT))


async def assert_readable(page: Page, where: str) -> str:
    """The page shows no raw translation key, no option's internal name, no unfilled placeholder."""
    text = await page_text(page)
    found = sorted({m.group(0) for m in RAW.finditer(text)})
    assert not found, f"{where}: {found} in the page: {text[:3000]}"
    return text


async def shot(page: Page, name: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    await page.wait_for_load_state("networkidle")  # no page still drawing its "Loading..." behind a dialog
    await page.screenshot(path=str(IMAGES / f"{name}.png"))


def microphone_wav(path: Path) -> Path:
    """What the fake microphone hears: a breath, the command, then silence for Flux to end the turn."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(silence(0.5) + load_wav(KITCHEN) + silence(4))
    return path


@pytest.fixture
async def fake_flux() -> AsyncIterator[FakeFlux]:
    fake = FakeFlux(api_key=KEY)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def home_assistant(tmp_path: Path) -> AsyncIterator[HomeAssistant]:
    async with onboarded_home_assistant(tmp_path / "config") as ha:
        yield ha
    log = ha.log_text()
    assert KEY not in log and ROTATED not in log  # the key never reaches the log
    assert "custom_components/deepgram_flux/" not in log  # no traceback through our code
    assert "component.deepgram_flux" not in log  # no string the translation loader could not parse and dropped
    errors = [line for line in log.splitlines() if "ERROR" in line and "custom_components.deepgram_flux" in line]
    assert all("rejected the API key" in line for line in errors), errors  # only the rotated key's command


async def settle(ha: HomeAssistant) -> None:
    """Wait for the test TTS (platforms load after start), keep the HTTP settings (else Home Assistant offers to
    revert them) and hide the issues not ours (the HTTP YAML's)."""
    async with asyncio.timeout(60):
        while True:
            try:
                (engines,) = await ha.ws({"type": "tts/engine/list"})
            except AssertionError:  # the command comes with the tts integration
                engines = {"providers": []}
            if any(engine["engine_id"] == "quiet_tts" for engine in engines["providers"]):
                break
            await asyncio.sleep(0.5)
    try:
        await ha.ws({"type": "http/config/promote"})
    except AssertionError:
        pass  # nothing pending
    (issues,) = await ha.ws({"type": "repairs/list_issues"})
    others = [i for i in issues["issues"] if i["domain"] != "deepgram_flux" and not i["ignored"]]
    if others:
        await ha.ws(*({"type": "repairs/ignore_issue", "domain": i["domain"], "issue_id": i["issue_id"],
                       "ignore": True} for i in others))


async def submit_for_an_error(page: Page, where: str) -> str:
    """Submit the form; once an error shows, the page must be readable (checked before the words expected)."""
    await dialog_button(page, "Submit")
    await expect(page.locator('ha-alert[alert-type="error"]').first).to_be_visible()
    return await assert_readable(page, where)


async def dialog_button(page: Page, name: str) -> None:
    await page.get_by_role("button", name=name, exact=True).last.click()


@pytest.mark.timeout(600)
async def test_a_newcomers_first_hour(home_assistant: HomeAssistant, fake_flux: FakeFlux, tmp_path: Path) -> None:
    ha = home_assistant
    await settle(ha)
    microphone = microphone_wav(tmp_path / "microphone.wav")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}%noloop",
        ])
        context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US",
                                            timezone_id="UTC")
        await context.grant_permissions(["microphone"], origin=ha.url)
        await context.add_init_script(ha.login_script())
        page = await context.new_page()
        page.set_default_timeout(30_000)
        try:
            await add_the_integration(page, ha, fake_flux)
            await open_the_options(page, ha)
            await speak_a_command(page, ha)
            await look_at_the_device(page, ha)
            await fix_a_rotated_key(page, ha, fake_flux)
            await fix_the_monthly_cap(page, ha)
        except BaseException:
            failure = Path(os.environ.get("WYOMING_FLUX_BROWSER_FAILURE", tmp_path / "failure.png"))
            await page.screenshot(path=str(failure))
            print(f"the page when the test failed: {failure}\nHome Assistant's log ends:\n{ha.log_tail()}")
            raise
        finally:
            await browser.close()


async def add_the_integration(page: Page, ha: HomeAssistant, fake_flux: FakeFlux) -> None:
    errors = STRINGS["config"]["error"]
    await page.goto(f"{ha.url}/config/integrations/dashboard/add?domain=deepgram_flux")
    await dialog_button(page, "OK")  # "Do you want to set up Deepgram Flux?"
    await expect(page.get_by_text(STRINGS["config"]["step"]["user"]["title"])).to_be_visible()
    await page.locator("input[name=api_key]").fill("not-my-key")
    await page.locator("ha-radio-option[value=custom]").click()
    await page.locator("input[name=custom_url]").fill(fake_flux.url)
    await next_to_the_languages_step(page)
    await submit_for_an_error(page, "a wrong key")
    error = page.get_by_text(errors["invalid_auth"])
    await expect(error).to_be_visible()
    await error.scroll_into_view_if_needed()
    await shot(page, "config-flow-wrong-key")
    await page.locator("input[name=api_key]").fill(KEY)
    await next_to_the_languages_step(page)
    await dialog_button(page, "Submit")
    await expect(page.get_by_text("Name and assign")).to_be_visible()  # the entry is made: its device next
    await assert_readable(page, "the entry made")
    await dialog_button(page, "Skip and finish")
    await expect(page.get_by_text("Name and assign")).to_be_hidden()  # closed: no navigation of its own pending
    (entries,) = await ha.ws({"type": "config_entries/get", "domain": "deepgram_flux"})
    assert [(e["title"], e["state"]) for e in entries] == [(TITLE, "loaded")]


async def next_to_the_languages_step(page: Page) -> None:
    """Key, model and endpoint submitted: a Flux model's entry asks, on a step of its own, whether the languages
    it does not speak go to Nova-3 (on by default)."""
    languages = STRINGS["config"]["step"]["languages"]
    await dialog_button(page, "Submit")
    await expect(page.get_by_text(languages["title"].format(model="Flux English"))).to_be_visible()
    await expect(page.get_by_text(languages["data"]["nova"]).first).to_be_visible()
    await assert_readable(page, "the languages step")


def _field(page: Page, label: str) -> Any:
    """The input of the number or text field with exactly this label (a required one's ends in *)."""
    label_element = page.locator("slot[name=label]", has_text=re.compile(rf"^\s*{re.escape(label)}\*?\s*$"))
    return page.locator("ha-input").filter(has=label_element).locator("input")


async def open_the_options(page: Page, ha: HomeAssistant) -> None:
    options = STRINGS["options"]
    sections = options["step"]["init"]["sections"]
    turn = sections["turn"]["data"]
    turn_hints = sections["turn"]["data_description"]
    await page.goto(f"{ha.url}/config/integrations/integration/deepgram_flux")
    await page.get_by_role("button", name="Configure").first.click()
    await expect(page.get_by_text(options["step"]["init"]["title"])).to_be_visible()
    fallback = page.get_by_role("heading", name=sections["fallback"]["name"], exact=True)
    await expect(fallback).to_be_visible()  # the form is drawn (its field's label holds the name too)
    text = await assert_readable(page, "the options")
    for part in sections.values():  # every section, under its name
        assert part["name"] in text

    # An eager threshold above the end-of-turn one: one message, naming the field by its label, with the limit.
    await _field(page, turn["eager_eot_threshold"]).fill("0.8")
    await submit_for_an_error(page, "the eager threshold's error")
    message = options["error"]["eager_above_eot"].format(eot_threshold="0.7")
    await expect(page.get_by_text(message)).to_be_visible()
    text = await page_text(page)
    assert text.count(message) == 1 and message.startswith(turn["eager_eot_threshold"])
    await shot(page, "options-error")

    # A value out of its range: Home Assistant's own check would name 'turn.eot_threshold'.
    await _field(page, turn["eager_eot_threshold"]).fill("")
    await _field(page, turn["eot_threshold"]).fill("1.5")
    await submit_for_an_error(page, "a value out of range")
    message = options["error"]["out_of_range_eot_threshold"].format(low="0.5", high="1.0")  # as the hint says
    await expect(page.get_by_text(message)).to_be_visible()
    assert "(0.5 to 1.0)" in turn_hints["eot_threshold"]

    # Put right, a key term added, and in the collapsed section a cap: out of range first; the section with the
    # error stays open, then a cap of a minute a month.
    await _field(page, turn["eot_threshold"]).fill("0.7")
    add = page.get_by_role("button", name="Add Key term")
    await add.click()
    await page.locator("ha-input-multi input").first.fill("Léa")
    await page.get_by_text(sections["usage"]["name"]).click()
    cap = _field(page, sections["usage"]["data"]["monthly_cap_minutes"])
    await cap.fill("0")
    await submit_for_an_error(page, "a cap out of range")
    await expect(page.get_by_text(options["error"]["out_of_range_monthly_cap_minutes"].format(
        low="1", high="1000000"))).to_be_visible()
    await expect(cap).to_be_visible()  # its section did not close on the error
    await cap.fill("1")
    await assert_readable(page, "the options filled in")
    await dialog_button(page, "Submit")
    await expect(page.get_by_text("Options successfully saved")).to_be_visible()
    await dialog_button(page, "Finish")
    (entries,) = await ha.ws({"type": "config_entries/get", "domain": "deepgram_flux"})
    assert entries[0]["state"] == "loaded"  # reloaded with the new options


async def speak_a_command(page: Page, ha: HomeAssistant) -> None:
    (pipeline,) = await ha.ws({
        "type": "assist_pipeline/pipeline/create", "name": "Flux", "language": "en",
        "conversation_engine": "conversation.home_assistant", "conversation_language": "en",
        "stt_engine": STT, "stt_language": "en-US", "tts_engine": "quiet_tts", "tts_language": "en",
        "tts_voice": None, "wake_word_entity": None, "wake_word_id": None,
    })
    await ha.ws({"type": "assist_pipeline/pipeline/set_preferred", "pipeline_id": pipeline["id"]})
    # Onboarding made a Kitchen area: "the kitchen light" would then mean the lights in it (there are none).
    await ha.ws({"type": "config/area_registry/delete", "area_id": "kitchen"})
    await page.goto(f"{ha.url}/lovelace/0")
    await page.get_by_role("button", name="Assist (A)").click()
    await page.get_by_role("button", name="Start listening").click()  # the fixture is the microphone
    await expect(page.get_by_text(fixture_text(KITCHEN), exact=True)).to_be_visible()
    await expect(page.get_by_text("Turned on the light")).to_be_visible()
    await assert_readable(page, "the Assist dialog")
    await shot(page, "assist")
    assert (await ha.rest("/api/states/light.kitchen_light"))["state"] == "on"  # Home Assistant did it


async def look_at_the_device(page: Page, ha: HomeAssistant) -> None:
    (devices,) = await ha.ws({"type": "config/device_registry/list"})
    (device,) = [d for d in devices if d["manufacturer"] == "Deepgram"]
    await page.goto(f"{ha.url}/config/devices/device/{device['id']}")
    names = {key: value["name"] for key, value in STRINGS["entity"]["sensor"].items()}
    await expect(page.get_by_text(names["commands"])).to_be_visible()
    minutes_sensor = "sensor.deepgram_flux_english_nova_3_audio_minutes_this_month"
    minutes = float((await ha.rest(f"/api/states/{minutes_sensor}"))["state"])
    assert 1 / 60 < minutes < 10 / 60  # the command's seconds of audio, not a tenth of a minute
    text = await assert_readable(page, "the device page")
    seconds = re.search(re.escape(names["audio_minutes"]) + r" 0m (\d+)s", text)
    assert seconds and abs(int(seconds[1]) - minutes * 60) <= 1, text  # shown to the second
    assert re.search(re.escape(names["commands"]) + r" 1\b", text), text
    assert re.search(re.escape(names["estimated_cost"]) + r" \$0\.000[1-9]", text), text  # not $0.00
    assert re.search(re.escape(names["last_latency"]) + r" \d\.\d\d s", text), text
    await shot(page, "device")


async def fix_a_rotated_key(page: Page, ha: HomeAssistant, fake_flux: FakeFlux) -> None:
    fake_flux.api_key = ROTATED  # the key was rotated in Deepgram's console
    await page.goto(f"{ha.url}/lovelace/0")
    await page.get_by_role("button", name="Assist (A)").click()
    await page.get_by_role("button", name="Start listening").click()
    await expect(page.get_by_text("speech-to-text failed")).to_be_visible()
    await page.goto(f"{ha.url}/config/repairs")
    await expect(page.get_by_text("1 repair", exact=True)).to_be_visible()  # one problem, one repair
    issue = page.get_by_text(f"Authentication expired for {TITLE}")
    await expect(issue).to_be_visible()
    await assert_readable(page, "the repairs")
    await shot(page, "repair-rejected-key")
    await issue.click()
    await expect(page.get_by_text(STRINGS["config"]["step"]["reauth_confirm"]["title"])).to_be_visible()
    await assert_readable(page, "the re-authentication")
    await page.locator("input[name=api_key]").fill(ROTATED)
    await dialog_button(page, "Submit")
    await expect(page.get_by_text("Re-authentication was successful")).to_be_visible()  # the frontend's own words
    await dialog_button(page, "Close")
    await expect(page.get_by_text("There are currently no repairs pending")).to_be_visible()


async def fix_the_monthly_cap(page: Page, ha: HomeAssistant) -> None:
    """The month's minute is used up (the figures of a past restart, written while Home Assistant is down)."""
    issue = STRINGS["issues"]["monthly_cap_reached"]
    step = issue["fix_flow"]["step"]["cap"]
    (entries,) = await ha.ws({"type": "config_entries/get", "domain": "deepgram_flux"})
    await ha.stop()
    store = ha.config_dir / ".storage" / f"deepgram_flux.usage.{entries[0]['entry_id']}"
    stored = json.loads(store.read_text())
    stored["data"]["audio_seconds"] = 61.0
    store.write_text(json.dumps(stored))
    await ha.start()
    await settle(ha)
    await page.goto(f"{ha.url}/config/repairs")
    await page.get_by_text(issue["title"]).click()
    this_month = datetime.now(UTC).date().replace(day=1)  # Home Assistant's time zone is UTC here
    reset = (this_month + timedelta(days=32)).replace(day=1)
    # One minute, singular; the reset date written out. The whole text: a string Home Assistant's loader could
    # not parse would leave the form with a bare field.
    rendered = step["description"].format(title=TITLE, cap="1 audio minute",
                                          reset=f"{reset:%B} {reset.day}, {reset.year}")
    await expect(page.get_by_text(rendered)).to_be_visible()
    await expect(page.get_by_text("this month has used 1 audio minute.", exact=False)).to_be_visible()
    await assert_readable(page, "the cap's repair")
    await shot(page, "repair-monthly-cap")
    cap = _field(page, step["data"]["monthly_cap_minutes"])
    await cap.fill("1")
    await submit_for_an_error(page, "the cap not above the month's minutes")
    await expect(page.get_by_text("This month has already used 1 audio minute:")).to_be_visible()
    await cap.fill("5")
    await dialog_button(page, "Submit")
    await expect(page.get_by_text("There are currently no repairs pending")).to_be_visible()
    (entries,) = await ha.ws({"type": "config_entries/get", "domain": "deepgram_flux"})
    assert entries[0]["state"] == "loaded"
