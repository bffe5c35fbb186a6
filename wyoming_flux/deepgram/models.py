"""The models we offer (Flux's two and Nova-3), the languages each speaks, and how a command picks one.

Nova-3's languages are Deepgram's Models & Languages Overview and changelog through 2026-12: monolingual models
(`language=<code>`) for the codes in _NOVA_MONO, and `language=multi` (55 languages, with `language_hint`
since 2026-10) for the codes in _NOVA_MULTI_ONLY. This is the built-in table: where Deepgram's models endpoint
answers, Nova-3's monolingual codes are the ones it lists (catalog.py, `nova_model`).

Language codes are BCP 47, so case-insensitive: `zh-hk`, `ZH-HK` and `zh-Hant-HK` pick the model `zh-HK`
picks, and go to Deepgram spelled as Deepgram lists them (`deepgram_code`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

MODEL_EN = "flux-general-en"
MODEL_MULTI = "flux-general-multi"
MODEL_NOVA = "nova-3"


class Api(str, Enum):
    """Which of Deepgram's APIs serves a model, and so which client and which end-of-command signals."""

    FLUX = "flux"  # /v2/listen: the turn model ends the command
    NOVA = "nova"  # /v1/listen: endpointing (silence) ends the command

_ENGLISH = ("en", "en-US", "en-GB", "en-AU", "en-CA", "en-IE", "en-IN", "en-NZ", "en-ZA", "en-SG", "en-PH")

# Flux multi covers ten languages; Home Assistant sends either the bare code or a regional variant.
_MULTI_VARIANTS: dict[str, tuple[str, ...]] = {
    "en": _ENGLISH[1:],
    "es": ("es-ES", "es-MX", "es-US", "es-AR", "es-CO", "es-419"),
    "fr": ("fr-FR", "fr-CA", "fr-BE", "fr-CH"),
    "de": ("de-DE", "de-AT", "de-CH"),
    "hi": ("hi-IN",),
    "ru": ("ru-RU",),
    "pt": ("pt-PT", "pt-BR"),
    "ja": ("ja-JP",),
    "it": ("it-IT", "it-CH"),
    "nl": ("nl-NL", "nl-BE"),
}


# Nova-3 monolingual models: the codes Deepgram accepts as `language` (a regional code it lists is sent as is;
# another regional variant of a listed base goes as the base). Added in 2026: he fa ur (02-03), zh-HK th
# (03-17), gu (04-23), pa ne (08-05), kk (09-03).
_NOVA_MONO: tuple[str, ...] = (
    *_ENGLISH,
    "be", "bg", "bn", "bs", "ca", "cs", "da", "da-DK", "de", "de-CH", "el", "es", "es-419", "et", "fa", "fi", "fr",
    "fr-CA", "gu", "gu-IN", "he", "hi", "hr", "hu", "id", "it", "ja", "kk", "kk-KZ", "kn", "ko", "ko-KR", "lt", "lv",
    "mk", "mr", "ms", "ne", "nl", "nl-BE", "no", "pa", "pa-IN", "pl", "pt", "pt-BR", "pt-PT", "ro", "ru", "sk", "sl",
    "sr", "sv", "sv-SE", "ta", "te", "th", "th-TH", "tl", "tr", "uk", "ur", "vi", "zh", "zh-CN", "zh-Hans", "zh-HK",
    "zh-TW", "zh-Hant",
)
# Only through language=multi (with the language as a hint): Nova-3 has no monolingual model for these.
_NOVA_MULTI_ONLY: tuple[str, ...] = ("af", "ar", "gl", "xh", "zu")
# Regional codes Home Assistant uses for languages Nova-3 serves under the base code.
_NOVA_VARIANTS: tuple[str, ...] = (
    "bg-BG", "ca-ES", "cs-CZ", "de-DE", "de-AT", "el-GR", "es-ES", "es-MX", "es-US", "et-EE", "fa-IR", "fi-FI",
    "fr-FR", "fr-BE", "fr-CH", "he-IL", "hr-HR", "hu-HU", "id-ID", "it-IT", "ja-JP", "lt-LT", "lv-LV", "nb", "nb-NO",
    "nl-NL", "pl-PL", "ro-RO", "ru-RU", "sk-SK", "sl-SI", "sr-RS", "tr-TR", "uk-UA", "ur-PK", "vi-VN", "ar-SA",
)
# Regional codes that are another language than their base: never served as the base (Cantonese is not the
# Mandarin of `zh`); without a model of their own they go to language=multi with themselves as the hint.
_DISTINCT: frozenset[str] = frozenset({"zh-HK"})


def _subtags(code: str) -> tuple[str, str | None, str | None]:
    """(language, script, region) of a BCP 47 tag, each in its canonical case: `zh-hant-tw` -> zh, Hant, TW.
    Variants and extensions are ignored; `_` is read as `-` (POSIX locales)."""
    parts = code.strip().replace("_", "-").split("-")
    language, script, region = parts[0].lower(), None, None
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha() and script is None and region is None:
            script = part.title()
        elif (len(part) == 2 and part.isalpha() or len(part) == 3 and part.isdigit()) and region is None:
            region = part.upper()
    return ("no" if language == "nb" else language), script, region


def canonical_forms(code: str) -> list[str]:
    """The forms a code may be served under, most specific first: `zh-Hant-TW` -> zh-Hant-TW, zh-TW, zh-Hant,
    zh. A distinct regional language (`zh-HK`) ends the list: its base is another language."""
    language, script, region = _subtags(code)
    forms = [f"{language}-{script}-{region}"] if script and region else []
    forms += [f"{language}-{region}"] if region else []
    forms += [f"{language}-{script}"] if script else []
    forms.append(language)
    for index, form in enumerate(forms):
        if form in _DISTINCT:
            return forms[: index + 1]
    return forms


def deepgram_code(language: str, codes: Iterable[str]) -> str | None:
    """`language` as one of `codes` spells it (the most specific that fits), or None."""
    by_lower = {code.lower(): code for code in codes}
    return next((by_lower[form.lower()] for form in canonical_forms(language) if form.lower() in by_lower), None)


def base_language(code: str) -> str:
    """'de-AT' -> 'de', the form Flux's language_hint takes ('nb' -> 'no': Deepgram's Norwegian)."""
    return _subtags(code)[0]


@dataclass(frozen=True)
class Model:
    """A Flux model and the language codes a client may ask for with it."""

    name: str
    description: str
    languages: tuple[str, ...]
    takes_language_hint: bool
    api: Api = Api.FLUX
    monolingual: tuple[str, ...] = ()  # Nova-3: the codes sent as `language=` (the rest go as `multi`)

    def speaks(self, language: str | None) -> bool:
        return not language or deepgram_code(language, self.languages) is not None


def nova_model(monolingual: Iterable[str] = _NOVA_MONO) -> Model:
    """Nova-3 with these monolingual codes (the built-in table's, or those Deepgram's models endpoint lists);
    the languages only `multi` hears, and Home Assistant's regional codes of them all, are offered beside."""
    mono = tuple(dict.fromkeys(code for code in monolingual if code.lower() != "multi"))
    served = {base_language(code) for code in (*mono, *_NOVA_MULTI_ONLY)}
    variants = (code for code in _NOVA_VARIANTS if base_language(code) in served)
    return Model(MODEL_NOVA, "Deepgram Nova-3 (end of command by silence)",
                     tuple(dict.fromkeys((*mono, *_NOVA_MULTI_ONLY, *variants))), takes_language_hint=True,
                     api=Api.NOVA, monolingual=mono)


DEEPGRAM_MODELS: dict[str, Model] = {
    MODEL_EN: Model(MODEL_EN, "Deepgram Flux, English", _ENGLISH, takes_language_hint=False),
    MODEL_MULTI: Model(
        MODEL_MULTI,
        "Deepgram Flux, multilingual",
        tuple(code for base, variants in _MULTI_VARIANTS.items() for code in (base, *variants)),
        takes_language_hint=True,
    ),
    MODEL_NOVA: nova_model(),
}


def nova_language(language: str | None, model: Model | None = None) -> tuple[str, tuple[str, ...]]:
    """Nova-3's `language` and `language_hint`s for a command: its monolingual model when Deepgram has one
    (the regional code if Deepgram lists it, else the base), otherwise `multi` with the language as a hint.
    No language at all: `multi`, which detects it. `model`: Nova-3 as this host serves it (default: the table)."""
    if not language:
        return "multi", ()
    if (code := deepgram_code(language, (model or DEEPGRAM_MODELS[MODEL_NOVA]).monolingual)) is not None:
        return code, ()
    distinct = canonical_forms(language)[-1]
    return "multi", (distinct if distinct in _DISTINCT else base_language(language),)


def multi_only(model: Model) -> tuple[str, ...]:
    """The languages Nova-3 (as `model` serves it) hears only through language=multi."""
    return tuple(code for code in _NOVA_MULTI_ONLY if deepgram_code(code, model.monolingual) is None)


def choose_model(models: list[Model], name: str | None, language: str | None) -> Model | None:
    """The model that hears a command, or None when no offered model speaks its language (never a transcript
    in the wrong language). A model named by the client wins if it speaks the language; otherwise a Flux model
    that speaks it (the turn model ends commands best), then Nova-3."""
    by_name = {model.name: model for model in models}
    if name and name in by_name and by_name[name].speaks(language):
        return by_name[name]
    if not language:
        return models[0]
    for api in (Api.FLUX, Api.NOVA):
        for model in models:
            if model.api == api and model.speaks(language):
                return model
    return None


def unserved_language(models: list[Model], language: str, nova_off: str = "--no-nova",
                      model_option: str = "--model") -> str:
    """What to tell a client whose command's language no offered model speaks, and which setting would serve
    it (`nova_off`: how the user turned Nova-3 off; `model_option`: how a model is chosen)."""
    offered = ", ".join(model.name for model in models)
    if DEEPGRAM_MODELS[MODEL_MULTI].speaks(language):
        fix = f"{model_option} {MODEL_MULTI}, or Nova-3 (without {nova_off}),"
    elif DEEPGRAM_MODELS[MODEL_NOVA].speaks(language):
        fix = f"Nova-3 (without {nova_off}, or {model_option} {MODEL_NOVA})"
    else:
        return f"No model speaks language {language}: Deepgram has none for it (offered: {offered})"
    return f"No offered model speaks language {language} (offered: {offered}); {fix} would serve it"


def language_hints(model: Model, language: str | None) -> list[str]:
    """The language_hint values to send: only multi takes them (it is a 400 on flux-general-en)."""
    if model.api == Api.NOVA:
        return list(nova_language(language, model)[1])
    if not model.takes_language_hint or not language:
        return []
    base = base_language(language)
    return [base] if base in _MULTI_VARIANTS else []


def language_mismatch(model: Model, language: str | None) -> str | None:
    """Why a command's language does not fit its model (it is then transcribed as the model's language), or None."""
    if model.speaks(language):
        return None
    return f"{model.name} does not support language {language}; transcribing as {model.languages[0]}"
