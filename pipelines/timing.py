"""What each phase of a flow costs: wall time, CPU share and peak memory, as one INFO line per phase.

The flows wrap each phase (read, validate, privacy view, features, each model's scoring and reasons, write-back) in
:func:`phase`; the line goes to the ``crmscore.flows`` logger, so the CLI shows it and ``benchmarks/bench_nightly.py``
reads it from the real ``crmscore score`` output instead of re-implementing the flow. The peak is sampled by a
thread that lives only while the phase runs (resident set size every ``interval_s``), so it is the phase's own peak,
not the process's high-water mark so far.
"""
from __future__ import annotations

import contextlib
import logging
import re
import resource
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psutil

#: The line :func:`phase` logs; :func:`parse_phase_line` reads it back (the benchmark does).
_LINE = "phase {name}: {wall_s:.2f} s wall, {cpu_pct:.0f}% CPU, peak RSS {peak_mib:,.0f} MiB (at start {start_mib:,.0f} MiB)"
_PATTERN = re.compile(r"phase (?P<name>.+?): (?P<wall_s>[\d.]+) s wall, (?P<cpu_pct>\d+)% CPU, "
                      r"peak RSS (?P<peak_mib>[\d,]+) MiB \(at start (?P<start_mib>[\d,]+) MiB\)")
_MIB = 1024 * 1024


@dataclass(frozen=True)
class PhaseCost:
    name: str
    wall_s: float
    cpu_pct: float  # CPU seconds over wall seconds: 200% is both cores of a 2-core machine
    peak_mib: float
    start_mib: float


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def phase(name: str, logger: logging.Logger, *, interval_s: float = 0.02) -> Iterator[None]:
    """Measure the enclosed block and log one ``phase <name>: ...`` INFO line on ``logger`` when it ends.

    The line is logged also when the block raises (the cost of a phase that failed is still its cost).
    """
    proc = psutil.Process()
    start_rss = proc.memory_info().rss
    peak = [start_rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval_s):
            peak[0] = max(peak[0], proc.memory_info().rss)

    sampler = threading.Thread(target=sample, name=f"rss-{name}", daemon=True)
    t0, c0 = time.perf_counter(), _cpu_s()
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join()
        peak[0] = max(peak[0], proc.memory_info().rss)
        wall = time.perf_counter() - t0
        cost = PhaseCost(name, wall, 100 * (_cpu_s() - c0) / wall if wall > 0 else 0.0, peak[0] / _MIB,
                         start_rss / _MIB)
        logger.info(_LINE.format(**vars(cost)))


def parse_phase_line(line: str) -> PhaseCost | None:
    """The cost in a line that :func:`phase` logged (anywhere in ``line``), or None."""
    m = _PATTERN.search(line)
    if m is None:
        return None
    return PhaseCost(m["name"], float(m["wall_s"]), float(m["cpu_pct"]), float(m["peak_mib"].replace(",", "")),
                     float(m["start_mib"].replace(",", "")))
