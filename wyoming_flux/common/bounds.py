"""The ranges of the tuning options: one table for the server's flags, the integration's options flow and
(checked by a test, as YAML cannot import it) the add-on's schema."""

from __future__ import annotations

RANGES: dict[str, tuple[float, float]] = {
    "eot_threshold": (0.5, 1.0),  # Flux's documented ranges
    "eager_eot_threshold": (0.3, 0.9),
    "eot_timeout_ms": (500, 60000),
    "no_speech_timeout": (1, 60),  # seconds; ours
    "max_command_seconds": (5, 300),
}


def check_range(name: str, value: float) -> None:
    """Raise ValueError with one readable line if `value` is outside the range of option `name`."""
    low, high = RANGES[name]
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value:g}")
