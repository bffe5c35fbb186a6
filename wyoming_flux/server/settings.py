"""What the Wyoming server is configured with, who may use it, and what it tells clients about itself."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from wyoming.info import AsrModel, AsrProgram, Attribution, Info

from .. import __version__
from ..deepgram.models import Api, Model
from ..turn.session import SessionConfig
from .protocol.limits import ConnectionLimits

ATTRIBUTION = Attribution(name="Deepgram", url="https://deepgram.com")
PROGRAM_NAME = "deepgram-flux"


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ServerSettings:
    """What every connection of one server shares."""

    session: SessionConfig
    models: tuple[Model, ...]
    max_sessions: int | None = None  # concurrent commands (Flux streams); None = no limit
    allow: tuple[IPNetwork, ...] = field(default=())  # client networks; empty = everyone
    warm_connections: int = 0  # Flux sockets kept open for the next commands
    warm_max_age: float = 8.0  # seconds before a waiting socket is replaced
    warm_window: float | None = None  # keep warm sockets only this long after a command; None: always
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    hass_url: str | None = None  # read entity and area names from this Home Assistant
    hass_token: str = field(default="", repr=False)
    fallback_uri: str | None = None  # a Wyoming STT server that answers when Flux cannot
    fallback_timeout: float = 10.0  # seconds the fallback may take (plus 3 s) after the audio ended
    metrics_port: int | None = None  # serve /metrics and /healthz here; None = off (0: any free port)
    metrics_host: str = "127.0.0.1"


def client_allowed(peer: object, allow: tuple[IPNetwork, ...]) -> bool:
    """True if no allow list is set, the client is on a Unix socket, or its address is in a listed network."""
    if not allow or not isinstance(peer, tuple) or not peer:
        return True
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in allow)


def build_info(settings: ServerSettings) -> Info:
    """The Describe answer. Built once at start-up: Describe must never touch the network."""
    return Info(
        asr=[
            AsrProgram(
                name=PROGRAM_NAME,
                attribution=ATTRIBUTION,
                installed=True,
                description=("Deepgram Flux streaming speech-to-text with model-detected end of turn"
                             + ("; Nova-3 for the other languages" if any(m.api == Api.NOVA for m in settings.models)
                                and any(m.api != Api.NOVA for m in settings.models) else "")),
                version=__version__,
                models=[
                    AsrModel(
                        name=model.name,
                        attribution=ATTRIBUTION,
                        installed=True,
                        description=model.description,
                        version=None,
                        languages=list(model.languages),
                    )
                    for model in settings.models
                ],
                supports_transcript_streaming=True,
                # Said explicitly: wyoming's default is True, which would make Home Assistant run its own VAD.
                requires_external_vad=not settings.session.end_on_flux_eot,
                prefers_auto_gain_enabled=True,
                prefers_noise_reduction_enabled=False,
            )
        ]
    )
