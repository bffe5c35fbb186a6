"""Constants for the Deepgram Flux integration."""

from __future__ import annotations

from typing import Final

from wyoming_flux import DEFAULT_ENDPOINTING_MS, DEFAULT_UTTERANCE_END_MS, MODEL_EN, MODEL_MULTI, MODEL_NOVA, REGIONS

DOMAIN: Final = "deepgram_flux"

CONF_MODEL: Final = "model"
CONF_ENDPOINT: Final = "endpoint"
CONF_CUSTOM_URL: Final = "custom_url"
CONF_NOVA: Final = "nova"  # Nova-3 for the languages the Flux model does not speak (absent: on)

ENDPOINT_GLOBAL: Final = "global"  # the default; entries before minor version 2 called it "us"
ENDPOINT_US: Final = "us"  # US data residency
ENDPOINT_CUSTOM: Final = "custom"
ENDPOINT_URLS: Final = dict(REGIONS)  # global, us, eu, au, in: Deepgram's hosts
ENDPOINTS: Final = [*ENDPOINT_URLS, ENDPOINT_CUSTOM]
MODELS: Final = [MODEL_EN, MODEL_MULTI, MODEL_NOVA]  # nova-3 alone: every language, English too

# Options
CONF_EOT_THRESHOLD: Final = "eot_threshold"
CONF_EAGER_EOT_THRESHOLD: Final = "eager_eot_threshold"
CONF_EOT_TIMEOUT_MS: Final = "eot_timeout_ms"
CONF_EARLY_ANSWER: Final = "early_answer"  # answer a complete command at the first sign of its end
CONF_KEYTERMS: Final = "keyterms"
CONF_BOOST_EXPOSED: Final = "boost_exposed_names"
CONF_END_OF_SPEECH: Final = "end_of_speech"
CONF_NO_SPEECH_TIMEOUT: Final = "no_speech_timeout"
CONF_MAX_COMMAND_SECONDS: Final = "max_command_seconds"
CONF_ENDPOINTING_MS: Final = "endpointing_ms"  # Nova-3 only
CONF_UTTERANCE_END_MS: Final = "utterance_end_ms"  # Nova-3 only
CONF_MIP_OPT_OUT: Final = "mip_opt_out"
CONF_TAGS: Final = "tags"
CONF_FALLBACK_ENTITY: Final = "fallback_entity"
CONF_PRICE_PER_MINUTE: Final = "price_per_minute"  # empty: the model's pay-as-you-go rate below
CONF_MONTHLY_CAP_MINUTES: Final = "monthly_cap_minutes"  # empty: no cap

# Deepgram's pay-as-you-go streaming rates in USD per audio minute, as recorded from deepgram.com/pricing:
# Flux on 2026-11-04, Nova-3 on 2026-05-05 and 2026-08-01 (docs/languages.md). Nova-3 with language=multi
# (the languages it has no monolingual model for) is priced apart.
NOVA_MULTI: Final = "nova-3-multi"
DEFAULT_PRICES: Final = {MODEL_EN: 0.0065, MODEL_MULTI: 0.0078, MODEL_NOVA: 0.0048, NOVA_MULTI: 0.0058}

END_OF_SPEECH_FLUX: Final = "flux"
END_OF_SPEECH_HA_VAD: Final = "ha_vad"

DEFAULT_OPTIONS: Final = {
    CONF_EOT_THRESHOLD: 0.7,
    CONF_EOT_TIMEOUT_MS: 5000,
    CONF_EARLY_ANSWER: True,
    CONF_KEYTERMS: [],
    CONF_BOOST_EXPOSED: True,
    CONF_END_OF_SPEECH: END_OF_SPEECH_FLUX,
    CONF_NO_SPEECH_TIMEOUT: 8.0,
    CONF_MAX_COMMAND_SECONDS: 30.0,
    CONF_ENDPOINTING_MS: DEFAULT_ENDPOINTING_MS,
    CONF_UTTERANCE_END_MS: DEFAULT_UTTERANCE_END_MS,
    CONF_MIP_OPT_OUT: False,
    CONF_TAGS: [],
}

HISTORY_LENGTH: Final = 10  # recent commands kept for diagnostics
