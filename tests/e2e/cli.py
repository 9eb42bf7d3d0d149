"""Running the ``crmscore`` CLI as a user would (a real subprocess), and the small, fast config the e2e worlds use."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

AS_OF = "2026-10-01"
CLI = str(Path(sys.executable).with_name("crmscore"))


def cli_env() -> dict[str, str]:
    """The environment a user's shell would give: no CRMSCORE_ overrides, one Prefect home for the whole session
    (a fresh one costs ~15 s of start-up per command)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMSCORE_")}
    env["PREFECT_HOME"] = str(Path(tempfile.gettempdir()) / f"crmscore-test-prefect-{os.getppid()}-{os.getpid()}")
    return env


def run(args: list[str], cwd: Path, *, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([CLI, *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"crmscore {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def fast_config(folder: Path, **extra: str) -> Path:
    """Small but honest: fewer cutoffs and one search point, so a module trains in about a minute."""
    cfg = folder / "fast.yaml"
    cfg.write_text(
        f"workdir: {folder / 'wd'}\n"
        "training: {cutoff_count: 5, lead_cutoff_count: 5, cutoff_step_days: 45}\n"
        "model:\n  max_trees: 120\n  search: [{num_leaves: 15, min_child_samples: 30, learning_rate: 0.1, "
        "feature_fraction: 0.9}]\n"
        + "".join(f"{k}: {v}\n" for k, v in extra.items()))
    return cfg
