#!/usr/bin/with-contenv bashio
# Maps the add-on options onto wyoming-flux's environment, announces the server to Home Assistant through the
# Supervisor's wyoming discovery once it answers, then runs it.
set -e

export DEEPGRAM_API_KEY="$(bashio::config 'api_key')"
export WYOMING_FLUX_URI="tcp://0.0.0.0:10300"
export WYOMING_FLUX_MODEL="$(bashio::config 'model')"
export WYOMING_FLUX_END_OF_SPEECH="$(bashio::config 'end_of_speech')"
export WYOMING_FLUX_EOT_THRESHOLD="$(bashio::config 'eot_threshold')"
export WYOMING_FLUX_EOT_TIMEOUT_MS="$(bashio::config 'eot_timeout_ms')"
export WYOMING_FLUX_NO_SPEECH_TIMEOUT="$(bashio::config 'no_speech_timeout')"
export WYOMING_FLUX_MAX_COMMAND_SECONDS="$(bashio::config 'max_command_seconds')"
export WYOMING_FLUX_MAX_SESSIONS="$(bashio::config 'max_sessions')"
if bashio::config.has_value 'eager_eot_threshold'; then
    export WYOMING_FLUX_EAGER_EOT_THRESHOLD="$(bashio::config 'eager_eot_threshold')"
fi
if bashio::config.has_value 'flux_url'; then
    export WYOMING_FLUX_URL="$(bashio::config 'flux_url')"
fi
keyterms=""
while IFS= read -r term; do  # one list item per line
    [ -n "$term" ] && keyterms="${keyterms:+$keyterms,}$term"
done < <(bashio::config 'keyterms')
export WYOMING_FLUX_KEYTERMS="$keyterms"
if bashio::config.true 'debug'; then
    export WYOMING_FLUX_DEBUG=1
fi
if ! bashio::config.has_value 'api_key'; then
    bashio::exit.nok "Set your Deepgram API key in the add-on configuration."
fi

(
    until wyoming-flux check --uri tcp://127.0.0.1:10300 --timeout 2 >/dev/null 2>&1; do sleep 1; done
    bashio::discovery "wyoming" "$(bashio::var.json uri "tcp://$(hostname):10300")" >/dev/null \
        && bashio::log.info "Offered to Home Assistant (Settings -> Devices & services)" \
        || bashio::log.warning "Supervisor discovery failed; add the Wyoming integration by hand: $(hostname):10300"
) &

exec wyoming-flux
