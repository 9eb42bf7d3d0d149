"""A small history store of validation runs: one JSON file per run under `<folder>/validation/`.

File names are `<extraction time, UTC, %Y%m%dT%H%M%S%fZ>_<first 12 hex of the extract hash>.json`, so they sort by
extraction time. The last *passing* run is the baseline of the volume rules (a failed extract must not become the
reference the next one is compared with). Auditors link models and scoring runs to the `fingerprint.hash` inside.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from data_contracts.errors import ContractError
from data_contracts.fingerprint import Fingerprint
from data_contracts.validate import ValidationReport

SUBFOLDER = "validation"


def save_run(report: ValidationReport, folder: Path) -> Path:
    """Write the report as JSON to `<folder>/validation/<now>_<hash>.json` (atomically) and return the path."""
    target = Path(folder) / SUBFOLDER
    target.mkdir(parents=True, exist_ok=True)
    stamp = report.now.tz_convert("UTC").strftime("%Y%m%dT%H%M%S%fZ")
    path = target / f"{stamp}_{report.fingerprint.short}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(report.to_json())
    os.replace(tmp, path)  # readers never see a half-written run
    return path


def load_last_fingerprint(folder: Path) -> Fingerprint | None:
    """The fingerprint of the latest passing run saved under `<folder>/validation/`, or None if there is none.

    Raises
    ------
    ContractError
        If the latest passing candidate file cannot be read as a saved run.
    """
    target = Path(folder) / SUBFOLDER
    if not target.is_dir():
        return None
    for path in sorted(target.glob("*.json"), reverse=True):
        try:
            data = json.loads(path.read_text())
            if not data.get("ok"):
                continue
            return Fingerprint.from_dict(data["fingerprint"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ContractError(f"validation history file {path} is not a saved validation run ({exc!r}); "
                                "move it out of the folder or delete it") from exc
    return None
