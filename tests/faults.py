"""The fault matrix: what Flux can do wrong, and what each entry point must answer, within what bound.

Shared by the Wyoming server tests and the Home Assistant entity tests; docs/reliability-and-security.md's table is this one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.fake_flux import FakeFlux, Script

BOUND_AFTER_AUDIO = 3.0  # seconds from the last audio to the answer


@dataclass(frozen=True)
class Fault:
    name: str
    arrange: Callable[[FakeFlux], None]
    outcome: str  # "error:<code>", "text" (the full text) or "best" (a non-empty prefix: the best heard)
    refused: bool = False  # the fake is stopped for this case: nothing listens on its port
    silence_after: float = 1.0  # seconds of silence after the speech, before the audio ends


def _set(**fields: object) -> Callable[[FakeFlux], None]:
    def arrange(fake: FakeFlux) -> None:
        for key, value in fields.items():
            setattr(fake.script, key, value)
    return arrange


FAULTS = [
    Fault("handshake 400", _set(handshake_status=400), "error:flux-bad-request"),
    Fault("handshake 401", _set(handshake_status=401), "error:flux-auth"),
    Fault("handshake 402 (no credit)", _set(handshake_status=402), "error:flux-no-credit"),
    Fault("handshake 403", _set(handshake_status=403), "error:flux-forbidden"),
    Fault("handshake 404", _set(handshake_status=404), "error:flux-not-found"),
    Fault("handshake 408", _set(handshake_status=408), "error:flux-request-timeout"),
    Fault("handshake 429", _set(handshake_status=429), "error:flux-rate-limited"),
    Fault("handshake 500", _set(handshake_status=500), "error:flux-unavailable"),
    Fault("connection refused", _set(), "error:flux-unavailable", refused=True),
    Fault("handshake never completes", _set(handshake_delay=60.0), "error:flux-timeout"),
    # mid-turn: 1.5 s, once words were reported on both APIs (Nova-3's interim results come about every second)
    Fault("socket closed mid-turn", _set(drop_after=1.5, drop_mode="close"), "best"),
    Fault("TCP reset mid-turn", _set(drop_after=1.5, drop_mode="reset"), "best"),
    Fault("fatal Error message mid-turn", _set(fatal_after=1.5), "best"),
    Fault("fatal Error before any word", _set(fatal_after=0.3), "error:flux-stream"),
    Fault("socket closed before any word", _set(drop_after=0.3), "error:flux-stream"),
    Fault("ForceEndTurn unknown to the deployment", _set(no_eot=True, force_end_supported=False), "best"),
    Fault("malformed JSON", _set(malformed_after=0.5), "text"),
    Fault("JSON nested too deeply", _set(malformed_after=0.5, malformed_text="[" * 1_000_000), "text"),
    Fault("unknown message types", _set(unknown_messages=True), "text"),
    Fault("Warning message", _set(warning_on_connect=True), "text"),
    Fault("silent from the start", _set(silent_after=0.0), "error:flux-timeout"),
    Fault("silent mid-turn (stuck turn)", _set(silent_after=1.3), "best"),
    Fault("EndOfTurn never arrives", _set(no_eot=True), "text", silence_after=10.0),
    Fault("ForceEndTurn answered by nothing", _set(no_eot=True, ignore_force_end=True), "best"),
    Fault("very slow server", _set(message_delay=0.15), "best"),
]


def check_outcome(fault: Fault, *, text: str | None, error_code: str | None, expected_text: str) -> None:
    """Assert the answer the fault table promises."""
    if fault.outcome.startswith("error:"):
        assert error_code == fault.outcome.removeprefix("error:"), (fault.name, error_code, text)
    elif fault.outcome == "text":
        assert (error_code, text) == (None, expected_text), fault.name
    else:
        assert error_code is None and text and expected_text.startswith(text), (fault.name, error_code, text)


async def heal(fake: FakeFlux, fault: Fault) -> None:
    """Undo the fault, so the next command meets a working Flux."""
    fake.script = Script()
    if fault.refused:
        await fake.start(port=fake.port)
