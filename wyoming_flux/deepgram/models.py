"""The models we offer (Flux's two and Nova-3), the languages each speaks, and how a command picks one.

Nova-3's languages are Deepgram's Models & Languages Overview and changelog as of 2026-11: monolingual models
(`language=<code>`) for the codes in _NOVA_MONO, and `language=multi` (55 languages, with `language_hint`
since 2026-10) for the codes in _NOVA_MULTI.
"""

from __future__ import annotations

from dataclasses import dataclass

MODEL_EN = "flux-general-en"
MODEL_MULTI = "flux-general-multi"
MODEL_NOVA = "nova-3"
FLUX = "flux"  # /v2/listen, the turn model ends the command
NOVA = "nova"  # /v1/listen, endpointing (silence) ends the command

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
# another regional variant of a listed base goes as the base).
_NOVA_MONO: tuple[str, ...] = (
    *_ENGLISH,
    "be", "bg", "bn", "bs", "ca", "cs", "da", "da-DK", "de", "de-CH", "el", "es", "es-419", "et", "fi", "fr",
    "fr-CA", "hi", "hr", "hu", "id", "it", "ja", "kn", "ko", "ko-KR", "lt", "lv", "mk", "mr", "ms", "ne", "nl",
    "nl-BE", "no", "pa", "pa-IN", "pl", "pt", "pt-BR", "pt-PT", "ro", "ru", "sk", "sl", "sr", "sv", "sv-SE", "ta",
    "te", "tl", "tr", "uk", "vi", "zh", "zh-CN", "zh-Hans", "zh-TW", "zh-Hant",
)
# Only through language=multi (with the language as a hint): Nova-3 has no monolingual model for these.
_NOVA_MULTI_ONLY: tuple[str, ...] = ("af", "ar", "fa", "gl", "gu", "he", "th", "xh", "zh-HK", "zu")
# Regional codes Home Assistant uses for languages Nova-3 serves under the base code.
_NOVA_VARIANTS: tuple[str, ...] = (
    "bg-BG", "ca-ES", "cs-CZ", "de-DE", "de-AT", "el-GR", "es-ES", "es-MX", "es-US", "et-EE", "fi-FI", "fr-FR",
    "fr-BE", "fr-CH", "hr-HR", "hu-HU", "id-ID", "it-IT", "ja-JP", "lt-LT", "lv-LV", "nb", "nb-NO", "nl-NL",
    "pl-PL", "ro-RO", "ru-RU", "sk-SK", "sl-SI", "sr-RS", "tr-TR", "uk-UA", "vi-VN", "ar-SA", "he-IL", "th-TH",
)


@dataclass(frozen=True)
class FluxModel:
    """A Flux model and the language codes a client may ask for with it."""

    name: str
    description: str
    languages: tuple[str, ...]
    takes_language_hint: bool
    api: str = FLUX  # FLUX or NOVA: which client and which end-of-command signals

    def speaks(self, language: str | None) -> bool:
        return not language or language in self.languages or base_language(language) in self.languages


FLUX_MODELS: dict[str, FluxModel] = {
    MODEL_EN: FluxModel(MODEL_EN, "Deepgram Flux, English", _ENGLISH, takes_language_hint=False),
    MODEL_MULTI: FluxModel(
        MODEL_MULTI,
        "Deepgram Flux, multilingual",
        tuple(code for base, variants in _MULTI_VARIANTS.items() for code in (base, *variants)),
        takes_language_hint=True,
    ),
    MODEL_NOVA: FluxModel(
        MODEL_NOVA,
        "Deepgram Nova-3 (end of command by silence)",
        tuple(dict.fromkeys((*_NOVA_MONO, *_NOVA_MULTI_ONLY, *_NOVA_VARIANTS))),
        takes_language_hint=True,
        api=NOVA,
    ),
}


def base_language(code: str) -> str:
    """'de-AT' -> 'de', the form Flux's language_hint takes ('nb' -> 'no': Deepgram's Norwegian)."""
    base = code.replace("_", "-").split("-", 1)[0].lower()
    return "no" if base == "nb" else base


def nova_language(language: str | None) -> tuple[str, tuple[str, ...]]:
    """Nova-3's `language` and `language_hint`s for a command: its monolingual model when Deepgram has one
    (the regional code if Deepgram lists it, else the base), otherwise `multi` with the language as a hint.
    No language at all: `multi`, which detects it."""
    if not language:
        return "multi", ()
    code = language.replace("_", "-")
    if code in _NOVA_MULTI_ONLY:  # zh-HK: Cantonese, not the Mandarin of the zh model
        return "multi", (code,)
    if code in _NOVA_MONO:
        return code, ()
    if (base := base_language(code)) in _NOVA_MONO:
        return base, ()
    return "multi", (base,)


def choose_model(models: list[FluxModel], name: str | None, language: str | None) -> FluxModel | None:
    """The model that hears a command, or None when no offered model speaks its language (never a transcript
    in the wrong language). A model named by the client wins if it speaks the language; otherwise a Flux model
    that speaks it (the turn model ends commands best), then Nova-3."""
    by_name = {model.name: model for model in models}
    if name and name in by_name and by_name[name].speaks(language):
        return by_name[name]
    if not language:
        return models[0]
    for api in (FLUX, NOVA):
        for model in models:
            if model.api == api and model.speaks(language):
                return model
    return None


def unserved_language(models: list[FluxModel], language: str, nova_off: str = "--no-nova",
                      model_option: str = "--model") -> str:
    """What to tell a client whose command's language no offered model speaks, and which setting would serve
    it (`nova_off`: how the user turned Nova-3 off; `model_option`: how a model is chosen)."""
    offered = ", ".join(model.name for model in models)
    if FLUX_MODELS[MODEL_MULTI].speaks(language):
        fix = f"{model_option} {MODEL_MULTI}, or Nova-3 (without {nova_off}),"
    elif FLUX_MODELS[MODEL_NOVA].speaks(language):
        fix = f"Nova-3 (without {nova_off}, or {model_option} {MODEL_NOVA})"
    else:
        return f"No model speaks language {language}: Deepgram has none for it (offered: {offered})"
    return f"No offered model speaks language {language} (offered: {offered}); {fix} would serve it"


def language_hints(model: FluxModel, language: str | None) -> list[str]:
    """The language_hint values to send: only multi takes them (it is a 400 on flux-general-en)."""
    if model.api == NOVA:
        return list(nova_language(language)[1])
    if not model.takes_language_hint or not language:
        return []
    base = base_language(language)
    return [base] if base in _MULTI_VARIANTS else []


def language_mismatch(model: FluxModel, language: str | None) -> str | None:
    """Why a command's language does not fit its model (it is then transcribed as the model's language), or None."""
    if model.speaks(language):
        return None
    return f"{model.name} does not support language {language}; transcribing as {model.languages[0]}"
