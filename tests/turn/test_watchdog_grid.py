"""The watchdog ticks of all commands fall on one shared grid, so they cost one event-loop wakeup together."""

from __future__ import annotations

import pytest

from wyoming_flux.turn.session import next_tick


@pytest.mark.parametrize("now", [0.0, 0.01, 0.049, 0.05, 0.051, 0.0999999, 0.1, 0.30000000000000004, 12345.678, 98765.4321])
def test_the_next_tick_is_on_the_grid_between_half_and_one_and_a_half_ticks_away(now: float) -> None:
    when = next_tick(now, 0.1)
    assert 0.05 - 1e-9 <= when - now <= 0.15 + 1e-9
    assert abs(when / 0.1 - round(when / 0.1)) < 1e-6


def test_commands_started_at_different_times_tick_together() -> None:
    starts = [100.0 + i * 0.007 for i in range(7)]  # 100.000 .. 100.042: all before the grid point 100.1
    assert len({round(next_tick(now, 0.1), 9) for now in starts}) == 1
    # and then every tick of each lands on the following grid point
    assert next_tick(next_tick(100.0, 0.1) + 0.002, 0.1) == pytest.approx(next_tick(100.0, 0.1) + 0.1)
