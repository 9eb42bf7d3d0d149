"""pipelines.timing.phase: one line per phase on the given logger, that parse_phase_line reads back."""
from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from pipelines.timing import parse_phase_line, phase

log = logging.getLogger("crmscore.flows")


def _costs(caplog):
    return [c for c in (parse_phase_line(r.getMessage()) for r in caplog.records) if c is not None]


def test_a_phase_logs_its_wall_time_and_its_own_peak(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="crmscore.flows"):
        with phase("build", log, interval_s=0.005):
            block = np.ones(40_000_000)  # 320 MB resident while the phase runs, freed before it ends
            time.sleep(0.05)
            del block
    (cost,) = _costs(caplog)
    assert cost.name == "build"
    assert cost.wall_s >= 0.05
    assert cost.peak_mib - cost.start_mib > 250  # the sampled peak saw the block that was gone at the end


def test_a_failed_phase_still_logs_its_cost(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="crmscore.flows"):
        with pytest.raises(ValueError, match="boom"):
            with phase("score churn with reasons", log):
                raise ValueError("boom")
    (cost,) = _costs(caplog)
    assert cost.name == "score churn with reasons"


def test_lines_that_are_not_phases_parse_to_none() -> None:
    assert parse_phase_line("- Reading the extract at sqlite:///crm.db") is None
    cost = parse_phase_line("- phase read: 12.50 s wall, 180% CPU, peak RSS 2,241 MiB (at start 334 MiB)")
    assert (cost.name, cost.wall_s, cost.cpu_pct, cost.peak_mib, cost.start_mib) == ("read", 12.5, 180, 2241, 334)
