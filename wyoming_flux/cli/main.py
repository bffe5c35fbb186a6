"""The wyoming-flux command: parse and check the configuration, then serve Wyoming clients."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import re
import signal
import sys

from .. import __version__
from ..common.bounds import check_range, env_default, resolve_environment
from ..deepgram.endpoints import DEFAULT_URL
from ..deepgram.flux import validate_thresholds
from ..deepgram.models import DEEPGRAM_MODELS, MODEL_EN, MODEL_NOVA
from ..deepgram.nova import DEFAULT_ENDPOINTING_MS, DEFAULT_UTTERANCE_END_MS
from ..server.discovery import DEFAULT_NAME, Advertisement, advertised_host
from ..server.protocol.fallback_client import FallbackLoopError, check_fallback_uri
from ..server.monitoring.http_endpoint import MetricsListenError
from ..server.server import WyomingServer
from ..server.settings import ServerSettings
from ..server.uri import check_uri, tcp_address
from ..turn.session import SessionConfig
from . import server_flags
from .config import (
    ConfigError,
    Parser,
    env,
    env_list,
    flux_url,
    named,
    numeric,
    parse_switch,
    read_api_key,
    read_hass,
    set_by_environment,
    switch,
)

_LOGGER = logging.getLogger("wyoming_flux")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
KEY_ON_COMMAND_LINE = ("--api-key on the command line can be read by other users of this machine (ps, /proc); "
                       "use --api-key-file or the DEEPGRAM_API_KEY environment variable")


COMMANDS = """commands:
  serve (default)       run the server with the options above
  check                 is a Wyoming server answering? (Describe round trip; exit 1 if not)
  check --flux          does Flux accept the API key, model and endpoint? (one handshake, nothing billed)
  check --hass-url URL  can the server read names from this Home Assistant, and how many?
  transcribe WAV        stream a WAV file to a Wyoming server, print the text and the timings
each has its own --help, e.g. wyoming-flux check --help"""


def build_parser() -> argparse.ArgumentParser:
    """Every flag can also come from an environment variable (named in its help), for containers."""
    p = Parser(
        prog="wyoming-flux", description="Wyoming speech-to-text server backed by Deepgram Flux",
        usage="wyoming-flux [serve] [options] | wyoming-flux {check,transcribe} ... (see below)",
        epilog=COMMANDS, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--uri", default=env("WYOMING_FLUX_URI", "tcp://0.0.0.0:10300"),
                   help="where to listen: tcp://HOST:PORT or unix://PATH (default tcp://0.0.0.0:10300; "
                        "env WYOMING_FLUX_URI)")
    p.add_argument("--log-format", default=env("WYOMING_FLUX_LOG_FORMAT", LOG_FORMAT),
                   help="format for log lines, as Python's logging takes it (env WYOMING_FLUX_LOG_FORMAT)")
    p.add_argument("--api-key", default=env("DEEPGRAM_API_KEY"),
                   help="Deepgram API key (env DEEPGRAM_API_KEY; prefer --api-key-file)")
    p.add_argument("--api-key-file", default=env("DEEPGRAM_API_KEY_FILE"),
                   help="file holding the key, e.g. a Docker secret (env DEEPGRAM_API_KEY_FILE)")
    p.add_argument("--model", action="append", choices=sorted(DEEPGRAM_MODELS),
                   help=f"model to offer; repeat for several (default {MODEL_EN}; env WYOMING_FLUX_MODEL, "
                        f"comma-separated). {MODEL_NOVA} alone: Nova-3 for every language")
    p.add_argument("--no-nova", action="store_true",
                   default=env_default("WYOMING_FLUX_NOVA", lambda text: not parse_switch(text), False),
                   help=f"do not offer {MODEL_NOVA} for the languages the Flux models do not speak; commands in those "
                        "languages then get an Error (env WYOMING_FLUX_NOVA=0)")
    p.add_argument("--endpointing-ms",
                   **numeric("endpointing_ms", int, "WYOMING_FLUX_ENDPOINTING_MS", DEFAULT_ENDPOINTING_MS),
                   help=f"Nova-3: silence that ends a command, 10-5000 ms (default {DEFAULT_ENDPOINTING_MS}; "
                        "env WYOMING_FLUX_ENDPOINTING_MS)")
    p.add_argument("--utterance-end-ms",
                   **numeric("utterance_end_ms", int, "WYOMING_FLUX_UTTERANCE_END_MS", DEFAULT_UTTERANCE_END_MS),
                   help=f"Nova-3: gap after the last word that ends a command when the silence is never heard "
                        f"(noise), 1000-5000 ms (default {DEFAULT_UTTERANCE_END_MS}; env WYOMING_FLUX_UTTERANCE_END_MS)")
    p.add_argument("--flux-url", default=env("WYOMING_FLUX_URL", DEFAULT_URL),
                   help="Deepgram endpoint: global (default), a data-residency region (us, eu, au, in) or a "
                        "ws(s):// URL, e.g. self-hosted (env WYOMING_FLUX_URL)")
    p.add_argument("--eot-threshold", **numeric("eot_threshold", float, "WYOMING_FLUX_EOT_THRESHOLD"),
                   help="confidence Flux needs to end a turn, 0.5-1.0 (Flux default 0.7; env WYOMING_FLUX_EOT_THRESHOLD)")
    p.add_argument("--eager-eot-threshold", **numeric("eager_eot_threshold", float, "WYOMING_FLUX_EAGER_EOT_THRESHOLD"),
                   help="confidence of Flux's eager end-of-turn events, 0.3-0.9 (default 0.5 with early answers, "
                        "else off; env WYOMING_FLUX_EAGER_EOT_THRESHOLD)")
    p.add_argument("--eot-timeout-ms", **numeric("eot_timeout_ms", int, "WYOMING_FLUX_EOT_TIMEOUT_MS"),
                   help="silence after speech that always ends a turn, 500-60000 ms (Flux default 5000; env WYOMING_FLUX_EOT_TIMEOUT_MS)")
    p.add_argument("--keyterm", action="append", default=None,
                   help="a word or phrase Flux should expect; repeatable (env WYOMING_FLUX_KEYTERMS, comma-separated)")
    p.add_argument("--end-of-speech", choices=("flux", "client"), default=env("WYOMING_FLUX_END_OF_SPEECH", "flux"),
                   help="flux: Flux's EndOfTurn ends the command; client: the client's VAD does (env WYOMING_FLUX_END_OF_SPEECH)")
    p.add_argument("--no-speech-timeout", **numeric("no_speech_timeout", float, "WYOMING_FLUX_NO_SPEECH_TIMEOUT", 8.0),
                   help="seconds without any speech before answering with empty text (default 8; env WYOMING_FLUX_NO_SPEECH_TIMEOUT)")
    p.add_argument("--max-command-seconds", **numeric("max_command_seconds", float, "WYOMING_FLUX_MAX_COMMAND_SECONDS", 30.0),
                   help="longest command; then the turn is ended on what was heard (default 30; env WYOMING_FLUX_MAX_COMMAND_SECONDS)")
    p.add_argument("--max-sessions", **numeric("max_sessions", int, "WYOMING_FLUX_MAX_SESSIONS"),
                   help="most commands streaming to Flux at once; more get a server-busy Error (env WYOMING_FLUX_MAX_SESSIONS)")
    p.add_argument("--allow", action="append", default=None,
                   help="client network allowed to connect, e.g. 192.168.1.0/24; repeatable; default everyone "
                        "(env WYOMING_FLUX_ALLOW, comma-separated)")
    p.add_argument("--warm-connections", **numeric("warm_connections", int, "WYOMING_FLUX_WARM_CONNECTIONS", 0),
                   help="Flux connections kept open so a command skips the handshake (default 0: off; "
                        "env WYOMING_FLUX_WARM_CONNECTIONS)")
    p.add_argument("--warm-max-age", **numeric("warm_max_age", float, "WYOMING_FLUX_WARM_MAX_AGE", 8.0),
                   help="seconds before a waiting connection is replaced (default 8; env WYOMING_FLUX_WARM_MAX_AGE)")
    p.add_argument("--warm-window", **numeric("warm_window", float, "WYOMING_FLUX_WARM_WINDOW", 120.0),
                   help="keep warm connections only this many seconds after a command; 0 = always "
                        "(default 120; env WYOMING_FLUX_WARM_WINDOW)")
    p.add_argument("--mip-opt-out", **switch("WYOMING_FLUX_MIP_OPT_OUT"),
                   help="opt out of Deepgram's Model Improvement Program (env WYOMING_FLUX_MIP_OPT_OUT=1)")
    p.add_argument("--tag", action="append", default=None,
                   help="a label for Deepgram's usage reports, up to 128 characters; repeatable "
                        "(env WYOMING_FLUX_TAGS, comma-separated)")
    p.add_argument("--zeroconf", nargs="?", const=DEFAULT_NAME, default=env("WYOMING_FLUX_ZEROCONF"), metavar="NAME",
                   help=f"advertise the server to Home Assistant via zeroconf, as NAME (default {DEFAULT_NAME}; "
                        "env WYOMING_FLUX_ZEROCONF)")
    p.add_argument("--zeroconf-host", default=env("WYOMING_FLUX_ZEROCONF_HOST"),
                   help="address to advertise, e.g. the host's LAN address from a Docker bridge network "
                        "(env WYOMING_FLUX_ZEROCONF_HOST)")
    p.add_argument("--hass-url", default=env("WYOMING_FLUX_HASS_URL"),
                   help="read entity and area names exposed to Assist from this Home Assistant, e.g. "
                        "http://homeassistant.local:8123, and send them as keyterms (env WYOMING_FLUX_HASS_URL)")
    p.add_argument("--hass-token-file", default=env("WYOMING_FLUX_HASS_TOKEN_FILE"),
                   help="file holding a Home Assistant long-lived access token (env WYOMING_FLUX_HASS_TOKEN_FILE, "
                        "or the token itself in HASS_TOKEN)")
    p.add_argument("--no-early-answer", action="store_true",
                   default=env_default("WYOMING_FLUX_EARLY_ANSWER", lambda text: not parse_switch(text), False),
                   help="with --hass-url, do not ask Home Assistant whether a command's words are complete to answer "
                        "it at the first sign of its end; every command waits for Deepgram's usual end "
                        "(env WYOMING_FLUX_EARLY_ANSWER=0)")
    p.add_argument("--debug", **switch("WYOMING_FLUX_DEBUG"),
                   help="log at DEBUG level (env WYOMING_FLUX_DEBUG=1)")
    p.add_argument("--fallback-uri", default=env("WYOMING_FLUX_FALLBACK_URI"), metavar="tcp://HOST:PORT",
                   help="a Wyoming speech-to-text server (e.g. a local wyoming-faster-whisper) that answers when Flux "
                        "cannot (env WYOMING_FLUX_FALLBACK_URI)")
    p.add_argument("--fallback-timeout", **numeric("fallback_timeout", float, "WYOMING_FLUX_FALLBACK_TIMEOUT", 10.0),
                   help="seconds the fallback may take after the audio ended, plus 3 (default 10; "
                        "env WYOMING_FLUX_FALLBACK_TIMEOUT)")
    server_flags.add_metrics_arguments(p)
    server_flags.add_limit_arguments(p)
    p.add_argument("--version", action="version", version=f"wyoming-flux {__version__}")
    return p


def check_log_format(fmt: str) -> None:
    """ConfigError for a format logging refuses or fails on (it would fail on every line, as a traceback)."""
    try:
        logging.Formatter(fmt).format(logging.LogRecord("wyoming_flux", logging.INFO, __file__, 1, "%s", ("x",), None))
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"--log-format {fmt!r} is not a logging format ({type(err).__name__}: {err})") from None


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """Check everything up front; raise ConfigError with one readable line."""
    check_log_format(args.log_format)
    try:
        resolve_environment(args)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    try:
        validate_thresholds(args.eot_threshold, args.eager_eot_threshold, args.eot_timeout_ms)
    except ValueError as err:  # it names the options as the integration does: name the flags
        raise ConfigError(re.sub(r"\b(eager_eot_threshold|eot_threshold|eot_timeout_ms)\b",
                                 lambda option: f"--{option[1].replace('_', '-')}", str(err))) from None
    for name in ("no_speech_timeout", "max_command_seconds"):
        try:
            check_range(name, getattr(args, name))
        except ValueError as err:
            raise ConfigError(f"--{str(err).replace('_', '-')}") from None
    try:
        check_uri(args.uri)
    except ValueError as err:
        raise ConfigError(f"--uri {err}") from None
    try:
        limits = server_flags.limits_from_args(args)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if args.zeroconf and not args.uri.startswith("tcp://"):
        raise ConfigError("--zeroconf needs a tcp:// --uri")
    url = flux_url(args.flux_url)
    names = args.model or env_list("WYOMING_FLUX_MODEL") or [MODEL_EN]
    unknown = [name for name in names if name not in DEEPGRAM_MODELS]
    if unknown:
        raise ConfigError(f"unknown model {unknown[0]} (choose from {', '.join(sorted(DEEPGRAM_MODELS))})")
    if args.no_nova and MODEL_NOVA in names:
        raise ConfigError(f"--no-nova turns off the {MODEL_NOVA} that --model asks for")
    if not args.no_nova:
        names = [*names, MODEL_NOVA]  # after the Flux models: only the languages they do not speak
    keyterms = args.keyterm if args.keyterm is not None else (env_list("WYOMING_FLUX_KEYTERMS") or [])
    tags = args.tag if args.tag is not None else (env_list("WYOMING_FLUX_TAGS") or [])
    if any(len(tag) > 128 for tag in tags):
        raise ConfigError("--tag must be at most 128 characters")
    try:
        allow = tuple(ipaddress.ip_network(net, strict=False)
                      for net in (args.allow if args.allow is not None else env_list("WYOMING_FLUX_ALLOW") or []))
    except ValueError as err:
        raise ConfigError(f"--allow: {err}") from None
    hass_url, hass_token = read_hass(args)
    if args.fallback_uri:
        try:
            check_fallback_uri(args.fallback_uri, args.uri)
        except ValueError as err:
            raise ConfigError(str(err) if str(err).startswith("--") else f"--fallback-uri {err}") from None
    session = SessionConfig.from_values(url, read_api_key(args), {
        **vars(args), "keyterms": keyterms, "tags": tags, "end_on_flux_eot": args.end_of_speech == "flux",
        "early_answer": not args.no_early_answer})
    try:
        metrics_host, metrics_port = server_flags.metrics_from_args(args)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return ServerSettings(
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        session=session,
        models=tuple(DEEPGRAM_MODELS[name] for name in dict.fromkeys(names)),
        max_sessions=args.max_sessions,
        allow=allow,
        warm_connections=args.warm_connections,
        warm_max_age=args.warm_max_age,
        warm_window=args.warm_window or None,
        limits=limits,
        hass_url=hass_url,
        hass_token=hass_token,
        fallback_uri=args.fallback_uri or None,
        fallback_timeout=args.fallback_timeout,
    )


def exposure_warning(uri: str, allow: tuple[object, ...]) -> str | None:
    """Wyoming has no authentication: say so when anyone on the network can spend the key's credit."""
    if not uri.startswith("tcp://") or allow:
        return None
    host, _ = tcp_address(uri)
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        if host == "localhost":
            return None
    return (f"Listening on {uri}: Wyoming has no authentication, so anyone who can reach this port can use your "
            "Deepgram credit. Limit clients with --allow (e.g. --allow 192.168.1.0/24) or a firewall.")


async def serve(settings: ServerSettings, uri: str, zeroconf: str | None = None, zeroconf_host: str | None = None) -> None:
    """Listen, then advertise; on SIGTERM or SIGINT withdraw the advertisement, then stop."""
    if (warning := exposure_warning(uri, settings.allow)) is not None:
        _LOGGER.warning(warning)
    server = WyomingServer(settings, uri)
    await server.start()
    _LOGGER.info("Serving %s on %s (end of speech: %s)", ", ".join(m.name for m in settings.models), uri,
                 "Flux EndOfTurn" if settings.session.end_on_flux_eot else "client")
    if server.completion is not None:
        _LOGGER.info("Early answers: a command Home Assistant recognises as complete is answered at the first sign "
                     "of its end (--no-early-answer turns this off)")
    if settings.fallback_uri:
        _LOGGER.info("When Flux cannot answer, commands go to the fallback at %s", settings.fallback_uri)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    advertisement = None
    try:
        if zeroconf:
            host, port = tcp_address(uri)
            advertisement = Advertisement(zeroconf, port, advertised_host(host, zeroconf_host))
            await advertisement.start()
        await stop.wait()
        _LOGGER.info("Stopping")
    finally:
        if advertisement is not None:
            await advertisement.stop()
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    modes = [mode for mode in ("--flux", "--hass-url") if any(arg.split("=")[0] == mode for arg in argv[1:])]
    if argv[:1] == ["check"] and len(modes) == 2:
        print("wyoming-flux check: error: --flux and --hass-url are two modes: check one at a time", file=sys.stderr)
        return 2
    if argv[:1] == ["check"] and "--hass-url" in modes:
        from .namecheck import main as namecheck_main

        return namecheck_main(argv[1:])
    if argv[:1] == ["check"] and "--flux" in argv:
        from .keycheck import main as keycheck_main

        return keycheck_main(argv[1:])
    if argv and argv[0] in ("check", "transcribe"):
        from .client import main as client_main

        return client_main(argv[0], argv[1:])
    if argv and argv[0] == "serve":
        argv = argv[1:]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a bad flag argparse has already explained
        return int(stop.code or 0)
    variables = set_by_environment(parser, args)
    try:
        settings = settings_from_args(args)
    except ConfigError as err:
        print(f"wyoming-flux: error: {named(str(err), variables)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format=args.log_format)
    if any(arg == "--api-key" or arg.startswith("--api-key=") for arg in argv):
        _LOGGER.warning(KEY_ON_COMMAND_LINE)
    try:
        asyncio.run(serve(settings, args.uri, args.zeroconf, args.zeroconf_host))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers are in place
        return 130
    except MetricsListenError as err:
        print(f"wyoming-flux: error: {err}", file=sys.stderr)
        return 1
    except FallbackLoopError as err:
        print(f"wyoming-flux: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"wyoming-flux: error: cannot listen on {args.uri}: {err.strerror or err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
