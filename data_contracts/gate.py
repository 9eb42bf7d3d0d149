"""The quality gate as one call for the CLI and the flows: history in, validation, Data Docs and history out."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from data_contracts.history import SUBFOLDER, load_last_fingerprint, save_run
from data_contracts.validate import ValidationReport, validate_extract


def run_quality_gate(tables: Mapping[str, pd.DataFrame], workdir: Path, *, now: pd.Timestamp,
                     as_of: pd.Timestamp | None = None, max_volume_drop: float = 0.5,
                     data_docs: bool = True) -> tuple[ValidationReport, Path]:
    """Validate a raw extract against the contracts, comparing volumes with the last passing run in `workdir`.

    Parameters
    ----------
    tables
        Raw contract frames (canonical dtypes, deleted rows still present), keyed by table name.
    workdir
        The working folder (default `./.crmscore/`): history is read from and written to `workdir/validation/`,
        Data Docs go to `workdir/validation/data_docs/<now>/index.html`.
    now, as_of, max_volume_drop
        As in `validate_extract`.
    data_docs
        Build GX Data Docs (HTML) for this run.

    Returns
    -------
    (ValidationReport, Path)
        The report (check `.ok`, or call `.raise_for_errors()`), and the JSON file it was saved to (every run is
        saved, passing or not; only passing runs become the volume baseline).
    """
    workdir = Path(workdir)
    previous = load_last_fingerprint(workdir)
    docs_dir = None
    if data_docs:
        stamp = pd.Timestamp(now).tz_localize("UTC") if pd.Timestamp(now).tzinfo is None else pd.Timestamp(now)
        docs_dir = workdir / SUBFOLDER / "data_docs" / stamp.tz_convert("UTC").strftime("%Y%m%dT%H%M%S%fZ")
    report = validate_extract(tables, now=now, as_of=as_of, previous=previous, max_volume_drop=max_volume_drop,
                              data_docs_dir=docs_dir)
    return report, save_run(report, workdir)
