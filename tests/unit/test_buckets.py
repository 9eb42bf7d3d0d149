"""Bucketing an extract by entity (crm/buckets.py) and computing per bucket (pipelines/scaleout.py, in process).

The property: spines, labels and features computed bucket by bucket (with the global steps: history start, BG/NBD
fits) and gathered equal the whole-frame ones exactly, for random extracts and bucket counts.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from crm.buckets import (
    BUCKET_KEYS,
    HASH_NAME,
    bucket_of,
    read_bucket,
    read_manifest,
    row_buckets,
    split_tables,
    write_buckets,
)
from crm.errors import BucketError
from crm.extract import conform
from crm.privacy import exclude_deleted, profiling_view
from crm.synthetic import generate_world
from data_contracts.schema import input_schemas
from features.labels import make_labels
from features.spine import build_spine, history_start
from models.dataset import build_scoring_features, build_training_data
from models.errors import TrainingDataError
from models.tasks import TASKS, horizon_days
from pipelines import model_config
from pipelines.errors import BucketFailedError
from pipelines.scaleout import Buckets, InProcess, history_start_of, scoring_features_of, training_data
from tests import defaults
from tests.unit.test_features_leakage import T1, T2, to_tables, worlds

AS_OF = pd.Timestamp("2026-10-01", tz="UTC")
# Few examples of a costly property (each builds every task's training set twice); no shrinking (a failure prints its
# example, and shrinking a multi-second example takes minutes).
SETTINGS = settings(max_examples=3, derandomize=True, database=None, deadline=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def blake_bucket(value: str, n: int) -> int:
    """The documented hash, written out independently of crm.buckets."""
    return int(hashlib.blake2b(value.encode("utf-8"), digest_size=8).hexdigest(), 16) % n


@pytest.fixture(scope="module")
def world_tables() -> dict[str, pd.DataFrame]:
    """What the flows see: contract columns in canonical dtypes (no PII), erased and objecting records removed."""
    world = generate_world(300, 250, 13, AS_OF)
    schemas = input_schemas()
    return profiling_view(exclude_deleted({t: conform(f, schemas[t]) for t, f in world.tables.items()}))


def subsample(tables: dict[str, pd.DataFrame], seed: int, share: float) -> dict[str, pd.DataFrame]:
    """A random smaller extract: a share of the accounts and leads, with all their rows (a consistent extract)."""
    rng = np.random.default_rng(seed)
    acc = set(tables["accounts"]["account_id"][rng.random(len(tables["accounts"])) < share])
    lead = set(tables["leads"]["lead_id"][rng.random(len(tables["leads"])) < share])
    out = {}
    for name, frame in tables.items():
        keep = np.zeros(len(frame), dtype=bool)
        if "account_id" in frame.columns and name != "leads":
            keep |= frame["account_id"].isin(acc).to_numpy()
        if "lead_id" in frame.columns:
            keep |= frame["lead_id"].isin(lead).to_numpy()
        out[name] = frame.loc[keep].reset_index(drop=True)
    return out


def in_process(tables: dict[str, pd.DataFrame], n: int) -> Buckets:
    return Buckets(executor=InProcess(threads=1), parts=tuple(split_tables(tables, n)))


# -- the hash and the split ---------------------------------------------------------------------------------------


def test_bucket_of_is_the_documented_hash_and_stable():
    ids = ["a1", "acc-000042", "lead_é", "a1", "x" * 40]
    for n in (1, 2, 7, 64):
        assert bucket_of(ids, n).tolist() == [blake_bucket(v, n) for v in ids]
    # Pinned: a change of hash would move every entity to another bucket (and another file).
    assert bucket_of(["a1", "l1", "acc-000042"], 1000).tolist() == [blake_bucket("a1", 1000), blake_bucket("l1", 1000),
                                                                     blake_bucket("acc-000042", 1000)]
    assert HASH_NAME == "blake2b-64-utf8-mod"
    assert bucket_of(pd.Series(["a1", None], dtype="str"), 4).tolist() == [blake_bucket("a1", 4), -1]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bucket_count_must_be_a_positive_integer(bad):
    with pytest.raises(BucketError, match=r"bucket count .*expected an integer >= 1 \(config compute.buckets\)"):
        bucket_of(["a"], bad)


def test_split_keeps_every_row_once_with_its_entity(world_tables):
    parts = split_tables(world_tables, 5)
    assert len(parts) == 5
    for name, frame in world_tables.items():
        assert all(name in p for p in parts)
        got = pd.concat([p[name] for p in parts], ignore_index=True)
        assert len(got) == len(frame)
        pk = frame.columns[0]
        pd.testing.assert_frame_equal(got.sort_values(pk, ignore_index=True), frame.sort_values(pk, ignore_index=True))
        for k, p in enumerate(parts):
            assert (row_buckets(name, p[name], 5) == k).all()
            assert p[name].dtypes.equals(frame.dtypes)
            # rows keep the extract's order within a bucket
            assert p[name][pk].tolist() == frame.loc[frame[pk].isin(p[name][pk]), pk].tolist()
    acts = world_tables["activities"]
    lead_only = acts["account_id"].isna()
    assert lead_only.any() and (~lead_only).any()
    assert (row_buckets("activities", acts, 5)[lead_only.to_numpy()]
            == bucket_of(acts.loc[lead_only, "lead_id"], 5)).all()
    assert set(BUCKET_KEYS) == set(world_tables)


def test_split_of_a_table_without_its_key_says_so():
    with pytest.raises(BucketError, match=r"table 'orders' lacks its bucket key account_id"):
        split_tables({"orders": pd.DataFrame({"order_id": ["o1"]})}, 2)


def test_bucket_files_read_back_as_the_split(world_tables, tmp_path):
    tables = subsample(world_tables, 1, 0.3)
    manifest = write_buckets(tables, tmp_path / "b", 9)  # small extract, many buckets: some tables empty somewhere
    assert read_manifest(tmp_path / "b") == manifest
    assert manifest.buckets == 9 and manifest.hash == HASH_NAME
    parts = split_tables(tables, 9)
    for k, part in enumerate(parts):
        got = read_bucket(tmp_path / "b", k)
        assert list(got) == list(tables)
        for name in tables:
            pd.testing.assert_frame_equal(got[name], part[name], check_exact=True)
            assert manifest.rows[name][k] == len(part[name])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_reading_a_folder_that_is_not_a_bucket_set_says_so(tmp_path):
    with pytest.raises(BucketError, match=r"is not a bucket folder \(no manifest.json\)"):
        read_bucket(tmp_path, 0)


def test_an_empty_bucket_still_holds_every_table(tmp_path):
    tables = {"accounts": pd.DataFrame({"account_id": pd.Series(["a1"], dtype="str"),
                                        "created_at": pd.Series([T1], dtype="datetime64[us, UTC]")})}
    manifest = write_buckets(tables, tmp_path / "b", 3)
    sizes = [len(read_bucket(tmp_path / "b", k)["accounts"]) for k in range(3)]
    assert sorted(sizes) == [0, 0, 1]
    assert manifest.rows["accounts"] == tuple(sizes)
    assert sizes[blake_bucket("a1", 3)] == 1


# -- per-bucket computation equals the whole-frame computation ----------------------------------------------------


@SETTINGS
@given(seed=st.integers(0, 2**16), share=st.sampled_from([0.15, 0.5, 1.0]), n=st.integers(1, 9))
def test_bucketed_features_spine_labels_equal_whole_frame_on_synthetic_crm(world_tables, seed, share, n):
    tables = subsample(world_tables, seed, share)
    options = model_config.feature_options(defaults.settings())
    cutoffs = replace(model_config.cutoff_options(defaults.settings()), count=3, lead_count=3)
    buckets = in_process(tables, n)
    compared_btyd = False
    for name in ("churn", "clv", "lead_mql", "lead_sql"):
        spec = TASKS[name]
        h = horizon_days(spec, defaults.settings().horizons)
        try:
            whole = build_training_data(tables, spec, as_of=AS_OF, horizon_days=h, cutoffs=cutoffs, options=options)
        except TrainingDataError as exc:  # e.g. no SQL lead in a small extract: the bucketed path says the same
            with pytest.raises(TrainingDataError, match=re.escape(str(exc))):
                training_data(buckets, tables, spec, as_of=AS_OF, horizon_days=h, cutoffs=cutoffs, options=options)
            continue
        parts = training_data(buckets, tables, spec, as_of=AS_OF, horizon_days=h, cutoffs=cutoffs, options=options)
        pd.testing.assert_frame_equal(parts.frame, whole.frame, check_exact=True)
        pd.testing.assert_series_equal(parts.label, whole.label, check_exact=True)
        assert parts.catalog == whole.catalog
        assert parts.baseline_predictions.keys() == whole.baseline_predictions.keys()
        compared_btyd |= any(c.startswith("btyd__") for c in parts.frame.columns)
        scoring = build_scoring_features(tables, spec, as_of=AS_OF, options=options)
        gathered = scoring_features_of(buckets, spec, as_of=AS_OF, options=options)
        pd.testing.assert_frame_equal(gathered.features.frame, scoring.frame, check_exact=True)
    assert compared_btyd  # the BG/NBD family (a global fit over all accounts) is part of what was compared


@settings(max_examples=25, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(world=worlds(), n=st.integers(1, 6))
def test_bucketed_spine_labels_features_equal_whole_frame_on_tiny_crms(world, n):
    tables = to_tables(world)
    parts = split_tables(tables, n)
    for population, entity, label in (("active_customers", "account", "churn"), ("active_customers", "account",
                                                                                  "clv_margin"),
                                      ("open_leads", "lead", "reaches_sql"), ("sql_leads", "lead", "won")):
        whole = build_spine(tables, population, [T1, T2])
        pieces = [build_spine(p, population, [T1, T2]) for p in parts]
        got = pd.concat(pieces, ignore_index=True).sort_values(["cutoff_ts", "entity_id"], ignore_index=True)
        pd.testing.assert_frame_equal(got, whole, check_exact=True)
        labels = pd.concat([make_labels(p, s, label, 90) for p, s in zip(parts, pieces)], ignore_index=True)
        keyed = pd.concat(pieces, ignore_index=True).assign(y=labels)
        keyed = keyed.sort_values(["cutoff_ts", "entity_id"], ignore_index=True)
        pd.testing.assert_series_equal(keyed["y"].rename(label), make_labels(tables, whole, label, 90),
                                       check_exact=True)
    options = model_config.feature_options(defaults.settings())
    buckets = Buckets(executor=InProcess(threads=1), parts=tuple(parts))
    for name in ("churn", "lead_mql"):
        spec = TASKS[name]
        whole_fs = build_scoring_features(tables, spec, as_of=T2, options=options)
        got_fs = scoring_features_of(buckets, spec, as_of=T2, options=options).features
        pd.testing.assert_frame_equal(got_fs.frame, whole_fs.frame, check_exact=True)
    assert history_start_of(buckets) == history_start(tables)


def test_a_failing_bucket_is_one_line_naming_it():
    def boom(bucket):
        if bucket == 2:
            raise ValueError("bad\nrow")
        return bucket

    with pytest.raises(BucketFailedError, match=r"^features: bucket 2 of 4 failed \(ValueError: bad row\); nothing was "
                                                r"written; fix the cause and run again$"):
        InProcess(threads=1).map(boom, [0, 1, 2, 3], name="features")
