"""The benchmark's tiled world (benchmarks/tile.py): K copies of a valid SQLite CRM are one valid CRM, K times larger."""
from __future__ import annotations

import pytest

from benchmarks.tile import tile_sqlite
from crm.extract import read_tables, write_extract
from data_contracts.fingerprint import compute_fingerprint
from data_contracts.testing import BUILD_NOW, build_valid_extract
from data_contracts.validate import validate_extract


def test_tiles_are_a_valid_crm_with_every_key_remapped(tmp_path) -> None:
    base = tmp_path / "base.db"
    tables = build_valid_extract(seed=3, n_accounts=60, n_leads=40, n_orders=200, n_activities=500, n_tickets=50)
    tables["accounts"]["email"] = "someone@example.com"  # extra (PII) columns are copied, never read
    write_extract(f"sqlite:///{base}", tables)
    counts = tile_sqlite(base, tmp_path / "tiled.db", 3)
    tiled = read_tables(f"sqlite:///{tmp_path / 'tiled.db'}", strict=False)
    original = read_tables(f"sqlite:///{base}", strict=False)
    for name, frame in original.items():
        assert counts[name] == len(tiled[name]) == 3 * len(frame)
    # every id is distinct across tiles, and every reference points inside its own tile
    assert tiled["accounts"]["account_id"].is_unique and tiled["activities"]["activity_id"].is_unique
    tile2 = tiled["orders"].loc[tiled["orders"]["order_id"].str.endswith("~2")]
    assert len(tile2) == len(original["orders"]) and tile2["account_id"].str.endswith("~2").all()
    report = validate_extract(tiled, now=BUILD_NOW)
    assert report.ok and report.failed_rules == frozenset()
    # tile 0 is the base world unchanged
    first = {t: f.loc[~f[f.columns[0]].str.contains("~", regex=False)].reset_index(drop=True)
             for t, f in tiled.items()}
    assert compute_fingerprint(first).hash == compute_fingerprint(original).hash


def test_an_existing_target_is_refused(tmp_path) -> None:
    base = tmp_path / "base.db"
    write_extract(f"sqlite:///{base}", build_valid_extract(seed=3, n_accounts=10, n_leads=10))
    (tmp_path / "tiled.db").write_bytes(b"")
    with pytest.raises(FileExistsError, match="tiled.db exists"):
        tile_sqlite(base, tmp_path / "tiled.db", 2)
