"""Flux models, the languages each accepts, and how a request picks one."""

from __future__ import annotations

from dataclasses import dataclass

MODEL_EN = "flux-general-en"
MODEL_MULTI = "flux-general-multi"

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


@dataclass(frozen=True)
class FluxModel:
    """A Flux model and the language codes a client may ask for with it."""

    name: str
    description: str
    languages: tuple[str, ...]
    takes_language_hint: bool


FLUX_MODELS: dict[str, FluxModel] = {
    MODEL_EN: FluxModel(MODEL_EN, "Deepgram Flux, English", _ENGLISH, takes_language_hint=False),
    MODEL_MULTI: FluxModel(
        MODEL_MULTI,
        "Deepgram Flux, multilingual",
        tuple(code for base, variants in _MULTI_VARIANTS.items() for code in (base, *variants)),
        takes_language_hint=True,
    ),
}


def base_language(code: str) -> str:
    """'de-AT' -> 'de', the form Flux's language_hint takes."""
    return code.replace("_", "-").split("-", 1)[0].lower()


def pick_model(models: list[FluxModel], name: str | None, language: str | None) -> FluxModel:
    """Choose the model for one command: by name if it names one of ours, else the first that speaks the language."""
    by_name = {model.name: model for model in models}
    if name and name in by_name:
        return by_name[name]
    if language:
        for model in models:
            if language in model.languages or base_language(language) in model.languages:
                return model
    return models[0]


def language_hints(model: FluxModel, language: str | None) -> list[str]:
    """The language_hint values to send: only multi takes them (it is a 400 on flux-general-en)."""
    if not model.takes_language_hint or not language:
        return []
    base = base_language(language)
    return [base] if base in _MULTI_VARIANTS else []


def language_mismatch(model: FluxModel, language: str | None) -> str | None:
    """Why a command's language does not fit its model (it is then transcribed as the model's language), or None."""
    if not language or language in model.languages or base_language(language) in model.languages:
        return None
    return f"{model.name} does not support language {language}; transcribing as {model.languages[0]}"
