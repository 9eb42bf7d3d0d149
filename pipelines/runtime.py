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
