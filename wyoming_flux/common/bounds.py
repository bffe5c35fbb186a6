"""The ranges of the tuning options: one table for the server's flags, the integration's options flow and
(checked by a test, as YAML cannot import it) the add-on's schema."""

from __future__ import annotations

RANGES: dict[str, tuple[float, float]] = {
    "eot_threshold": (0.5, 1.0),  # Flux's documented ranges
    "eager_eot_threshold": (0.3, 0.9),
    "eot_timeout_ms": (500, 60000),
    "endpointing_ms": (10, 5000),  # Nova-3: silence that ends a command (Deepgram's default 10 ms is too eager)
    "utterance_end_ms": (1000, 5000),  # Nova-3: word-timing gap backup; below 1000 is below interim cadence
    "no_speech_timeout": (1, 60),  # seconds; ours
    "max_command_seconds": (5, 300),
}


def check_range(name: str, value: float) -> None:
    """Raise ValueError with one readable line if `value` is outside the range of option `name`."""
    low, high = RANGES[name]
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value:g}")
