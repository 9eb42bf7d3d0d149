"""A bucketed extract: every table split by a stable hash of its entity key, in memory or as Parquet files.

Every feature, spine row and label of an entity depends only on that entity's own rows (plus the BG/NBD fit, a
step over all entities: see ``features.btyd.feature_fit``), so an extract split by entity can be computed bucket by
bucket.

The hash (documented, reproducible in any language; never Python's salted ``hash()``): the first 8 bytes of
BLAKE2b (digest size 8, no key) of the id's UTF-8 bytes, read as an unsigned big-endian integer, modulo the bucket
count. Keys: ``account_id`` for accounts, subscriptions, orders, tickets; ``lead_id`` for leads; an activity goes with
its account, or with its lead when it has no account (the contract gives each activity exactly one of them).
Accounts and leads are distinct entities: bucket k holds the accounts and the leads that hash to k.

On disk (:func:`write_buckets`): ``<folder>/manifest.json`` and ``<folder>/bucket-<k>/<table>.parquet`` for every
table of the extract in every bucket (an empty bucket has empty files), rows in the extract's order, read back by
path (:func:`read_bucket`) in the canonical dtypes. The folder is written beside its final name and renamed, so a
reader never sees half a bucket set.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from crm.errors import BucketError
from crm.extract import conform
from data_contracts.schema import input_schemas

HASH_NAME = "blake2b-64-utf8-mod"
#: Table -> the entity key(s) it is bucketed by; activities: account_id, else lead_id.
BUCKET_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "accounts": ("account_id",),
    "subscriptions": ("account_id",),
    "orders": ("account_id",),
    "tickets": ("account_id",),
    "leads": ("lead_id",),
    "activities": ("account_id", "lead_id"),
})
MANIFEST = "manifest.json"


def _check_count(n_buckets: int) -> int:
    if isinstance(n_buckets, bool) or not isinstance(n_buckets, (int, np.integer)) or n_buckets < 1:
        raise BucketError(f"bucket count {n_buckets!r}; expected an integer >= 1 (config compute.buckets).")
    return int(n_buckets)


def _hash64(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "big")


def bucket_of(ids: pd.Series | Sequence[str] | np.ndarray, n_buckets: int) -> np.ndarray:
    """The bucket (0 .. n_buckets - 1) of every id; -1 for a missing id. Each distinct id is hashed once."""
    n = _check_count(n_buckets)
    codes, uniques = pd.factorize(pd.Series(ids, dtype="str"))
    per_id = np.fromiter((_hash64(str(v)) % n for v in uniques), dtype=np.int64, count=len(uniques))
    return np.where(codes >= 0, per_id[np.maximum(codes, 0)] if len(per_id) else -1, -1)


def row_buckets(table: str, frame: pd.DataFrame, n_buckets: int) -> np.ndarray:
    """The bucket of every row of ``table``; -1 for a row without its key (it cannot belong to any entity)."""
    if table not in BUCKET_KEYS:
        raise BucketError(f"table {table!r} has no bucket key; known tables are {sorted(BUCKET_KEYS)}.")
    keys = [k for k in BUCKET_KEYS[table] if k in frame.columns]
    if not keys:
        raise BucketError(f"table {table!r} lacks its bucket key {' or '.join(BUCKET_KEYS[table])}; "
                          "fix the extract (the contract requires it).")
    out = np.full(len(frame), -1, dtype=np.int64)
    for key in keys:  # the first key present wins (an activity's account, else its lead)
        todo = out < 0
        out[todo] = bucket_of(frame[key].to_numpy(dtype=object)[todo], n_buckets)
    return out


def split_tables(tables: Mapping[str, pd.DataFrame], n_buckets: int) -> list[dict[str, pd.DataFrame]]:
    """The extract as ``n_buckets`` extracts: every table in every bucket (possibly empty), rows in their original
    order with a fresh RangeIndex, columns and dtypes unchanged. Rows without a key are in no bucket."""
    n = _check_count(n_buckets)
    out: list[dict[str, pd.DataFrame]] = [{} for _ in range(n)]
    for name, frame in tables.items():
        b = row_buckets(name, frame, n)
        order = np.argsort(b, kind="stable")  # one pass: rows grouped by bucket, original order within each
        bounds = np.searchsorted(b[order], np.arange(n + 1))
        for k in range(n):
            out[k][name] = frame.iloc[order[bounds[k]:bounds[k + 1]]].reset_index(drop=True)
    return out


@dataclass(frozen=True)
class BucketManifest:
    """What a bucket folder holds: the hash, the bucket count, rows per table per bucket."""

    hash: str
    buckets: int
    tables: tuple[str, ...]
    rows: dict[str, tuple[int, ...]]

    def to_dict(self) -> dict:
        return {"hash": self.hash, "buckets": self.buckets, "tables": list(self.tables),
                "rows": {t: list(v) for t, v in self.rows.items()}}

    @classmethod
    def from_dict(cls, doc: Mapping) -> BucketManifest:
        return cls(hash=str(doc["hash"]), buckets=int(doc["buckets"]), tables=tuple(doc["tables"]),
                   rows={t: tuple(int(x) for x in v) for t, v in doc["rows"].items()})


def bucket_path(folder: str | os.PathLike, k: int, table: str) -> Path:
    return Path(folder) / f"bucket-{int(k):05d}" / f"{table}.parquet"


def write_buckets(tables: Mapping[str, pd.DataFrame], folder: str | os.PathLike, n_buckets: int) -> BucketManifest:
    """Write the extract split into ``n_buckets`` as ``folder`` (replaced if it exists); returns its manifest."""
    n = _check_count(n_buckets)
    final = Path(folder)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        parts = split_tables(tables, n)
        for k, part in enumerate(parts):
            (tmp / f"bucket-{k:05d}").mkdir()
            for name, frame in part.items():
                frame.to_parquet(bucket_path(tmp, k, name), index=False)
        manifest = BucketManifest(hash=HASH_NAME, buckets=n, tables=tuple(tables),
                                  rows={t: tuple(len(p[t]) for p in parts) for t in tables})
        (tmp / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=1))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def read_manifest(folder: str | os.PathLike) -> BucketManifest:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise BucketError(f"{folder} is not a bucket folder (no {MANIFEST}); write it with crm.buckets.write_buckets.")
    return BucketManifest.from_dict(json.loads(path.read_text()))


def read_bucket(folder: str | os.PathLike, k: int, manifest: BucketManifest | None = None) -> dict[str, pd.DataFrame]:
    """Bucket ``k`` of a bucket folder, by path, every table in the canonical dtypes of its contract."""
    manifest = read_manifest(folder) if manifest is None else manifest
    if not 0 <= int(k) < manifest.buckets:
        raise BucketError(f"bucket {k} does not exist in {folder}; it holds buckets 0..{manifest.buckets - 1}.")
    schemas = input_schemas()
    out = {}
    for name in manifest.tables:
        frame = pd.read_parquet(bucket_path(folder, k, name))
        if len(frame) != manifest.rows[name][int(k)]:
            raise BucketError(f"{bucket_path(folder, k, name)} holds {len(frame)} rows, the manifest says "
                              f"{manifest.rows[name][int(k)]}; write the buckets again.")
        out[name] = conform(frame, schemas[name], fill_missing=False)
    return out


__all__ = ["BUCKET_KEYS", "HASH_NAME", "BucketManifest", "bucket_of", "read_bucket", "read_manifest", "row_buckets",
           "split_tables", "write_buckets"]
