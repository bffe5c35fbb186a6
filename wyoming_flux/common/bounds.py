"""The ranges of the tuning options: one table for the server's flags, the integration's options flow and
(checked by a test, as YAML cannot import it) the add-on's schema; and the one reader of numbers from flags and
environment variables, whose refusal names the range."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

RANGES: dict[str, tuple[float, float]] = {
    "eot_threshold": (0.5, 1.0),  # Flux's documented ranges
    "eager_eot_threshold": (0.3, 0.9),
    "eot_timeout_ms": (500, 60000),
    "endpointing_ms": (10, 5000),  # Nova-3: silence that ends a command (Deepgram's default 10 ms is too eager)
    "utterance_end_ms": (1000, 5000),  # Nova-3: word-timing gap backup; below 1000 is below interim cadence
    "no_speech_timeout": (1, 60),  # seconds; ours
    "max_command_seconds": (5, 300),
}
# The server's own options (not in the integration or the add-on); None: no upper bound.
SERVER_RANGES: dict[str, tuple[float, float | None]] = {
    "max_sessions": (1, 100_000),
    "warm_connections": (0, 10),
    "warm_max_age": (2, 300),  # seconds
    "warm_window": (0, 86400),
    "fallback_timeout": (1, 120),
    "metrics_port": (1, 65535),
}


def check_range(name: str, value: float) -> None:
    """Raise ValueError with one readable line if `value` is outside the range of option `name`."""
    low, high = RANGES[name]
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value:g}")


def _span(low: float, high: float | None) -> str:
    return f"at least {low}" if high is None else f"between {low} and {high}"


def parse_number(text: str, kind: type[int] | type[float], low: float, high: float | None = None) -> float:
    """`text` as a number of `kind` in [low, high]; ValueError "must be …, not …" naming the range (the caller
    names the flag or variable)."""
    noun = "a whole number" if kind is int else "a number"
    try:
        value = kind(text.strip())
    except (TypeError, ValueError):
        raise ValueError(f"must be {noun} {_span(low, high)}, not {text}") from None
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number {_span(low, high)}, not {text}")
    if not (low <= value and (high is None or value <= high)):
        raise ValueError(f"must be {_span(low, high)}, not {text}")
    return value


class Number:
    """An argparse type for a numeric flag: argparse names the flag, the error names the range."""

    def __init__(self, kind: type[int] | type[float], low: float, high: float | None = None) -> None:
        self.kind, self.low, self.high = kind, low, high
        self.__name__ = kind.__name__  # argparse's own messages use it

    @classmethod
    def option(cls, name: str, kind: type[int] | type[float]) -> Number:
        """The flag of a ranged option, by its name in RANGES or SERVER_RANGES."""
        low, high = RANGES[name] if name in RANGES else SERVER_RANGES[name]
        return cls(kind, low, high)

    def __call__(self, text: str) -> float:
        try:
            return parse_number(text, self.kind, self.low, self.high)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None


@dataclass(frozen=True)
class FromEnvironment:
    """A flag's default read from an environment variable, checked after parsing so that a bad value is one line
    naming the variable (and --help works whatever the environment holds)."""

    variable: str
    text: str
    parse: Callable[[str], object]

    def value(self) -> object:
        try:
            return self.parse(self.text)
        except (argparse.ArgumentTypeError, ValueError) as err:
            raise ValueError(f"{self.variable} {err}") from None


def env_default(variable: str, parse: Callable[[str], object], default: object = None) -> object:
    """The default of a flag whose environment variable may set it."""
    text = os.environ.get(variable)
    return default if not text else FromEnvironment(variable, text, parse)


def resolve_environment(args: argparse.Namespace) -> None:
    """Replace every default taken from the environment by its value; ValueError naming the variable."""
    for name, value in vars(args).items():
        if isinstance(value, FromEnvironment):
            setattr(args, name, value.value())
