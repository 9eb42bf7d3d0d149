"""Process environment for the CLI and flows, set once at the edge (never at import time)."""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

#: No calls out: MLflow telemetry, Prefect server analytics, GX analytics (see docs/stack.md).
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
    # the CLI reports failures itself in one line; Prefect would print each failed task's traceback
    "PREFECT_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_UI_ENABLED": "false",
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    # the temporary local Prefect API can take longer than the default 20 s to start on a loaded 2-core machine
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def configure_environment(workdir: Path, *, prefect_home: bool = True) -> None:
    """Switch off telemetry, quieten library chatter and (with ``prefect_home``, for commands that run flows) give
    Prefect a home under the working folder; commands that only read create nothing."""
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    if prefect_home:
        home = (workdir / "prefect").resolve()
        home.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("PREFECT_HOME", str(home))
    for name in ("mlflow", "alembic", "great_expectations", "prefect", "httpx", "urllib3", "lightgbm"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="mlflow")


def quiet_great_expectations() -> None:
    """GX sets one of its loggers to INFO when that module is imported; put it back to WARNING afterwards."""
    import great_expectations.data_context.types.base  # noqa: F401  (the import is what sets the level)

    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)


def code_version() -> str:
    """The crmscore version that runs, with the git commit of its source tree when it runs from a checkout
    (``0.1.0+git.1a2b3c4d5e6f``, ``.dirty`` when files differ from that commit): recorded with every model version."""
    import subprocess
    from importlib import metadata

    try:
        version = metadata.version("crmscore")
    except metadata.PackageNotFoundError:
        version = "unknown"
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+git.{commit}{'.dirty' if dirty else ''}" if commit else version
