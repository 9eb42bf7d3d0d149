"""The nightly scoring schedule: a Prefect deployment of the scoring flow on a cron."""
from __future__ import annotations

from typing import Any

from pipelines.config import Settings
from pipelines.flows import score_flow


def _deployment(settings: Settings, params: dict[str, Any], cron: str):
    from prefect.schedules import Cron

    return score_flow.to_deployment(
        name=settings.schedule.deployment,
        schedule=Cron(cron, timezone=settings.schedule.timezone),
        parameters={k: v for k, v in params.items() if v is not None},
        description="crmscore nightly scoring: validate, score with the champions, write back atomically.",
        tags=["crmscore", "scoring"],
    )


def create_deployment(settings: Settings, params: dict[str, Any], cron: str):
    """Register (or update) the deployment; returns it as read back from the Prefect API."""
    from prefect import get_client

    dep = _deployment(settings, params, cron)
    dep.apply()
    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(f"crmscore-score/{settings.schedule.deployment}")


def serve_deployment(settings: Settings, params: dict[str, Any], cron: str) -> None:
    """Block and execute the scheduled runs (needs a Prefect server for the schedule to fire)."""
    from prefect import serve

    serve(_deployment(settings, params, cron))
