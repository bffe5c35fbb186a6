#!/usr/bin/with-contenv bashio
# shellcheck shell=bash
# Maps the add-on options onto wyoming-flux's environment, announces the server to Home Assistant through the
# Supervisor's wyoming discovery once it answers, then runs it.
set -e

if ! bashio::config.has_value 'api_key'; then
    bashio::exit.nok "Set your Deepgram API key in the add-on configuration."
fi

option() {  # option ENV_NAME KEY: export the add-on option KEY under ENV_NAME (a failed read stops the start)
    local value
    value="$(bashio::config "$2")"
    export "$1=$value"
}

option DEEPGRAM_API_KEY 'api_key'
export WYOMING_FLUX_URI="tcp://0.0.0.0:10300"
option WYOMING_FLUX_MODEL 'model'
option WYOMING_FLUX_END_OF_SPEECH 'end_of_speech'
option WYOMING_FLUX_EOT_THRESHOLD 'eot_threshold'
option WYOMING_FLUX_EOT_TIMEOUT_MS 'eot_timeout_ms'
option WYOMING_FLUX_NOVA 'nova'
option WYOMING_FLUX_ENDPOINTING_MS 'endpointing_ms'
option WYOMING_FLUX_UTTERANCE_END_MS 'utterance_end_ms'
option WYOMING_FLUX_NO_SPEECH_TIMEOUT 'no_speech_timeout'
option WYOMING_FLUX_MAX_COMMAND_SECONDS 'max_command_seconds'
option WYOMING_FLUX_MAX_SESSIONS 'max_sessions'
if bashio::config.has_value 'eager_eot_threshold'; then
    option WYOMING_FLUX_EAGER_EOT_THRESHOLD 'eager_eot_threshold'
fi
if bashio::config.has_value 'flux_url'; then
    option WYOMING_FLUX_URL 'flux_url'
fi
args=()  # list options as repeated flags, not a comma-joined variable: a keyterm may hold a comma
while IFS= read -r term; do  # one list item per line
    if [ -n "$term" ]; then args+=(--keyterm "$term"); fi
done < <(bashio::config 'keyterms')
while IFS= read -r tag; do
    if [ -n "$tag" ]; then args+=(--tag "$tag"); fi
done < <(bashio::config 'tags')
if bashio::config.true 'mip_opt_out'; then
    export WYOMING_FLUX_MIP_OPT_OUT=1
fi
if bashio::config.true 'home_assistant_names' && [ -n "${SUPERVISOR_TOKEN:-}" ]; then
    # homeassistant_api: true gives the add-on this token; the Supervisor proxies Core's API with it.
    export WYOMING_FLUX_HASS_URL="http://supervisor/core"
    export HASS_TOKEN="$SUPERVISOR_TOKEN"
fi
if bashio::config.true 'metrics'; then  # /metrics and /healthz on 9300, mapped in the Network section
    export WYOMING_FLUX_METRICS_PORT=9300
    export WYOMING_FLUX_METRICS_HOST=0.0.0.0
fi
if bashio::config.true 'debug'; then
    export WYOMING_FLUX_DEBUG=1
fi

(
    until wyoming-flux check --uri tcp://127.0.0.1:10300 --timeout 2 >/dev/null 2>&1; do sleep 1; done
    if bashio::discovery "wyoming" "$(bashio::var.json uri "tcp://$(hostname):10300")" >/dev/null; then
        bashio::log.info "Offered to Home Assistant (Settings -> Devices & services)"
    else
        bashio::log.warning "Supervisor discovery failed; add the Wyoming integration by hand: $(hostname):10300"
    fi
) &

exec wyoming-flux "${args[@]}"
